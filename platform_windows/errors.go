package platform_windows

import (
	"errors"
	"fmt"
)

// Windows error codes WinDivert reports (winerror.h). They are repeated
// here, not taken from golang.org/x/sys/windows, so the table and its
// messages build and are tested on every OS.
const (
	codeFileNotFound            = 2
	codePathNotFound            = 3
	codeAccessDenied            = 5
	codeInvalidHandle           = 6
	codeInvalidParameter        = 87
	codeInsufficientBuffer      = 122
	codeModNotFound             = 126
	codeProcNotFound            = 127
	codeBadPathname             = 161
	codeBadExeFormat            = 193
	codeNoData                  = 232
	codeInvalidImageHash        = 577
	codeDriverFailedPriorUnload = 654
	codeOperationAborted        = 995
	codeIOPending               = 997
	codeServiceDatabaseLocked   = 1055
	codeServiceDisabled         = 1058
	codeServiceDoesNotExist     = 1060
	codeDLLInitFailed           = 1114
	codeHostUnreachable         = 1232
	codeDriverBlocked           = 1275
	codeEptNotRegistered        = 1753
)

var errAddressSize = errors.New("windivert: an address is 80 bytes")

// Error is a failed WinDivert call. Its message names the call, the
// Windows error and, for the failures users meet, what to do about it.
// It unwraps to the underlying error (a syscall.Errno on Windows).
type Error struct {
	Op   string // "WinDivertOpen", "loading WinDivert.dll", ...
	Code uint32 // the Windows error code
	Hint string // what to do; empty when there is nothing to say
	Err  error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("windivert: %s: %v (Windows error %d)", e.Op, e.Err, e.Code)
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Which call failed, for hints that depend on it.
const (
	opLoad  = "loading WinDivert.dll"
	opOpen  = "WinDivertOpen"
	opRecv  = "WinDivertRecvEx"
	opSend  = "WinDivertSendEx"
	opParam = "WinDivertSetParam"
)

// hint says what a user can do about a failed call. dir is the directory
// holding WinDivert.dll (and, required next to it, WinDivert64.sys).
func hint(op string, code uint32, dir string) string {
	switch op {
	case opLoad:
		switch code {
		case codeFileNotFound, codePathNotFound, codeModNotFound:
			return fmt.Sprintf("WinDivert.dll is not in %s; reinstall tcpinc (the installer puts WinDivert.dll and WinDivert64.sys next to tcpincd.exe)", dir)
		case codeBadExeFormat:
			return fmt.Sprintf("the WinDivert.dll in %s is not a loadable x64 DLL (a 32-bit or other-architecture build, a damaged file, or the placeholder of a test package); reinstall tcpinc, whose installer carries the x64 WinDivert 2.2 files", dir)
		case codeProcNotFound:
			return fmt.Sprintf("the WinDivert.dll in %s is not version 2.x (a function tcpinc needs is missing); install WinDivert 2.2", dir)
		}
		return ""
	case opOpen:
		switch code {
		case codeFileNotFound, codePathNotFound:
			return fmt.Sprintf("the driver file WinDivert64.sys is not next to WinDivert.dll in %s; reinstall tcpinc, or copy both files from the same WinDivert 2.2 release there. If the file is there, the WinDivert driver service still points at a copy that was deleted: run 'sc stop WinDivert' and 'sc delete WinDivert' (or reboot) and start tcpinc again", dir)
		case codeBadPathname:
			return fmt.Sprintf("WinDivert could not form the driver's path from %s; install tcpinc in a directory whose path is shorter and plain", dir)
		case codeAccessDenied:
			return "loading the WinDivert driver needs Administrator rights; run tcpincd as the tcpinc service (LocalSystem) or from an elevated prompt. If it already runs elevated, the WinDivert driver's service entry is damaged: run 'sc delete WinDivert' and reboot"
		case codeInvalidParameter:
			return "WinDivert rejected the filter, layer, priority or flags; this is a bug in tcpinc, please report it with the filter from the debug log"
		case codeInvalidImageHash:
			return "Windows refused the driver's digital signature (driver signature enforcement, Secure Boot or Memory integrity/HVCI); use the unmodified, signed WinDivert64.sys of the official WinDivert 2.2 release, never a re-signed or self-built one (see docs/windows.md for the signature variants)"
		case codeDriverFailedPriorUnload:
			return "an incompatible WinDivert driver is loaded, usually an older version from another product (VPN, game booster, packet tool); close that program, then run 'sc stop WinDivert' (or the name 'sc query type= driver | findstr /i divert' shows) or reboot, and start tcpinc again"
		case codeServiceDoesNotExist:
			return "the WinDivert driver is not installed and tcpinc asked WinDivert not to install it"
		case codeServiceDisabled:
			return "the WinDivert driver service is disabled; enable it with 'sc config WinDivert start= demand' or remove it with 'sc delete WinDivert' so that WinDivert reinstalls it"
		case codeDriverBlocked:
			return "the WinDivert driver was blocked: security software (antivirus, EDR, application control) or a virtual machine without driver support; allow WinDivert64.sys in the security product, or run tcpinc where drivers can load"
		case codeEptNotRegistered:
			return "the Base Filtering Engine service (BFE), which WinDivert needs, is not running; start it: sc config BFE start= auto && sc start BFE"
		case codeDLLInitFailed:
			return fmt.Sprintf("the WinDivert.dll in %s failed to initialise (a damaged or foreign build); reinstall tcpinc", dir)
		case codeServiceDatabaseLocked:
			return "the Windows service manager is busy (an installation is running) and could not start the WinDivert driver; start tcpinc again in a moment"
		}
		return "WinDivert could not load its driver; see Troubleshooting in docs/windows.md"
	case opSend:
		if code == codeHostUnreachable {
			return "a packet looped between tcpinc and another packet-injecting driver until its TTL ran out; another WinDivert or WFP product is re-injecting tcpinc's packets"
		}
	}
	return ""
}

// newError builds an Error for code returned by op.
func newError(op string, code uint32, err error, dir string) *Error {
	return &Error{Op: op, Code: code, Hint: hint(op, code, dir), Err: err}
}

// versionProblem describes a loaded driver tcpinc should not or cannot
// use; empty when it is fine. WinDivert.dll refuses drivers older than
// 2.0 itself (ERROR_DRIVER_FAILED_PRIOR_UNLOAD); an older 2.x driver that
// another product loaded first is used by every WinDivert 2.x DLL until
// it is unloaded.
func versionProblem(major, minor uint64) string {
	switch {
	case major != 2:
		return fmt.Sprintf("windivert: the loaded WinDivert driver is version %d.%d, tcpinc needs 2.2: another product's driver is loaded; close it, run 'sc stop WinDivert' and start tcpinc again", major, minor)
	case minor < 2:
		return fmt.Sprintf("windivert: the loaded WinDivert driver is version 2.%d, older than the 2.2 tcpinc ships: another product loaded it first; tcpinc works with it, but to use 2.2 close that product and run 'sc stop WinDivert'", minor)
	}
	return ""
}

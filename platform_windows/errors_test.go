package platform_windows

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

// TestErrorHints: every failure users meet says what to do about it.
func TestErrorHints(t *testing.T) {
	const dir = `C:\Program Files\tcpinc`
	for _, c := range []struct {
		op   string
		code uint32
		want []string
	}{
		{opOpen, codeFileNotFound, []string{"WinDivert64.sys", "next to WinDivert.dll", dir}},
		{opOpen, codePathNotFound, []string{"WinDivert64.sys"}},
		{opOpen, codeAccessDenied, []string{"Administrator"}},
		{opOpen, codeInvalidImageHash, []string{"signature", "Secure Boot", "never a re-signed"}},
		{opOpen, codeDriverFailedPriorUnload, []string{"incompatible WinDivert driver", "another product", "sc stop WinDivert"}},
		{opOpen, codeServiceDoesNotExist, []string{"not installed"}},
		{opOpen, codeServiceDisabled, []string{"disabled"}},
		{opOpen, codeDriverBlocked, []string{"security software", "virtual machine"}},
		{opOpen, codeEptNotRegistered, []string{"Base Filtering Engine", "sc start BFE"}},
		{opOpen, codeInvalidParameter, []string{"bug in tcpinc"}},
		{opOpen, codeBadPathname, []string{dir}},
		{opOpen, codeDLLInitFailed, []string{"failed to initialise", "reinstall"}},
		{opOpen, codeServiceDatabaseLocked, []string{"service manager is busy"}},
		{opOpen, 1234, []string{"could not load its driver", "docs/windows.md"}},
		{opLoad, codeModNotFound, []string{"WinDivert.dll is not in", dir, "reinstall"}},
		{opLoad, codeBadExeFormat, []string{"not a loadable x64 DLL", "placeholder", dir}},
		{opLoad, codeProcNotFound, []string{"not version 2.x"}},
		{opSend, codeHostUnreachable, []string{"looped", "TTL"}},
	} {
		e := newError(c.op, c.code, syscall.Errno(c.code), dir)
		msg := e.Error()
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s error %d: %q lacks %q", c.op, c.code, msg, w)
			}
		}
		if !strings.Contains(msg, c.op) {
			t.Errorf("%q does not name %s", msg, c.op)
		}
		if !errors.Is(e, syscall.Errno(c.code)) {
			t.Errorf("%s error %d does not unwrap to its errno", c.op, c.code)
		}
	}
	// Codes without advice still say which call failed and the code.
	e := newError(opRecv, 31, syscall.Errno(31), dir)
	if e.Hint != "" || !strings.Contains(e.Error(), "WinDivertRecvEx") || !strings.Contains(e.Error(), "31") {
		t.Errorf("plain error: %q", e.Error())
	}
}

func TestVersionProblem(t *testing.T) {
	for _, c := range []struct {
		major, minor uint64
		want         string
	}{
		{2, 2, ""}, {2, 3, ""},
		{2, 1, "older than the 2.2"},
		{2, 0, "another product loaded it first"},
		{1, 4, "tcpinc needs 2.2"},
		{3, 0, "tcpinc needs 2.2"},
	} {
		got := versionProblem(c.major, c.minor)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%d.%d: %q, want %q", c.major, c.minor, got, c.want)
		}
	}
}

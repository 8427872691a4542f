package control

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/windows"
)

// DefaultAdminGroup is unused on Windows, where elevated members of
// Administrators control.
const DefaultAdminGroup = ""

// windowsAccess is true: admin rights come from the caller's token.
const windowsAccess = true

// DefaultPath is where tcpincd listens unless told otherwise: an AF_UNIX
// socket under %ProgramData%\tcpinc.
var DefaultPath = filepath.Join(programData(), "tcpinc", "tcpincd.sock")

func programData() string {
	if d := os.Getenv("ProgramData"); d != "" {
		return d
	}
	return `C:\ProgramData`
}

// Socket file ACLs (SDDL), protected from inheritance: LocalSystem and
// Administrators have full control; Users may open the socket (connecting
// to an AF_UNIX socket needs write access to its file) unless private.
// Whether a caller may change state is decided per request from the
// caller's token (see peerCred), not from the ACL.
const (
	sddlShared  = "D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FRFW;;;BU)"
	sddlPrivate = "D:P(A;;FA;;;SY)(A;;FA;;;BA)"
	// The directory: full control for LocalSystem and Administrators,
	// read and traverse for Users, inherited by what is created in it.
	sddlDir = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FRFX;;;BU)"
)

// Listen creates the control socket at path (an AF_UNIX socket; Windows
// 10 1803 and later) and restricts its file with an ACL. acc.AdminGroup is
// ignored: on Windows the Administrators group controls. The Access is
// optional.
func Listen(path string, accs ...Access) (*Listener, error) {
	var acc Access
	if len(accs) > 0 {
		acc = accs[0]
	}
	a := access{Access: acc, adminGID: -1}
	dir := filepath.Dir(path)
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the control socket's directory: %w", err)
	}
	// Users may create folders under %ProgramData%: make sure nobody
	// but the system and administrators can put files into tcpincd's
	// directory (a planted socket would answer for tcpincd). A directory
	// someone else chose and made is left as it is.
	if os.IsNotExist(statErr) || strings.EqualFold(dir, filepath.Dir(DefaultPath)) {
		if err := setFileACL(dir, sddlDir); err != nil {
			return nil, fmt.Errorf("restricting the control socket's directory %s with an ACL: %w", dir, err)
		}
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listening on the control socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	sddl := sddlShared
	if acc.Private {
		sddl = sddlPrivate
	}
	if err := setFileACL(path, sddl); err != nil {
		ln.Close()
		return nil, fmt.Errorf("restricting the control socket with an ACL: %w", err)
	}
	return &Listener{Listener: ln, access: a, peer: peerCred}, nil
}

func setFileACL(path, sddl string) error {
	sd, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		return err
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return err
	}
	return windows.SetNamedSecurityInfo(path, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil)
}

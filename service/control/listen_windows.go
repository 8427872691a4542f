package control

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// DefaultAdminGroup is unused on Windows, where elevated members of
// Administrators control.
const DefaultAdminGroup = ""

// windowsAccess is true: admin rights come from the caller's token.
const windowsAccess = true

// DefaultPath is where tcpincd listens unless told otherwise: the named
// pipe \\.\pipe\tcpinc.
const DefaultPath = pipePrefix + "tcpinc"

const pipePrefix = `\\.\pipe\`

// PipeName returns the named pipe for a control.socket setting or
// --control flag on Windows: \\.\pipe\NAME as it is (or with forward
// slashes), or a bare NAME, which means \\.\pipe\NAME. Any other path is
// an error that says what to write instead: on Windows the control
// endpoint is a pipe, not a file.
func PipeName(s string) (string, error) {
	p := strings.ReplaceAll(s, "/", `\`)
	if len(p) > len(pipePrefix) && strings.EqualFold(p[:len(pipePrefix)], pipePrefix) {
		rest := p[len(pipePrefix):]
		if !strings.ContainsRune(rest, 0) {
			return pipePrefix + rest, nil
		}
	}
	if s != "" && !strings.ContainsAny(s, `\/:`+"\x00") {
		return pipePrefix + s, nil
	}
	return "", fmt.Errorf("control socket %q: on Windows tcpincd listens on a named pipe; set control.socket (or --control) to %s or to \\\\.\\pipe\\NAME", s, DefaultPath)
}

// Security descriptors of the pipe (SDDL), protected from inheritance,
// owned by Administrators (clients check the owner, so that a pipe of
// the same name made by someone else is not taken for tcpincd's).
// LocalSystem and Administrators have full control. Authenticated Users
// may connect, read and write (0x12019b: FILE_GENERIC_READ, and
// FILE_GENERIC_WRITE without FILE_APPEND_DATA, which on a pipe is the
// right to create another instance of it) unless the socket is private.
// Whether a caller may change state is decided per request from the
// caller's token (see peerCred), not from the ACL.
const (
	sddlShared  = "O:BAD:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;0x12019b;;;AU)"
	sddlPrivate = "O:BAD:P(A;;GA;;;SY)(A;;GA;;;BA)"
)

// Listen creates the control pipe (see PipeName) with its security
// descriptor. It fails if the pipe exists already: another tcpincd runs,
// or another process holds the name. acc.AdminGroup is ignored: on
// Windows the Administrators group controls. The Access is optional.
func Listen(path string, accs ...Access) (*Listener, error) {
	var acc Access
	if len(accs) > 0 {
		acc = accs[0]
	}
	name, err := PipeName(path)
	if err != nil {
		return nil, err
	}
	sddl := sddlShared
	if acc.Private {
		sddl = sddlPrivate
	}
	ln, err := listenPipe(name, sddl)
	if err != nil {
		return nil, fmt.Errorf("listening on the control pipe: %w", err)
	}
	return &Listener{Listener: ln, access: access{Access: acc, adminGID: -1}, peer: peerCred}, nil
}

// dialConn opens the control pipe for Dial.
func dialConn(path string, timeout time.Duration) (net.Conn, error) {
	name, err := PipeName(path)
	if err != nil {
		return nil, err
	}
	c, err := dialPipe(name, timeout)
	if err != nil {
		return nil, err
	}
	return c, nil
}

//go:build linux || darwin

package control

import (
	"fmt"
	"net"
)

// peerSockopt reads the connecting process's credentials from the
// socket behind c with get (a getsockopt for the credential option
// named opt), so each OS's peerCred says only which option and how to
// turn its answer into a Peer.
func peerSockopt[T any](c net.Conn, opt string, get func(fd int) (T, error)) (T, error) {
	var cred T
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return cred, fmt.Errorf("control connection is a %T, not a Unix socket", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return cred, err
	}
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = get(int(fd))
	}); err != nil {
		return cred, err
	}
	if cerr != nil {
		return cred, fmt.Errorf("%s: %w", opt, cerr)
	}
	return cred, nil
}

//go:build !windows

package control

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
)

// windowsAccess is false: admin rights come from Unix credentials.
const windowsAccess = false

// Listen creates the control socket at path, making its directory (mode
// 0755) if needed. The socket's mode is SocketMode, or PrivateSocketMode
// with group acc.AdminGroup when acc.Private. A socket file left by a
// daemon that is gone is replaced; if a daemon still answers there,
// Listen fails rather than steal its socket. Closing the listener
// removes the socket file. Without an Access every local user may read
// and only root may control.
func Listen(path string, accs ...Access) (*Listener, error) {
	var acc Access
	if len(accs) > 0 {
		acc = accs[0]
	}
	a := access{Access: acc, adminGID: -1}
	if acc.AdminGroup != "" {
		g, err := user.LookupGroup(acc.AdminGroup)
		switch {
		case err == nil:
			gid, err := strconv.Atoi(g.Gid)
			if err != nil {
				return nil, fmt.Errorf("group %s has a non-numeric id %q", acc.AdminGroup, g.Gid)
			}
			a.adminGID = gid
		case acc.Private:
			return nil, fmt.Errorf("control socket group %q: %w (create it with 'groupadd --system %s', or set control.private = false)", acc.AdminGroup, err, acc.AdminGroup)
		default:
			// No such group: only root controls. Not an error, so
			// that no configuration is required.
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating the control socket's directory: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listening on the control socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	mode := os.FileMode(SocketMode)
	if acc.Private {
		mode = PrivateSocketMode
		if err := os.Chown(path, -1, a.adminGID); err != nil {
			ln.Close()
			return nil, fmt.Errorf("giving the control socket to group %s: %w", acc.AdminGroup, err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("setting the control socket's mode: %w", err)
	}
	return &Listener{Listener: ln, access: a, peer: peerCred}, nil
}

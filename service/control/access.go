package control

import (
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
)

// Access says who may connect to the control socket and who may change
// the daemon's state.
type Access struct {
	// AdminGroup names the Unix group whose members may enable, disable
	// and reload, besides root. Empty, or a group that does not exist,
	// means root only. Ignored on Windows, where members of the
	// Administrators group (in an elevated process) and LocalSystem may.
	AdminGroup string
	// Private limits connecting, and so reading, to root and AdminGroup
	// (socket mode 0660, group AdminGroup) instead of every local user.
	Private bool
}

// Peer is what the server knows about the process at the other end of a
// control connection, from the kernel.
type Peer struct {
	// UID is the caller's user id (-1 where there is none, on Windows).
	UID int
	// PID is the caller's process id (0 if unknown).
	PID int
	// Admin: the caller may change the daemon's state.
	Admin bool
}

// access is an Access resolved when the socket is created.
type access struct {
	Access
	adminGID int // -1: no admin group
}

// permissionError is the message a non-admin caller gets.
func (a *access) permissionError(method string) string {
	who := "run as root"
	if a.adminGID >= 0 {
		who = fmt.Sprintf("run as root or as a member of group %s", a.AdminGroup)
	}
	if windowsAccess {
		who = "run from an elevated (administrator) prompt"
	}
	return fmt.Sprintf("permission denied: %s changes tcpincd's state; %s", method, who)
}

// isAdmin decides from Unix credentials: root, or a member (primary or
// supplementary) of the admin group.
func isAdmin(uid int, gids []int, adminGID int) bool {
	if uid == 0 {
		return true
	}
	if adminGID < 0 {
		return false
	}
	for _, g := range gids {
		if g == adminGID {
			return true
		}
	}
	return false
}

// Listener is a control socket made by Listen; Serve takes its access
// rules from it.
type Listener struct {
	net.Listener
	// Log, if set before Serve, records refused and malformed requests.
	Log    *slog.Logger
	access access
	// peer finds the caller's identity; tests replace it.
	peer  func(net.Conn, *access) (Peer, error)
	stats stats
}

// stats count what the server did.
type stats struct {
	conns, requests, badRequests, refused, failed, unidentified atomic.Uint64
}

// Stats are a server's counters: connections accepted, requests
// answered, requests refused as malformed (bad_request) or for lack of
// privilege (permission), requests the handler failed, and callers
// whose credentials could not be read.
type Stats struct {
	Conns, Requests, BadRequests, Refused, Failed, Unidentified uint64
}

// Stats returns the server's counters.
func (ln *Listener) Stats() Stats {
	s := &ln.stats
	return Stats{Conns: s.conns.Load(), Requests: s.requests.Load(), BadRequests: s.badRequests.Load(),
		Refused: s.refused.Load(), Failed: s.failed.Load(), Unidentified: s.unidentified.Load()}
}

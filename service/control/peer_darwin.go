package control

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// peerCred asks the kernel who connected (LOCAL_PEERCRED: the caller's
// effective uid and groups at connect time).
func peerCred(c net.Conn, a *access) (Peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Peer{UID: -1}, fmt.Errorf("control connection is a %T, not a Unix socket", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Peer{UID: -1}, err
	}
	var xu *unix.Xucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		xu, cerr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	}); err != nil {
		return Peer{UID: -1}, err
	}
	if cerr != nil {
		return Peer{UID: -1}, fmt.Errorf("LOCAL_PEERCRED: %w", cerr)
	}
	n := min(int(xu.Ngroups), len(xu.Groups))
	gids := make([]int, 0, n)
	for _, g := range xu.Groups[:n] {
		gids = append(gids, int(g))
	}
	p := Peer{UID: int(xu.Uid)}
	p.Admin = isAdmin(p.UID, gids, a.adminGID)
	return p, nil
}

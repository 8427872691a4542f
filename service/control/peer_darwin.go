package control

import (
	"net"

	"golang.org/x/sys/unix"
)

// peerCred asks the kernel who connected (LOCAL_PEERCRED: the caller's
// effective uid and groups at connect time).
func peerCred(c net.Conn, a *access) (Peer, error) {
	xu, err := peerSockopt(c, "LOCAL_PEERCRED", func(fd int) (*unix.Xucred, error) {
		return unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	})
	if err != nil {
		return Peer{UID: -1}, err
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

package control

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// peerCred asks the kernel who connected (SO_PEERCRED: the credentials
// at connect time) and reads the caller's supplementary groups from
// /proc. If the groups cannot be read the caller is judged on its uid
// and primary group alone: failing closed.
func peerCred(c net.Conn, a *access) (Peer, error) {
	cred, err := peerSockopt(c, "SO_PEERCRED", func(fd int) (*unix.Ucred, error) {
		return unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil {
		return Peer{UID: -1}, err
	}
	p := Peer{UID: int(cred.Uid), PID: int(cred.Pid)}
	gids := []int{int(cred.Gid)}
	if p.UID != 0 && a.adminGID >= 0 && cred.Gid != uint32(a.adminGID) {
		gids = append(gids, procGroups(p.PID)...)
	}
	p.Admin = isAdmin(p.UID, gids, a.adminGID)
	return p, nil
}

// procGroups returns the supplementary groups of process pid from the
// "Groups:" line of /proc/pid/status, or nil.
func procGroups(pid int) []int {
	if pid <= 0 {
		return nil
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil
	}
	return parseGroupsLine(b)
}

func parseGroupsLine(status []byte) []int {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("Groups:"))
		if !ok {
			continue
		}
		var gids []int
		for _, f := range bytes.Fields(rest) {
			if g, err := strconv.Atoi(string(f)); err == nil && g >= 0 {
				gids = append(gids, g)
			}
		}
		return gids
	}
	return nil
}

package control

import (
	"bufio"
	"bytes"
	"fmt"
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
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Peer{UID: -1}, fmt.Errorf("control connection is a %T, not a Unix socket", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Peer{UID: -1}, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Peer{UID: -1}, err
	}
	if cerr != nil {
		return Peer{UID: -1}, fmt.Errorf("SO_PEERCRED: %w", cerr)
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

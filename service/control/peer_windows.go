package control

import (
	"fmt"
	"net"

	"golang.org/x/sys/windows"
)

// peerCred finds the calling process from the pipe and decides from its
// access token: LocalSystem, or a token in which the Administrators
// group is enabled (an elevated process), may control. A process of an
// administrator that is not elevated has that group only for deny, so it
// may read but not control, as with other Windows tools.
func peerCred(c net.Conn, a *access) (Peer, error) {
	p := Peer{UID: -1}
	pc, ok := c.(*pipeConn)
	if !ok {
		return p, fmt.Errorf("control connection is a %T, not a named pipe", c)
	}
	raw, err := pc.f.SyscallConn()
	if err != nil {
		return p, err
	}
	var pid uint32
	var perr error
	if err := raw.Control(func(h uintptr) {
		perr = windows.GetNamedPipeClientProcessId(windows.Handle(h), &pid)
	}); err != nil {
		return p, err
	}
	if perr != nil {
		return p, fmt.Errorf("GetNamedPipeClientProcessId: %w", perr)
	}
	p.PID = int(pid)
	admin, err := processIsAdmin(pid)
	if err != nil {
		return p, err
	}
	p.Admin = admin
	return p, nil
}

func processIsAdmin(pid uint32) (bool, error) {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return false, fmt.Errorf("opening the calling process %d: %w", pid, err)
	}
	defer windows.CloseHandle(h)
	var tok windows.Token
	if err := windows.OpenProcessToken(h, windows.TOKEN_QUERY, &tok); err != nil {
		return false, fmt.Errorf("opening the calling process's token: %w", err)
	}
	defer tok.Close()
	tu, err := tok.GetTokenUser()
	if err != nil {
		return false, fmt.Errorf("reading the calling process's user: %w", err)
	}
	if tu.User.Sid.IsWellKnown(windows.WinLocalSystemSid) {
		return true, nil
	}
	admins, err := windows.CreateWellKnownSid(windows.WinBuiltinAdministratorsSid)
	if err != nil {
		return false, err
	}
	groups, err := tok.GetTokenGroups()
	if err != nil {
		return false, fmt.Errorf("reading the calling process's groups: %w", err)
	}
	for _, g := range groups.AllGroups() {
		if g.Sid.Equals(admins) && g.Attributes&windows.SE_GROUP_ENABLED != 0 &&
			g.Attributes&windows.SE_GROUP_USE_FOR_DENY_ONLY == 0 {
			return true, nil
		}
	}
	return false, nil
}

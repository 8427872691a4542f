package tcpincapi

import (
	"fmt"
	"net/netip"
	"syscall"
)

// rawAddrs reads both ends of the connected socket behind rc; the
// per-OS files supply getsockname, getpeername and addrPort for their
// socket handle and Sockaddr types.
func rawAddrs(rc syscall.RawConn) (local, remote netip.AddrPort, err error) {
	var lsa, rsa sockaddr
	var serr error
	if cerr := rc.Control(func(fd uintptr) {
		if lsa, serr = getsockname(fd); serr != nil {
			return
		}
		rsa, serr = getpeername(fd)
	}); cerr != nil {
		return local, remote, cerr
	}
	if serr != nil {
		return local, remote, fmt.Errorf("tcpinc: socket addresses: %w", serr)
	}
	if local, err = addrPort(lsa); err != nil {
		return
	}
	remote, err = addrPort(rsa)
	return
}

// errNotInet is what addrPort answers for a socket that is not TCP/IP.
var errNotInet = fmt.Errorf("tcpinc: not a TCP/IP socket: %w", syscall.EINVAL)

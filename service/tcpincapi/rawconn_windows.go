package tcpincapi

import (
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/windows"
)

func rawAddrs(rc syscall.RawConn) (local, remote netip.AddrPort, err error) {
	var lsa, rsa windows.Sockaddr
	var serr error
	if cerr := rc.Control(func(fd uintptr) {
		if lsa, serr = windows.Getsockname(windows.Handle(fd)); serr != nil {
			return
		}
		rsa, serr = windows.Getpeername(windows.Handle(fd))
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

func addrPort(sa windows.Sockaddr) (netip.AddrPort, error) {
	switch sa := sa.(type) {
	case *windows.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), nil
	case *windows.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("tcpinc: not a TCP/IP socket: %w", syscall.EINVAL)
}

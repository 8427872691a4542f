//go:build !windows

package tcpincapi

import (
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

func rawAddrs(rc syscall.RawConn) (local, remote netip.AddrPort, err error) {
	var lsa, rsa unix.Sockaddr
	var serr error
	if cerr := rc.Control(func(fd uintptr) {
		if lsa, serr = unix.Getsockname(int(fd)); serr != nil {
			return
		}
		rsa, serr = unix.Getpeername(int(fd))
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

func addrPort(sa unix.Sockaddr) (netip.AddrPort, error) {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), nil
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("tcpinc: not a TCP/IP socket: %w", syscall.EINVAL)
}

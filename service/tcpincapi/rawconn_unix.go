//go:build !windows

package tcpincapi

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

type sockaddr = unix.Sockaddr

func getsockname(fd uintptr) (sockaddr, error) { return unix.Getsockname(int(fd)) }
func getpeername(fd uintptr) (sockaddr, error) { return unix.Getpeername(int(fd)) }

func addrPort(sa sockaddr) (netip.AddrPort, error) {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), nil
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port)), nil
	}
	return netip.AddrPort{}, errNotInet
}

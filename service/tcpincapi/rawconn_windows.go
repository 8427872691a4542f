package tcpincapi

import (
	"net/netip"

	"golang.org/x/sys/windows"
)

type sockaddr = windows.Sockaddr

func getsockname(fd uintptr) (sockaddr, error) { return windows.Getsockname(windows.Handle(fd)) }
func getpeername(fd uintptr) (sockaddr, error) { return windows.Getpeername(windows.Handle(fd)) }

func addrPort(sa sockaddr) (netip.AddrPort, error) {
	switch sa := sa.(type) {
	case *windows.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), nil
	case *windows.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port)), nil
	}
	return netip.AddrPort{}, errNotInet
}

package platform_linux

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// soOriginalDst is SO_ORIGINAL_DST (SOL_IP) and IP6T_SO_ORIGINAL_DST
// (SOL_IPV6): the destination a connection had before NAT redirected it.
const soOriginalDst = 80

// originalDst returns the destination the kernel's REDIRECT rewrote for
// an accepted connection.
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	six := !c.LocalAddr().(*net.TCPAddr).AddrPort().Addr().Unmap().Is4()
	var out netip.AddrPort
	var serr error
	err = rc.Control(func(fd uintptr) {
		var buf [unix.SizeofSockaddrInet6]byte
		l := uint32(len(buf))
		level := unix.SOL_IP
		if six {
			level = unix.SOL_IPV6
		}
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, uintptr(level), soOriginalDst,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&l)), 0)
		if e != 0 {
			serr = e
			return
		}
		// struct sockaddr_in / sockaddr_in6: family (host order), port
		// (network order), then the address (in6: after flowinfo).
		port := binary.BigEndian.Uint16(buf[2:4])
		if six {
			out = netip.AddrPortFrom(netip.AddrFrom16([16]byte(buf[8:24])).Unmap(), port)
		} else {
			out = netip.AddrPortFrom(netip.AddrFrom4([4]byte(buf[4:8])), port)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination (SO_ORIGINAL_DST): %w", err)
	}
	return out, nil
}

// markDialer dials with SO_MARK set, so the rules leave the proxy's
// own connections alone.
type markDialer struct{ mark uint32 }

func (d markDialer) DialContext(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	nd := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(d.mark))
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("SO_MARK: %w", serr)
		}
		return nil
	}}
	c, err := nd.DialContext(ctx, "tcp", dst.String())
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			return nil, fmt.Errorf("dialing %v: %w", dst, op.Err)
		}
		return nil, err
	}
	return c, nil
}

package platform_linux

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// injector sends whole IP packets the engine built. An outbound packet
// goes to its destination on the network; an inbound one is sent to its
// destination too, which is a local address: the kernel routes it
// through lo into the input path, where the local TCP stack takes it as
// received from its (remote) source address. SO_MARK tags both so the
// rules let them pass.
type injector struct {
	fd4, fd6 int
}

func newInjector(mark uint32) (*injector, error) {
	in := &injector{fd4: -1, fd6: -1}
	var err error
	if in.fd4, err = rawSocket(unix.AF_INET, mark); err != nil {
		return nil, err
	}
	if in.fd6, err = rawSocket(unix.AF_INET6, mark); err != nil {
		in.close()
		return nil, err
	}
	return in, nil
}

// rawSocket opens a raw socket that takes the IP header from the caller
// (IPPROTO_RAW implies IP_HDRINCL for IPv4 and IPv6 alike).
func rawSocket(family int, mark uint32) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		if isPermission(err) {
			return -1, errNeedAdmin(fmt.Errorf("raw socket: %w", err))
		}
		return -1, fmt.Errorf("tcpinc: raw socket for injection: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("tcpinc: SO_MARK on the injection socket: %w", err)
	}
	// Room for bursts of retransmitted Init messages and re-deliveries.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
	return fd, nil
}

// send injects one IP packet toward its destination address.
func (in *injector) send(pkt []byte) error {
	if len(pkt) < 1 {
		return errors.New("empty packet")
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return errors.New("short IPv4 packet")
		}
		sa := &unix.SockaddrInet4{Addr: [4]byte(pkt[16:20])}
		return unix.Sendto(in.fd4, pkt, 0, sa)
	case 6:
		if len(pkt) < 40 {
			return errors.New("short IPv6 packet")
		}
		// No scope ID: link-local peers are not handled yet (the send
		// fails and is counted in InjectErrors).
		dst := netip.AddrFrom16([16]byte(pkt[24:40]))
		sa := &unix.SockaddrInet6{Addr: dst.As16()}
		return unix.Sendto(in.fd6, pkt, 0, sa)
	}
	return fmt.Errorf("not an IP packet (version %d)", pkt[0]>>4)
}

func (in *injector) close() {
	for _, fd := range []*int{&in.fd4, &in.fd6} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

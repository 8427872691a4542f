package platform_darwin

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctl is a raw ioctl with a pointer argument; x/sys/unix has no
// generic one for Darwin. The kernel copies in and out exactly the size
// encoded in req, so arg must point at that many bytes.
func ioctl(fd int, req uint, arg unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}

// pfDev is /dev/pf, open for DIOCNATLOOK. pf checks for root on every
// ioctl, so the service cannot drop root while it runs.
type pfDev struct{ fd int }

func openPFDev() (*pfDev, error) {
	fd, err := unix.Open("/dev/pf", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("tcpinc: opening /dev/pf: %w (tcpincd must run as root)", err)
		}
		return nil, fmt.Errorf("tcpinc: opening /dev/pf: %w", err)
	}
	return &pfDev{fd: fd}, nil
}

// origDst asks pf where a connection the proxy accepted was going: src is
// the accepted socket's peer, proxy its local address.
func (d *pfDev) origDst(src, proxy netip.AddrPort) (netip.AddrPort, error) {
	r, err := newNatlook(src, proxy)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if err := ioctl(d.fd, diocNatlook, unsafe.Pointer(&r[0])); err != nil {
		return netip.AddrPort{}, fmt.Errorf("DIOCNATLOOK %v -> %v: %w", src, proxy, err)
	}
	return r.origDst()
}

func (d *pfDev) close() { unix.Close(d.fd) }

// bpfDev is one /dev/bpf device attached to one interface with a filter.
type bpfDev struct {
	fd      int
	ifname  string
	dlt     int
	buf     []byte
	started bool        // a reader runs (guarded by Backend.mu)
	stop    atomic.Bool // the reader closes the device at its next wake-up
}

// bpfBufLen is the kernel buffer per device; reads return whole buffers.
const bpfBufLen = 1 << 20

// openBPF attaches a BPF device to ifname with the filter build makes
// for the interface's link type. seeSent: whether packets the host sends
// are captured too (lo0: yes, real interfaces: only received ones).
func openBPF(ifname string, seeSent bool, build func(dlt int) ([]Insn, error)) (*bpfDev, error) {
	var fd int
	var err error
	for i := 0; i < 256; i++ {
		fd, err = unix.Open(fmt.Sprintf("/dev/bpf%d", i), unix.O_RDWR|unix.O_CLOEXEC, 0)
		if !errors.Is(err, unix.EBUSY) {
			break
		}
	}
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("tcpinc: opening /dev/bpf: %w (tcpincd must run as root)", err)
		}
		return nil, fmt.Errorf("tcpinc: opening /dev/bpf: %w (every BPF device busy?)", err)
	}
	d := &bpfDev{fd: fd, ifname: ifname}
	fail := func(what string, err error) (*bpfDev, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("tcpinc: bpf on %s: %s: %w", ifname, what, err)
	}
	blen := int32(bpfBufLen)
	if err := ioctl(fd, unix.BIOCSBLEN, unsafe.Pointer(&blen)); err != nil {
		return fail("BIOCSBLEN", err)
	}
	var ifr [unix.IFNAMSIZ + 16]byte // struct ifreq: name, then a union
	copy(ifr[:unix.IFNAMSIZ-1], ifname)
	if err := ioctl(fd, unix.BIOCSETIF, unsafe.Pointer(&ifr[0])); err != nil {
		return fail("BIOCSETIF", err)
	}
	one := int32(1)
	if err := ioctl(fd, unix.BIOCIMMEDIATE, unsafe.Pointer(&one)); err != nil {
		return fail("BIOCIMMEDIATE", err)
	}
	see := int32(0)
	if seeSent {
		see = 1
	}
	if err := ioctl(fd, unix.BIOCSSEESENT, unsafe.Pointer(&see)); err != nil {
		return fail("BIOCSSEESENT", err)
	}
	// Reads return at least once a second, so that Close is noticed.
	tv := unix.Timeval{Sec: 1}
	if err := ioctl(fd, unix.BIOCSRTIMEOUT, unsafe.Pointer(&tv)); err != nil {
		return fail("BIOCSRTIMEOUT", err)
	}
	var dlt uint32
	if err := ioctl(fd, unix.BIOCGDLT, unsafe.Pointer(&dlt)); err != nil {
		return fail("BIOCGDLT", err)
	}
	d.dlt = int(dlt)
	prog, err := build(d.dlt)
	if err != nil {
		return fail("filter", err)
	}
	insns := make([]unix.BpfInsn, len(prog))
	for i, in := range prog {
		insns[i] = unix.BpfInsn{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	p := unix.BpfProgram{Len: uint32(len(insns)), Insns: &insns[0]}
	if err := ioctl(fd, unix.BIOCSETF, unsafe.Pointer(&p)); err != nil {
		return fail("BIOCSETF", err)
	}
	if err := ioctl(fd, unix.BIOCGBLEN, unsafe.Pointer(&blen)); err != nil {
		return fail("BIOCGBLEN", err)
	}
	d.buf = make([]byte, blen)
	return d, nil
}

// read returns the next buffer of records (possibly empty after the read
// timeout).
func (d *bpfDev) read() ([]byte, error) {
	n, err := unix.Read(d.fd, d.buf)
	if err != nil {
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			return nil, nil
		}
		return nil, err
	}
	return d.buf[:n], nil
}

func (d *bpfDev) close() { unix.Close(d.fd) }

// shutdown closes the device, or, if a reader is using it, tells the
// reader to close it when its read returns (within the 1 s read timeout):
// closing a descriptor another goroutine reads could hand its number to
// a new file in between.
func (d *bpfDev) shutdown(started bool) {
	if started {
		d.stop.Store(true)
		return
	}
	d.close()
}

// injector sends re-injected handshake segments: IPv4 whole (IP_HDRINCL,
// Darwin byte order), IPv6 as a TCP segment with the header fields as
// ancillary data (Darwin has no IPV6_HDRINCL).
type injector struct{ fd4, fd6 int }

func newInjector() (*injector, error) {
	fd4, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("tcpinc: raw IPv4 socket: %w (tcpincd must run as root)", err)
	}
	if err := unix.SetsockoptInt(fd4, unix.IPPROTO_IP, unix.IP_HDRINCL, 1); err != nil {
		unix.Close(fd4)
		return nil, fmt.Errorf("tcpinc: IP_HDRINCL: %w", err)
	}
	fd6, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_TCP)
	if err != nil {
		unix.Close(fd4)
		return nil, fmt.Errorf("tcpinc: raw IPv6 socket: %w", err)
	}
	// Only sent from: a raw TCP socket would otherwise queue nothing
	// (TCP is the kernel's), but say so explicitly.
	_ = unix.Shutdown(fd6, unix.SHUT_RD)
	_ = unix.Shutdown(fd4, unix.SHUT_RD)
	unix.CloseOnExec(fd4)
	unix.CloseOnExec(fd6)
	return &injector{fd4: fd4, fd6: fd6}, nil
}

// send4 sends a finished IPv4 packet (wire byte order; converted here).
func (in *injector) send4(pkt []byte) error {
	if err := darwinRawIPv4(pkt); err != nil {
		return err
	}
	return unix.Sendto(in.fd4, pkt, 0, &unix.SockaddrInet4{Addr: [4]byte(pkt[16:20])})
}

// send6 sends a TCP segment with the IPv6 header the kernel will build.
func (in *injector) send6(r rawIPv6) error {
	var pi unix.Inet6Pktinfo
	pi.Addr = r.src.As16()
	oob := make([]byte, 0, 3*unix.CmsgSpace(16))
	oob = appendCmsg(oob, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unsafe.Slice((*byte)(unsafe.Pointer(&pi)), unix.SizeofInet6Pktinfo))
	tc := int32(r.tclass)
	oob = appendCmsg(oob, unix.IPPROTO_IPV6, unix.IPV6_TCLASS, unsafe.Slice((*byte)(unsafe.Pointer(&tc)), 4))
	hl := int32(r.hopLimit)
	oob = appendCmsg(oob, unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, unsafe.Slice((*byte)(unsafe.Pointer(&hl)), 4))
	return unix.Sendmsg(in.fd6, r.seg, oob, &unix.SockaddrInet6{Addr: r.dst.As16()}, 0)
}

func appendCmsg(b []byte, level, typ int, data []byte) []byte {
	start := len(b)
	b = b[:start+unix.CmsgSpace(len(data))]
	clear(b[start:])
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[start]))
	h.Level = int32(level)
	h.Type = int32(typ)
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[start+unix.CmsgLen(0):], data)
	return b
}

func (in *injector) close() {
	unix.Close(in.fd4)
	unix.Close(in.fd6)
}

// setGroup makes the service's sockets carry the exemption group: pf's
// "group" match reads the socket's effective group ID. Only the effective
// group changes (files on macOS take their directory's group anyway), and
// the process stays root.
func setGroup(gid uint32) (restore func(), err error) {
	old := os.Getegid()
	if err := unix.Setegid(int(gid)); err != nil {
		return nil, fmt.Errorf("tcpinc: setting the effective group to %d for the pf exemption: %w", gid, err)
	}
	return func() { _ = unix.Setegid(old) }, nil
}

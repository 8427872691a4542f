package packet

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"net/netip"
	"testing"
)

var (
	v4a = netip.MustParseAddrPort("192.0.2.1:40000")
	v4b = netip.MustParseAddrPort("198.51.100.7:443")
	v6a = netip.MustParseAddrPort("[2001:db8::1]:40000")
	v6b = netip.MustParseAddrPort("[2001:db8:ffff::7]:443")
)

// linuxSYNOptions returns the 20 option bytes of a typical Linux SYN:
// MSS, SACK permitted, timestamps, NOP, window scale.
func linuxSYNOptions() []byte {
	o := AppendMSS(nil, 1460)
	o = AppendSACKPermitted(o)
	o = AppendTimestamps(o, 0x11223344, 0)
	o = AppendNOP(o)
	return AppendWindowScale(o, 7)
}

// dataOptions returns the 12 option bytes of a Linux data segment:
// NOP, NOP, timestamps.
func dataOptions() []byte {
	return AppendTimestamps([]byte{OptNOP, OptNOP}, 0x01020304, 0x05060708)
}

func mustBuild(t testing.TB, s Segment) []byte {
	t.Helper()
	b, err := AppendTCP(nil, s)
	if err != nil {
		t.Fatalf("AppendTCP: %v", err)
	}
	return b
}

func mustParse(t testing.TB, b []byte) Packet {
	t.Helper()
	p, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

// withCap returns a copy of b with extra spare capacity.
func withCap(b []byte, extra int) []byte {
	c := make([]byte, len(b), len(b)+extra)
	copy(c, b)
	return c
}

func synV4() Segment {
	return Segment{Src: v4a, Dst: v4b, Seq: 0x01020304, Flags: SYN, Window: 64240, Options: linuxSYNOptions()}
}

func synV6() Segment {
	return Segment{Src: v6a, Dst: v6b, Seq: 0xfffffff0, Flags: SYN, Window: 64800, Options: linuxSYNOptions()}
}

func dataV4(n int) Segment {
	return Segment{Src: v4a, Dst: v4b, Seq: 1000, Ack: 2000, Flags: ACK | PSH, Window: 502,
		Options: dataOptions(), Payload: bytes.Repeat([]byte("abcdefghij"), n/10+1)[:n]}
}

func dataV6(n int) Segment {
	s := dataV4(n)
	s.Src, s.Dst = v6a, v6b
	return s
}

// refSum is a deliberately naive RFC 1071 sum, big-endian word by word.
func refSum(b []byte, initial uint16) uint16 {
	s := uint64(initial)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint64(b[i])<<8 | uint64(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint64(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// refTCPChecksum recomputes the TCP checksum of p from an explicitly
// built pseudo-header, independently of the package's code paths.
func refTCPChecksum(p Packet) uint16 {
	seg := append([]byte(nil), p.TCP()...)
	seg[16], seg[17] = 0, 0
	var ph []byte
	if p.Version() == 4 {
		a, d := p.SrcAddr().As4(), p.DstAddr().As4()
		ph = append(append(ph, a[:]...), d[:]...)
		ph = append(ph, 0, ProtoTCP)
		ph = binary.BigEndian.AppendUint16(ph, uint16(len(seg)))
	} else {
		a, d := p.SrcAddr().As16(), p.DstAddr().As16()
		ph = append(append(ph, a[:]...), d[:]...)
		ph = binary.BigEndian.AppendUint32(ph, uint32(len(seg)))
		ph = append(ph, 0, 0, 0, ProtoTCP)
	}
	return ^refSum(append(ph, seg...), 0)
}

// checkConsistent verifies that a packet's lengths agree with each other
// and with a fresh parse, and that both checksums are valid.
func checkConsistent(t testing.TB, p Packet) {
	t.Helper()
	q, err := Parse(p.Bytes())
	if err != nil {
		t.Fatalf("re-parse: %v", err)
	}
	if q.TCPOffset() != p.TCPOffset() || q.TCPHeaderLen() != p.TCPHeaderLen() || q.Len() != p.Len() {
		t.Fatalf("re-parse layout %d/%d/%d, want %d/%d/%d",
			q.TCPOffset(), q.TCPHeaderLen(), q.Len(), p.TCPOffset(), p.TCPHeaderLen(), p.Len())
	}
	if p.PayloadOffset()+p.PayloadLen() != p.Len() {
		t.Fatalf("payload %d+%d != len %d", p.PayloadOffset(), p.PayloadLen(), p.Len())
	}
	if h := p.IPv4(); h != nil && !h.VerifyChecksum() {
		t.Fatalf("bad IPv4 header checksum")
	}
	if !p.VerifyTCPChecksum() {
		t.Fatalf("bad TCP checksum %#04x, want %#04x", p.TCP().Checksum(), refTCPChecksum(p))
	}
}

// randomSegment returns a random valid segment description.
func randomSegment(r *rand.Rand) Segment {
	s := Segment{
		Seq: r.Uint32(), Ack: r.Uint32(), Flags: Flags(r.Intn(256)),
		Window: uint16(r.Intn(65536)), Urgent: uint16(r.Intn(65536)),
		TTL: uint8(r.Intn(256)), TOS: uint8(r.Intn(256)), ID: uint16(r.Intn(65536)),
	}
	if r.Intn(2) == 0 {
		var a, b [4]byte
		r.Read(a[:])
		r.Read(b[:])
		s.Src = netip.AddrPortFrom(netip.AddrFrom4(a), uint16(r.Intn(65536)))
		s.Dst = netip.AddrPortFrom(netip.AddrFrom4(b), uint16(r.Intn(65536)))
	} else {
		var a, b [16]byte
		r.Read(a[:])
		r.Read(b[:])
		s.Src = netip.AddrPortFrom(netip.AddrFrom16(a), uint16(r.Intn(65536)))
		s.Dst = netip.AddrPortFrom(netip.AddrFrom16(b), uint16(r.Intn(65536)))
	}
	switch r.Intn(4) {
	case 0:
	case 1:
		s.Options = linuxSYNOptions()
	case 2:
		s.Options = dataOptions()
	case 3:
		for n := r.Intn(5); n > 0; n-- {
			if r.Intn(3) == 0 {
				s.Options = AppendNOP(s.Options)
				continue
			}
			d := make([]byte, r.Intn(6))
			r.Read(d)
			s.Options = AppendOption(s.Options, uint8(2+r.Intn(250)), d)
		}
	}
	s.Payload = make([]byte, r.Intn(1500))
	r.Read(s.Payload)
	return s
}

// mod returns a copy of b changed by f.
func mod(b []byte, f func(b []byte)) []byte {
	c := append([]byte(nil), b...)
	f(c)
	return c
}

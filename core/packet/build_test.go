package packet

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func TestAppendTCP(t *testing.T) {
	for _, s := range []Segment{synV4(), synV6(), dataV4(1), dataV6(1400)} {
		prefix := []byte("prefix")
		b, err := AppendTCP(prefix, s)
		if err != nil {
			t.Fatal(err)
		}
		if string(b[:6]) != "prefix" {
			t.Fatal("prefix lost")
		}
		p := mustParse(t, b[6:])
		checkConsistent(t, p)
		tcp := p.TCP()
		if p.Src() != s.Src || p.Dst() != s.Dst || tcp.Seq() != s.Seq || tcp.Ack() != s.Ack ||
			tcp.Flags() != s.Flags || tcp.Window() != s.Window || !bytes.Equal(p.Payload(), s.Payload) ||
			!bytes.Equal(p.Options(), s.Options) {
			t.Fatalf("fields differ: %+v", s)
		}
		if h := p.IPv4(); h != nil && (h.TTL() != 64 || !h.DontFragment()) {
			t.Fatal("IPv4 defaults")
		}
		if h := p.IPv6(); h != nil && h.HopLimit() != 64 {
			t.Fatal("IPv6 defaults")
		}
		// The definition of the checksum: the segment with pseudo-header
		// sums to 0xffff.
		if OnesSum(tcp, PseudoHeaderSum(s.Src.Addr(), s.Dst.Addr(), ProtoTCP, len(tcp))) != 0xffff {
			t.Fatal("segment does not sum to 0xffff")
		}
	}
}

func TestAppendTCPPadsOptions(t *testing.T) {
	s := dataV4(0)
	s.Options = AppendWindowScale(nil, 14)
	p := mustParse(t, mustBuild(t, s))
	if !bytes.Equal(p.Options(), []byte{3, 3, 14, 0}) || p.TCPHeaderLen() != 24 {
		t.Fatalf("options % x", p.Options())
	}
}

func TestAppendTCPErrors(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Segment)
		want error
	}{
		{"mixed", func(s *Segment) { s.Dst = v6b }, ErrInvalid},
		{"zero addrs", func(s *Segment) { s.Src, s.Dst = netip.AddrPort{}, netip.AddrPort{} }, ErrInvalid},
		{"options 41", func(s *Segment) { s.Options = make([]byte, 41) }, ErrNoOptionSpace},
		{"bad options", func(s *Segment) { s.Options = []byte{2, 1} }, ErrBadOptions},
		{"too long v4", func(s *Segment) { s.Payload = make([]byte, 65536-40) }, ErrTooLong},
		{"too long v6", func(s *Segment) { s.Src, s.Dst = v6a, v6b; s.Payload = make([]byte, 65536-20) }, ErrTooLong},
	}
	for _, tt := range tests {
		s := dataV4(10)
		tt.mod(&s)
		if b, err := AppendTCP([]byte{1}, s); !errors.Is(err, tt.want) || !bytes.Equal(b, []byte{1}) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	// Largest legal packets.
	s := dataV4(65535 - 40)
	s.Options = nil
	checkConsistent(t, mustParse(t, mustBuild(t, s)))
	s = dataV6(65535 - 20)
	s.Options = nil
	checkConsistent(t, mustParse(t, mustBuild(t, s)))
}

func TestAppendTCPAllocs(t *testing.T) {
	buf := make([]byte, 0, 2000)
	s := dataV6(1200)
	n := testing.AllocsPerRun(100, func() {
		_, _ = AppendTCP(buf, s)
	})
	if n != 0 {
		t.Fatalf("allocs = %v, want 0", n)
	}
}

func TestParseShortViews(t *testing.T) {
	if _, err := ParseIPv4(nil); !errors.Is(err, ErrTruncated) {
		t.Error(err)
	}
	if _, err := ParseIPv6(nil); !errors.Is(err, ErrTruncated) {
		t.Error(err)
	}
	if _, err := ParseIPv6(make([]byte, 10)); !errors.Is(err, ErrTruncated) {
		t.Error(err)
	}
	if _, err := ParseTCP(make([]byte, 19)); !errors.Is(err, ErrTruncated) {
		t.Error(err)
	}
}

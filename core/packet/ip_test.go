package packet

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

func TestParseIPv4(t *testing.T) {
	good := mustBuild(t, dataV4(10))
	mod := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	tests := []struct {
		name    string
		b       []byte
		wantErr error
		wantLen int
	}{
		{"ok", good, nil, len(good)},
		{"padding trimmed", append(append([]byte(nil), good...), 0, 0, 0, 0), nil, len(good)},
		{"empty", nil, ErrTruncated, 0},
		{"short", good[:19], ErrTruncated, 0},
		{"version", mod(func(b []byte) []byte { b[0] = 0x55; return b }), ErrBadHeader, 0},
		{"ihl 4", mod(func(b []byte) []byte { b[0] = 0x44; return b }), ErrBadHeader, 0},
		{"ihl 0", mod(func(b []byte) []byte { b[0] = 0x40; return b }), ErrBadHeader, 0},
		{"total < ihl", mod(func(b []byte) []byte { b[2], b[3] = 0, 19; return b }), ErrBadHeader, 0},
		{"total > buf", mod(func(b []byte) []byte { b[2], b[3] = 0xff, 0xff; return b }), ErrTruncated, 0},
		{"ihl > total", mod(func(b []byte) []byte { b[0] = 0x4f; b[2], b[3] = 0, 40; return b }), ErrBadHeader, 0},
	}
	for _, tt := range tests {
		h, err := ParseIPv4(tt.b)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.wantErr)
			continue
		}
		if err == nil && len(h) != tt.wantLen {
			t.Errorf("%s: len %d, want %d", tt.name, len(h), tt.wantLen)
		}
	}
}

func TestIPv4Accessors(t *testing.T) {
	s := dataV4(0)
	s.TTL, s.TOS, s.ID = 33, 0x2e, 0xbeef
	h, err := ParseIPv4(mustBuild(t, s))
	if err != nil {
		t.Fatal(err)
	}
	if h.HeaderLen() != 20 || h.TOS() != 0x2e || h.TotalLen() != len(h) || h.ID() != 0xbeef ||
		!h.DontFragment() || h.MoreFragments() || h.FragmentOffset() != 0 || h.IsFragment() ||
		h.TTL() != 33 || h.Protocol() != ProtoTCP || h.Src() != v4a.Addr() || h.Dst() != v4b.Addr() {
		t.Fatalf("accessors wrong: % x", []byte(h[:20]))
	}
	if !h.VerifyChecksum() || h.ComputeChecksum() != h.Checksum() {
		t.Fatal("header checksum")
	}
	h.SetTTL(1)
	h.SetTOS(0)
	h.SetID(7)
	h.SetProtocol(17)
	if h.VerifyChecksum() {
		t.Fatal("checksum still valid after changes")
	}
	h.UpdateChecksum()
	if !h.VerifyChecksum() || h.TTL() != 1 || h.TOS() != 0 || h.ID() != 7 || h.Protocol() != 17 {
		t.Fatal("setters")
	}
	na := netip.MustParseAddr("203.0.113.9")
	if err := h.SetSrc(na); err != nil || h.Src() != na {
		t.Fatal("SetSrc")
	}
	if err := h.SetDst(netip.MustParseAddr("::ffff:203.0.113.10")); err != nil || h.Dst() != netip.MustParseAddr("203.0.113.10") {
		t.Fatal("SetDst mapped")
	}
	if err := h.SetSrc(v6a.Addr()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("SetSrc(v6) = %v", err)
	}
	if err := h.SetSrc(netip.Addr{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("SetSrc(zero) = %v", err)
	}
	binary.BigEndian.PutUint16(h[6:8], 0x2000|3)
	if !h.MoreFragments() || h.FragmentOffset() != 24 || !h.IsFragment() || h.DontFragment() {
		t.Fatal("fragment bits")
	}
	h.SetTotalLen(20)
	if h.TotalLen() != 20 || len(h.Payload()) != len(h)-20 {
		t.Fatal("SetTotalLen/Payload")
	}
	h.SetChecksum(0x1234)
	if h.Checksum() != 0x1234 {
		t.Fatal("SetChecksum")
	}
	// Nonsense IHL after parsing must not make Payload or checksums panic.
	h[0] = 0x4f
	_ = h[:20].Payload()
	_ = h[:20].VerifyChecksum()
	h[0] = 0x41
	_ = h.Payload()
	_ = h.ComputeChecksum()
}

func TestIPv4HeaderOptions(t *testing.T) {
	b := mustBuild(t, dataV4(5))
	// Insert 4 bytes of IP options (NOP NOP NOP EOL).
	nb := append(append(append([]byte(nil), b[:20]...), 1, 1, 1, 0), b[20:]...)
	nb[0] = 0x46
	binary.BigEndian.PutUint16(nb[2:4], uint16(len(nb)))
	IPv4(nb).UpdateChecksum()
	p := mustParse(t, nb)
	if p.IPHeaderLen() != 24 || p.TCPOffset() != 24 || string(p.Payload()) != "abcde" {
		t.Fatalf("layout %d %d %q", p.IPHeaderLen(), p.TCPOffset(), p.Payload())
	}
	checkConsistent(t, p)
}

// v6WithExt builds an IPv6 TCP packet with the given extension headers
// (raw, each with its own next-header byte, chained in order) inserted.
func v6WithExt(t testing.TB, s Segment, exts ...[]byte) []byte {
	b := mustBuild(t, s)
	var chain []byte
	next := b[6]
	for i := len(exts) - 1; i >= 0; i-- {
		e := append([]byte(nil), exts[i]...)
		kind := e[0]
		e[0] = next
		next = kind
		chain = append(e, chain...)
	}
	out := append(append(append([]byte(nil), b[:40]...), chain...), b[40:]...)
	out[6] = next
	binary.BigEndian.PutUint16(out[4:6], uint16(len(out)-40))
	return out
}

// ext returns an extension header whose first byte is its own type (used
// by v6WithExt to chain them).
func ext(kind uint8, body ...byte) []byte { return append([]byte{kind}, body...) }

func hbh() []byte     { return ext(ProtoHopByHop, 0, 1, 4, 0, 0, 0, 0) }
func dstOpts() []byte { return ext(ProtoDestOpts, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) }
func routing() []byte { return ext(ProtoRouting, 0, 0, 0, 0, 0, 0, 0) }
func ah() []byte {
	return ext(ProtoAH, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
}
func frag(off uint16, more bool) []byte {
	w := off << 3
	if more {
		w |= 1
	}
	return ext(ProtoFragment, 0, byte(w>>8), byte(w), 0, 0, 0, 1)
}

func TestParseIPv6ExtensionHeaders(t *testing.T) {
	s := dataV6(7)
	tests := []struct {
		name      string
		exts      [][]byte
		wantErr   error
		wantOff   int
		wantProto uint8
	}{
		{"none", nil, nil, 40, ProtoTCP},
		{"hop-by-hop", [][]byte{hbh()}, nil, 48, ProtoTCP},
		{"dest opts 16", [][]byte{dstOpts()}, nil, 56, ProtoTCP},
		{"routing", [][]byte{routing()}, nil, 48, ProtoTCP},
		{"ah", [][]byte{ah()}, nil, 64, ProtoTCP},
		{"atomic fragment", [][]byte{frag(0, false)}, nil, 48, ProtoTCP},
		{"all", [][]byte{hbh(), dstOpts(), routing(), frag(0, false), ah(), dstOpts()}, nil, 40 + 8 + 16 + 8 + 8 + 24 + 16, ProtoTCP},
		{"first fragment", [][]byte{frag(0, true)}, ErrFragment, 48, ProtoTCP},
		{"later fragment", [][]byte{hbh(), frag(100, false)}, ErrFragment, 56, ProtoTCP},
		{"hop-by-hop not first", [][]byte{dstOpts(), hbh()}, ErrBadHeader, 56, ProtoHopByHop},
		{"esp", [][]byte{ext(ProtoESP, 1, 2, 3, 4, 5, 6, 7)}, ErrNotTCP, 40, ProtoESP},
		{"no next", [][]byte{routing(), ext(ProtoNoNext)}, ErrNotTCP, 48, ProtoNoNext},
		{"udp", [][]byte{ext(17, 0, 0, 0, 0, 0, 0, 0)}, ErrNotTCP, 40, 17},
	}
	for _, tt := range tests {
		b := v6WithExt(t, s, tt.exts...)
		p, err := Parse(b)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.wantErr)
			continue
		}
		if p.Version() != 6 || p.TCPOffset() != tt.wantOff || p.Protocol() != tt.wantProto {
			t.Errorf("%s: version %d off %d proto %d, want 6 %d %d", tt.name, p.Version(), p.TCPOffset(), p.Protocol(), tt.wantOff, tt.wantProto)
		}
		if err == nil {
			if string(p.Payload()) != "abcdefg" || p.TCP().SrcPort() != v6a.Port() {
				t.Errorf("%s: payload %q", tt.name, p.Payload())
			}
			// Extension headers do not enter the checksum.
			p.UpdateTCPChecksum()
			checkConsistent(t, p)
		} else if p.HasTCP() || p.TCP() != nil || p.Payload() != nil {
			t.Errorf("%s: TCP view on error", tt.name)
		}
	}
}

func TestParseIPv6Malformed(t *testing.T) {
	good := mustBuild(t, dataV6(3))
	withExt := v6WithExt(t, dataV6(3), dstOpts())
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"short", good[:39], ErrTruncated},
		{"version", mod(good, func(b []byte) { b[0] = 0x70 }), ErrBadHeader},
		{"payload len > buf", mod(good, func(b []byte) { b[4] = 0xff }), ErrTruncated},
		{"payload len 0", mod(good, func(b []byte) { b[4], b[5] = 0, 0 }), ErrTruncated},
		{"ext runs past end", mod(withExt, func(b []byte) { b[41] = 200 }), ErrTruncated},
		{"ext header cut", withExt[:44], ErrTruncated},
		{"ext header cut declared", mod(withExt, func(b []byte) { binary.BigEndian.PutUint16(b[4:6], 4) })[:44], ErrTruncated},
		{"frag cut", mod(good, func(b []byte) { b[6] = ProtoFragment; binary.BigEndian.PutUint16(b[4:6], 4) })[:44], ErrTruncated},
		{"ah cut", mod(good, func(b []byte) { b[6] = ProtoAH; binary.BigEndian.PutUint16(b[4:6], 4) })[:44], ErrTruncated},
		{"ah len past end", mod(good, func(b []byte) { b[6] = ProtoAH; b[41] = 250 }), ErrTruncated},
	}
	for _, tt := range tests {
		if _, err := Parse(tt.b); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestIPv6Accessors(t *testing.T) {
	s := dataV6(0)
	s.TTL, s.TOS, s.FlowLabel = 9, 0xb8, 0xabcde
	h, err := ParseIPv6(mustBuild(t, s))
	if err != nil {
		t.Fatal(err)
	}
	if h.TrafficClass() != 0xb8 || h.FlowLabel() != 0xabcde || h.PayloadLen() != len(h)-40 ||
		h.NextHeader() != ProtoTCP || h.HopLimit() != 9 || h.Src() != v6a.Addr() || h.Dst() != v6b.Addr() ||
		h[0]>>4 != 6 {
		t.Fatalf("accessors wrong: % x", []byte(h[:40]))
	}
	h.SetTrafficClass(0x03)
	h.SetFlowLabel(0xfffff1)
	h.SetHopLimit(1)
	if h.TrafficClass() != 3 || h.FlowLabel() != 0xffff1 || h.HopLimit() != 1 || h[0]>>4 != 6 {
		t.Fatal("setters")
	}
	na := netip.MustParseAddr("2001:db8::99")
	if h.SetSrc(na) != nil || h.Src() != na || h.SetDst(na) != nil || h.Dst() != na {
		t.Fatal("SetSrc/SetDst")
	}
	if err := h.SetSrc(v4a.Addr()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("SetSrc(v4) = %v", err)
	}
	h.SetPayloadLen(0)
	if h.PayloadLen() != 0 || len(h.Payload()) != len(h)-40 {
		t.Fatal("SetPayloadLen")
	}
}

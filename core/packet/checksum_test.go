package packet

import (
	"encoding/binary"
	"math/rand"
	"net/netip"
	"testing"
)

func TestOnesSumRFC1071Example(t *testing.T) {
	// RFC 1071 §3: the sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := OnesSum(b, 0); got != 0xddf2 {
		t.Fatalf("OnesSum = %#04x, want 0xddf2", got)
	}
	if got := Checksum(b); got != ^uint16(0xddf2) {
		t.Fatalf("Checksum = %#04x", got)
	}
}

func TestOnesSumTable(t *testing.T) {
	tests := []struct {
		name    string
		b       []byte
		initial uint16
		want    uint16
	}{
		{"empty", nil, 0, 0},
		{"empty initial", nil, 0x1234, 0x1234},
		{"one byte", []byte{0xab}, 0, 0xab00},
		{"odd", []byte{0x01, 0x02, 0x03}, 0, 0x0402},
		{"carry", []byte{0xff, 0xff, 0x00, 0x01}, 0, 0x0001},
		{"all ones", []byte{0xff, 0xff, 0xff, 0xff}, 0, 0xffff},
		{"initial carry", []byte{0x80, 0x00}, 0x8000, 0x0001},
		{"ipv4 header", []byte{ // classic example with checksum b861 zeroed
			0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
			0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}, 0, ^uint16(0xb861)},
	}
	for _, tt := range tests {
		if got := OnesSum(tt.b, tt.initial); got != tt.want {
			t.Errorf("%s: OnesSum = %#04x, want %#04x", tt.name, got, tt.want)
		}
	}
}

// TestOnesSumMatchesReference compares the 8-bytes-at-a-time sum with the
// naive one on every length up to 300 and random contents, offsets and
// initial values, including all-0xff data that maximises carries.
func TestOnesSumMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	buf := make([]byte, 400)
	for n := 0; n <= 300; n++ {
		for iter := 0; iter < 20; iter++ {
			off := r.Intn(8)
			b := buf[off : off+n]
			if iter == 0 {
				for i := range b {
					b[i] = 0xff
				}
			} else {
				r.Read(b)
			}
			init := uint16(r.Intn(65536))
			if got, want := OnesSum(b, init), refSum(b, init); got != want {
				t.Fatalf("len %d off %d init %#x: got %#04x want %#04x", n, off, init, got, want)
			}
		}
	}
}

func TestChecksumChaining(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	b := make([]byte, 1001)
	r.Read(b)
	whole := OnesSum(b, 0)
	for cut := 0; cut <= len(b); cut += 2 {
		if got := OnesSum(b[cut:], OnesSum(b[:cut], 0)); got != whole {
			t.Fatalf("cut %d: %#04x != %#04x", cut, got, whole)
		}
	}
}

// TestChecksumUpdateProperty: the RFC 1624 incremental update equals a full
// recomputation for random data and random field changes.
func TestChecksumUpdateProperty(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for iter := 0; iter < 20000; iter++ {
		b := make([]byte, 2+2*r.Intn(40))
		r.Read(b)
		// Checksum field at offset 0.
		b[0], b[1] = 0, 0
		binary.BigEndian.PutUint16(b, Checksum(b))
		csum := binary.BigEndian.Uint16(b)
		if len(b) >= 8 && r.Intn(2) == 0 {
			off := 2 + 2*r.Intn((len(b)-6)/2)
			old := binary.BigEndian.Uint32(b[off:])
			nv := r.Uint32()
			if r.Intn(10) == 0 {
				nv = old
			}
			binary.BigEndian.PutUint32(b[off:], nv)
			csum = ChecksumUpdate32(csum, old, nv)
		} else if len(b) >= 4 {
			off := 2 + 2*r.Intn((len(b)-2)/2)
			old := binary.BigEndian.Uint16(b[off:])
			nv := uint16(r.Intn(65536))
			binary.BigEndian.PutUint16(b[off:], nv)
			csum = ChecksumUpdate16(csum, old, nv)
		}
		b[0], b[1] = 0, 0
		if want := Checksum(b); csum != want {
			t.Fatalf("iter %d: incremental %#04x, full %#04x", iter, csum, want)
		}
	}
}

func TestChecksumUpdateBytesOddOffset(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	for iter := 0; iter < 5000; iter++ {
		b := make([]byte, 4+r.Intn(60))
		r.Read(b)
		b[0], b[1] = 0, 0
		csum := Checksum(b)
		off := 2 + r.Intn(len(b)-2)
		n := r.Intn(len(b) - off + 1)
		old := append([]byte(nil), b[off:off+n]...)
		r.Read(b[off : off+n])
		csum = checksumUpdateBytes(csum, off, old, b[off:off+n])
		if want := Checksum(b); csum != want {
			t.Fatalf("iter %d off %d n %d: incremental %#04x, full %#04x", iter, off, n, csum, want)
		}
	}
}

// TestTCPChecksumStandard builds segments, computes their checksum, and
// checks the definition: the sum over pseudo-header and segment with the
// checksum in place is 0xffff, and the value matches an independent
// computation from an explicitly laid-out pseudo-header.
func TestTCPChecksumStandard(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	for iter := 0; iter < 500; iter++ {
		b := mustBuild(t, randomSegment(r))
		p := mustParse(t, b)
		if got, want := p.TCP().Checksum(), refTCPChecksum(p); got != want {
			t.Fatalf("checksum %#04x, reference %#04x", got, want)
		}
		ph := PseudoHeaderSum(p.SrcAddr(), p.DstAddr(), ProtoTCP, len(p.TCP()))
		if s := OnesSum(p.TCP(), ph); s != 0xffff {
			t.Fatalf("sum with pseudo-header = %#04x, want 0xffff", s)
		}
		if !p.VerifyTCPChecksum() {
			t.Fatal("VerifyTCPChecksum false")
		}
		p.TCP()[len(p.TCP())-1] ^= 0x01
		if p.VerifyTCPChecksum() { // a single-bit error is always detected
			t.Fatal("VerifyTCPChecksum true after corruption")
		}
		p.UpdateTCPChecksum()
		if !p.VerifyTCPChecksum() || p.TCP().Checksum() != refTCPChecksum(p) {
			t.Fatal("UpdateTCPChecksum did not fix the checksum")
		}
	}
}

func TestPseudoHeaderSum(t *testing.T) {
	a4, b4 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	want := refSum([]byte{10, 0, 0, 1, 10, 0, 0, 2, 0, 6, 0x05, 0xdc}, 0)
	if got := PseudoHeaderSum(a4, b4, 6, 1500); got != want {
		t.Errorf("v4: %#04x want %#04x", got, want)
	}
	a6, b6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	ph := append(a6.AsSlice(), b6.AsSlice()...)
	ph = append(ph, 0, 1, 0, 0, 0, 0, 0, 6)
	if got, want := PseudoHeaderSum(a6, b6, 6, 65536), refSum(ph, 0); got != want {
		t.Errorf("v6: %#04x want %#04x", got, want)
	}
	// Mixed families must not panic.
	_ = PseudoHeaderSum(a4, b6, 6, 20)
	_ = PseudoHeaderSum(netip.Addr{}, netip.Addr{}, 6, 20)
}

// TestRewriteFieldsProperty: Rewrite* keep the checksum equal to a full
// recomputation on random packets.
func TestRewriteFieldsProperty(t *testing.T) {
	r := rand.New(rand.NewSource(6))
	for iter := 0; iter < 3000; iter++ {
		p := mustParse(t, mustBuild(t, randomSegment(r)))
		tcp := p.TCP()
		for k := 0; k < 4; k++ {
			switch r.Intn(5) {
			case 0:
				tcp.RewriteSeq(r.Uint32())
			case 1:
				tcp.RewriteAck(r.Uint32())
			case 2:
				tcp.RewriteWindow(uint16(r.Intn(65536)))
			case 3:
				tcp.RewriteUrgent(uint16(r.Intn(65536)))
			case 4:
				tcp.RewriteFlags(Flags(r.Intn(256)))
			}
		}
		if got, want := tcp.Checksum(), p.TCPChecksum(); got != want {
			t.Fatalf("iter %d: incremental %#04x, full %#04x", iter, got, want)
		}
	}
}

func TestRewriteOptionData(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	for iter := 0; iter < 2000; iter++ {
		s := randomSegment(r)
		// Put the SACK option at an odd offset half of the time.
		s.Options = nil
		if iter%2 == 1 {
			s.Options = AppendNOP(s.Options)
		}
		s.Options = AppendSACK(s.Options, SACKBlock{1, 2}, SACKBlock{3, 4})
		s.Options = AppendMSS(s.Options, 1400)
		p := mustParse(t, mustBuild(t, s))
		tcp := p.TCP()
		o, ok := tcp.Options().Find(OptSACK)
		if !ok {
			t.Fatal("no SACK")
		}
		nd := make([]byte, len(o.Data))
		r.Read(nd)
		if err := tcp.RewriteOptionData(o, nd); err != nil {
			t.Fatal(err)
		}
		m, _ := tcp.Options().Find(OptMSS)
		if err := tcp.RewriteOptionData(m, []byte{0x05, 0x00}); err != nil {
			t.Fatal(err)
		}
		if mss, _ := tcp.Options().MSS(); mss != 0x500 {
			t.Fatalf("MSS %d", mss)
		}
		if !p.VerifyTCPChecksum() {
			t.Fatalf("iter %d: checksum invalid after RewriteOptionData", iter)
		}
	}
	p := mustParse(t, mustBuild(t, synV4()))
	o, _ := p.Options().Find(OptMSS)
	for _, bad := range []struct {
		o Option
		d []byte
	}{
		{o, []byte{1}},
		{Option{Kind: OptNOP, Offset: 0}, nil},
		{Option{Kind: OptMSS, Offset: 39, Data: make([]byte, 2)}, []byte{1, 2}},
		{Option{Kind: OptMSS, Offset: -5, Data: make([]byte, 2)}, []byte{1, 2}},
	} {
		if err := p.TCP().RewriteOptionData(bad.o, bad.d); err != ErrInvalid {
			t.Errorf("RewriteOptionData(%+v) = %v, want ErrInvalid", bad.o, err)
		}
	}
}

func TestChecksumAllocs(t *testing.T) {
	b := make([]byte, 1500)
	p := mustParse(t, mustBuild(t, dataV4(1400)))
	n := testing.AllocsPerRun(100, func() {
		OnesSum(b, 0)
		p.UpdateTCPChecksum()
		p.VerifyTCPChecksum()
		p.IPv4().UpdateChecksum()
		p.TCP().RewriteSeq(12345)
		ChecksumUpdate32(1, 2, 3)
	})
	if n != 0 {
		t.Fatalf("allocs = %v, want 0", n)
	}
}

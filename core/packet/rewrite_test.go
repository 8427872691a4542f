package packet

import (
	"bytes"
	"errors"
	"math/rand"
	"testing"
)

// optList returns copies of the options in o, skipping NOP and EOL, for
// comparing option sequences across rewrites.
func optList(o Options) [][]byte {
	var l [][]byte
	it := o.Iter()
	for opt, ok := it.Next(); ok; opt, ok = it.Next() {
		if opt.Kind > OptNOP {
			l = append(l, append([]byte(nil), o[opt.Offset:opt.Offset+opt.Len()]...))
		}
	}
	return l
}

func equalOptLists(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

var enoSYN = []byte{0x21, 0x23} // two TEP suboptions, like an ENO SYN

func TestInsertOptionLinuxSYN(t *testing.T) {
	for _, seg := range []Segment{synV4(), synV6()} {
		seg.Payload = []byte("tfo-data") // payload must move too
		b := withCap(mustBuild(t, seg), 64)
		p := mustParse(t, b)
		before := optList(p.Options())
		if err := p.InsertOption(OptENO, enoSYN); err != nil {
			t.Fatal(err)
		}
		checkConsistent(t, p)
		if p.TCPHeaderLen() != 44 || p.Len() != len(b)+4 || string(p.Payload()) != "tfo-data" {
			t.Fatalf("hl %d len %d payload %q", p.TCPHeaderLen(), p.Len(), p.Payload())
		}
		after := optList(p.Options())
		if !equalOptLists(after[:len(before)], before) || !bytes.Equal(after[len(before)], []byte{OptENO, 4, 0x21, 0x23}) {
			t.Fatalf("options % x", p.Options())
		}
		// 16 bytes remain, 17 once the NOP before window scale is
		// dropped; 18 do not fit.
		if err := p.InsertOption(253, make([]byte, 16)); !errors.Is(err, ErrNoOptionSpace) {
			t.Fatalf("18-byte insert: %v", err)
		}
		if p.Options().Count(OptNOP) != 1 {
			t.Fatal("failed insert compacted")
		}
		if err := p.InsertOption(253, make([]byte, 15)); err != nil {
			t.Fatal(err)
		}
		checkConsistent(t, p)
		if p.TCPHeaderLen() != 60 || p.Options().Count(OptNOP) != 0 {
			t.Fatalf("hl %d options % x", p.TCPHeaderLen(), p.Options())
		}
		if got := optList(p.Options()); !equalOptLists(got[:len(before)], before) {
			t.Fatal("compaction changed options")
		}
		if err := p.InsertOption(OptSACKPermitted, nil); !errors.Is(err, ErrNoOptionSpace) {
			t.Fatalf("insert into full header: %v", err)
		}
	}
}

func TestInsertOption20Bytes(t *testing.T) {
	// A Linux SYN has 20 bytes of options, so exactly 20 more fit.
	p := mustParse(t, withCap(mustBuild(t, synV4()), 64))
	if err := p.InsertOption(OptENO, make([]byte, 18)); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, p)
	if p.TCPHeaderLen() != 60 || p.Options().Count(OptENO) != 1 {
		t.Fatal("layout")
	}
}

func TestInsertOptionCompacts(t *testing.T) {
	// NOP-padded options: 4 NOPs + SACK-perm + 2 NOPs + TS = 18 bytes, padded to 20.
	opts := []byte{1, 1, 1, 1, 4, 2, 1, 1}
	opts = AppendTimestamps(opts, 1, 2)
	s := dataV4(50)
	s.Options = append(opts, 1, 1) // trailing NOPs are padding
	p := mustParse(t, withCap(mustBuild(t, s), 64))
	before := optList(p.Options())
	// 20 used (with padding); 18 without trailing NOPs; 12 without any NOP.
	// A 26-byte option fits only after compaction.
	if err := p.InsertOption(OptENO, make([]byte, 24)); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, p)
	after := optList(p.Options())
	if p.Options().Count(OptNOP) != 0 || !equalOptLists(after[:2], before) || len(after) != 3 || p.TCPHeaderLen() != 60 {
		t.Fatalf("options % x", p.Options())
	}
	if !bytes.Equal(p.Payload(), s.Payload) {
		t.Fatal("payload damaged")
	}
	// Without need, NOPs stay.
	p = mustParse(t, withCap(mustBuild(t, s), 64))
	if err := p.InsertOption(OptENO, nil); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, p)
	if !bytes.Equal(p.Options()[:18], s.Options[:18]) || !bytes.Equal(p.Options()[18:20], []byte{OptENO, 2}) {
		t.Fatalf("options % x", p.Options())
	}
}

func TestInsertOptionErrors(t *testing.T) {
	b := mustBuild(t, synV4())
	p := mustParse(t, b[:len(b):len(b)]) // no spare capacity
	orig := append([]byte(nil), b...)
	tests := []struct {
		kind uint8
		data []byte
		want error
	}{
		{OptEOL, nil, ErrInvalid},
		{OptNOP, nil, ErrInvalid},
		{OptENO, make([]byte, 39), ErrNoOptionSpace},
		{OptENO, make([]byte, 300), ErrNoOptionSpace},
		{OptENO, nil, ErrShortBuffer},
	}
	for _, tt := range tests {
		if err := p.InsertOption(tt.kind, tt.data); !errors.Is(err, tt.want) {
			t.Errorf("InsertOption(%d, %d bytes) = %v, want %v", tt.kind, len(tt.data), err, tt.want)
		}
		if !bytes.Equal(p.Bytes(), orig) {
			t.Fatal("failed insert modified the packet")
		}
	}
	// Capacity exactly enough.
	p = mustParse(t, withCap(b, 4))
	if err := p.InsertOption(OptENO, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, p)
	// Insert into a packet that already has malformed options.
	bad := withCap(b, 8)
	bad[41] = 1
	q, err := Parse(bad)
	if !errors.Is(err, ErrBadOptions) {
		t.Fatal(err)
	}
	if err := q.InsertOption(OptENO, nil); !errors.Is(err, ErrBadOptions) {
		t.Fatalf("insert on malformed options: %v", err)
	}
	// IPv4 total length limit.
	s := dataV4(65535 - 20 - 32)
	big := withCap(mustBuild(t, s), 8)
	pb := mustParse(t, big)
	if err := pb.InsertOption(OptENO, nil); !errors.Is(err, ErrTooLong) {
		t.Fatalf("insert at 64 KiB: %v", err)
	}
	s = dataV6(65535 - 32)
	pb = mustParse(t, withCap(mustBuild(t, s), 8))
	if err := pb.InsertOption(OptENO, nil); !errors.Is(err, ErrTooLong) {
		t.Fatalf("v6 insert at 64 KiB: %v", err)
	}
}

func TestReplaceOption(t *testing.T) {
	tests := []struct {
		name   string
		kind   uint8
		data   []byte
		wantHL int
	}{
		{"same length", OptMSS, []byte{0x05, 0x00}, 40},
		{"shorter", OptTimestamps, []byte{1, 2}, 36},
		{"much shorter", OptTimestamps, nil, 32},
		{"longer", OptSACKPermitted, make([]byte, 6), 48},
		{"fills space", OptSACKPermitted, make([]byte, 20), 60},
		{"fills space after compaction", OptSACKPermitted, make([]byte, 21), 60},
	}
	for _, tt := range tests {
		for _, seg := range []Segment{synV4(), synV6()} {
			seg.Payload = []byte("0123456789")
			p := mustParse(t, withCap(mustBuild(t, seg), 64))
			before := optList(p.Options())
			if err := p.ReplaceOption(tt.kind, tt.data); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			checkConsistent(t, p)
			if p.TCPHeaderLen() != tt.wantHL || string(p.Payload()) != "0123456789" {
				t.Fatalf("%s: hl %d payload %q", tt.name, p.TCPHeaderLen(), p.Payload())
			}
			after := optList(p.Options())
			if len(after) != len(before) {
				t.Fatalf("%s: %d options, want %d", tt.name, len(after), len(before))
			}
			for i := range after {
				want := before[i]
				if want[0] == tt.kind {
					want = AppendOption(nil, tt.kind, tt.data)
				}
				if !bytes.Equal(after[i], want) {
					t.Fatalf("%s: option %d = % x, want % x", tt.name, i, after[i], want)
				}
			}
		}
	}
	p := mustParse(t, withCap(mustBuild(t, synV4()), 64))
	if err := p.ReplaceOption(OptENO, nil); !errors.Is(err, ErrOptionNotFound) {
		t.Errorf("replace missing: %v", err)
	}
	if err := p.ReplaceOption(OptMSS, make([]byte, 24)); !errors.Is(err, ErrNoOptionSpace) {
		t.Errorf("replace too long: %v", err)
	}
	// Replacing the first of two occurrences leaves the second.
	s := synV4()
	s.Options = AppendOption(AppendOption(nil, OptENO, []byte{1}), OptENO, []byte{2})
	p = mustParse(t, withCap(mustBuild(t, s), 64))
	if err := p.ReplaceOption(OptENO, []byte{9, 9}); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, p)
	if l := optList(p.Options()); len(l) != 2 || !bytes.Equal(l[0], []byte{69, 4, 9, 9}) || !bytes.Equal(l[1], []byte{69, 3, 2}) {
		t.Fatalf("options % x", p.Options())
	}
}

func TestRemoveOption(t *testing.T) {
	s := dataV4(33)
	s.Options = AppendOption(dataOptions(), OptENO, []byte{1}) // NOP NOP TS ENO = 15 → 16
	p := mustParse(t, withCap(mustBuild(t, s), 0))
	if err := p.RemoveOption(OptENO); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, p)
	if p.TCPHeaderLen() != 32 || !bytes.Equal(p.Options(), dataOptions()) || !bytes.Equal(p.Payload(), s.Payload) {
		t.Fatalf("after remove: hl %d options % x", p.TCPHeaderLen(), p.Options())
	}
	// Removing TS drops the NOPs that aligned it.
	if err := p.RemoveOption(OptTimestamps); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, p)
	if p.TCPHeaderLen() != 20 || !bytes.Equal(p.Payload(), s.Payload) {
		t.Fatalf("after TS remove: hl %d", p.TCPHeaderLen())
	}
	if err := p.RemoveOption(OptTimestamps); !errors.Is(err, ErrOptionNotFound) {
		t.Fatalf("remove missing: %v", err)
	}
	if err := p.RemoveOption(OptNOP); !errors.Is(err, ErrInvalid) {
		t.Fatalf("remove NOP: %v", err)
	}
	// All duplicates go.
	s = synV6()
	s.Options = AppendOption(AppendMSS(AppendOption(nil, OptENO, []byte{1}), 1220), OptENO, []byte{2})
	p = mustParse(t, mustBuild(t, s))
	if err := p.RemoveOption(OptENO); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, p)
	if !bytes.Equal(p.Options(), AppendMSS(nil, 1220)) {
		t.Fatalf("options % x", p.Options())
	}
}

func TestCompactOptions(t *testing.T) {
	s := dataV6(9)
	s.Options = []byte{1, 1, 1, 1, 1, 1, 1, 1, 2, 4, 5, 0xb4, 1, 1, 1, 1, 0, 7, 7, 7}
	p := mustParse(t, withCap(mustBuild(t, s), 0))
	if err := p.CompactOptions(); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, p)
	if !bytes.Equal(p.Options(), []byte{2, 4, 5, 0xb4}) || !bytes.Equal(p.Payload(), s.Payload) {
		t.Fatalf("options % x payload %q", p.Options(), p.Payload())
	}
	// Odd total gets EOL padding.
	s.Options = []byte{1, 3, 3, 7}
	p = mustParse(t, mustBuild(t, s))
	if err := p.CompactOptions(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Options(), []byte{3, 3, 7, 0}) {
		t.Fatalf("options % x", p.Options())
	}
}

func TestPayloadRewrite(t *testing.T) {
	for _, seg := range []Segment{dataV4(100), dataV6(100)} {
		for _, n := range []int{0, 1, 99, 100, 101, 1000} {
			p := mustParse(t, withCap(mustBuild(t, seg), 1000))
			np := bytes.Repeat([]byte{0x5a}, n)
			if err := p.SetPayload(np); err != nil {
				t.Fatal(err)
			}
			checkConsistent(t, p)
			if !bytes.Equal(p.Payload(), np) || !bytes.Equal(p.Options(), seg.Options) {
				t.Fatalf("n=%d: payload or options wrong", n)
			}
		}
		p := mustParse(t, withCap(mustBuild(t, seg), 20))
		// Aliasing: shift the payload right by 16 bytes in place.
		old := append([]byte(nil), p.Payload()...)
		pay, err := p.ResizePayload(116)
		if err != nil {
			t.Fatal(err)
		}
		copy(pay[16:], pay[:100])
		copy(pay, "frame-header-16b")
		p.UpdateTCPChecksum()
		checkConsistent(t, p)
		if !bytes.Equal(p.Payload()[16:], old) || string(p.Payload()[:16]) != "frame-header-16b" {
			t.Fatal("ResizePayload content")
		}
		if _, err := p.ResizePayload(200); !errors.Is(err, ErrShortBuffer) {
			t.Fatalf("grow beyond cap: %v", err)
		}
		if _, err := p.ResizePayload(-1); !errors.Is(err, ErrInvalid) {
			t.Fatalf("negative: %v", err)
		}
		if err := p.SetPayload(make([]byte, 70000)); !errors.Is(err, ErrShortBuffer) && !errors.Is(err, ErrTooLong) {
			t.Fatalf("huge: %v", err)
		}
		if err := p.SetPayload(p.Payload()[16:]); err != nil { // aliasing shrink
			t.Fatal(err)
		}
		checkConsistent(t, p)
		if !bytes.Equal(p.Payload(), old) {
			t.Fatal("aliasing SetPayload")
		}
	}
	s := dataV4(10)
	p := mustParse(t, withCap(mustBuild(t, s), 70000))
	if err := p.SetPayload(make([]byte, 65536)); !errors.Is(err, ErrTooLong) {
		t.Fatalf("too long: %v", err)
	}
}

func TestByteSliceForms(t *testing.T) {
	b := withCap(mustBuild(t, synV4()), 64)
	b, err := InsertOption(b, OptENO, enoSYN)
	if err != nil {
		t.Fatal(err)
	}
	b, err = ReplaceOption(b, OptENO, []byte{0x21})
	if err != nil {
		t.Fatal(err)
	}
	b, err = SetPayload(b, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	p := mustParse(t, b)
	checkConsistent(t, p)
	if l := optList(p.Options()); !bytes.Equal(l[len(l)-1], []byte{69, 3, 0x21}) || string(p.Payload()) != "x" {
		t.Fatalf("% x", p.Options())
	}
	b, err = RemoveOption(b, OptENO)
	if err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, mustParse(t, b))
	if len(b) != 20+40+1 {
		t.Fatalf("len %d", len(b))
	}
	junk := []byte{0x45, 1, 2}
	for _, f := range []func() ([]byte, error){
		func() ([]byte, error) { return InsertOption(junk, 69, nil) },
		func() ([]byte, error) { return ReplaceOption(junk, 69, nil) },
		func() ([]byte, error) { return RemoveOption(junk, 69) },
		func() ([]byte, error) { return SetPayload(junk, nil) },
	} {
		if out, err := f(); err == nil || !bytes.Equal(out, junk) {
			t.Error("junk accepted")
		}
	}
}

// TestRewriteProperty applies random option and payload edits to random
// packets and checks consistency, checksum validity, payload integrity and
// that untouched options keep their order and bytes.
func TestRewriteProperty(t *testing.T) {
	r := rand.New(rand.NewSource(8))
	for iter := 0; iter < 3000; iter++ {
		p := mustParse(t, withCap(mustBuild(t, randomSegment(r)), 64))
		for k := 0; k < 3; k++ {
			before := optList(p.Options())
			payload := append([]byte(nil), p.Payload()...)
			kind := uint8(2 + r.Intn(8))
			data := make([]byte, r.Intn(12))
			r.Read(data)
			var err error
			op := r.Intn(4)
			switch op {
			case 0:
				err = p.InsertOption(kind, data)
			case 1:
				err = p.ReplaceOption(kind, data)
			case 2:
				err = p.RemoveOption(kind)
			case 3:
				err = p.CompactOptions()
			}
			if err != nil && !errors.Is(err, ErrNoOptionSpace) && !errors.Is(err, ErrOptionNotFound) {
				t.Fatalf("op %d: %v", op, err)
			}
			checkConsistent(t, p)
			if !bytes.Equal(p.Payload(), payload) {
				t.Fatalf("op %d: payload changed", op)
			}
			after := optList(p.Options())
			if err != nil {
				if !equalOptLists(after, before) {
					t.Fatalf("op %d failed but changed options", op)
				}
				continue
			}
			var want [][]byte
			replaced := false
			for _, o := range before {
				switch {
				case op == 1 && o[0] == kind && !replaced:
					want = append(want, AppendOption(nil, kind, data))
					replaced = true
				case op == 2 && o[0] == kind:
				default:
					want = append(want, o)
				}
			}
			if op == 0 {
				want = append(want, AppendOption(nil, kind, data))
			}
			if !equalOptLists(after, want) {
				t.Fatalf("op %d kind %d: options % x, want %x", op, kind, after, want)
			}
		}
	}
}

func TestRewriteAllocs(t *testing.T) {
	syn := mustBuild(t, synV4())
	buf := make([]byte, len(syn), len(syn)+64)
	data := mustBuild(t, dataV6(1000))
	dbuf := make([]byte, len(data), len(data)+64)
	frame := make([]byte, 1020)
	n := testing.AllocsPerRun(200, func() {
		copy(buf, syn)
		p, _ := Parse(buf[:len(syn)])
		_ = p.InsertOption(OptENO, enoSYN)
		_ = p.ReplaceOption(OptENO, enoSYN[:1])
		_ = p.RemoveOption(OptENO)
		_ = p.CompactOptions()
		copy(dbuf, data)
		q, _ := Parse(dbuf[:len(data)])
		_ = q.SetPayload(frame)
		_, _ = q.ResizePayload(900)
		_, _ = InsertOption(buf[:len(syn)], OptENO, enoSYN)
	})
	if n != 0 {
		t.Fatalf("allocs = %v, want 0", n)
	}
}

// TestRewriteKeepsBadChecksumBad: option edits adjust the checksum
// incrementally, so a corrupt segment is not laundered into a valid one.
func TestRewriteKeepsBadChecksumBad(t *testing.T) {
	p := mustParse(t, withCap(mustBuild(t, synV4()), 64))
	tcp := p.TCP()
	tcp.SetChecksum(tcp.Checksum() + 1)
	if err := p.InsertOption(OptENO, enoSYN); err != nil {
		t.Fatal(err)
	}
	if p.VerifyTCPChecksum() {
		t.Fatal("corrupt checksum became valid")
	}
	if got, want := p.TCP().Checksum(), p.TCPChecksum()+1; got != want {
		t.Fatalf("checksum %#04x, want correct+1 = %#04x", got, want)
	}
}

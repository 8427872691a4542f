package packet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestParseTable(t *testing.T) {
	syn4 := mustBuild(t, synV4())
	data4 := mustBuild(t, dataV4(100))
	tests := []struct {
		name        string
		b           []byte
		want        error
		version     int
		hasTCP      bool
		tcpHL, plen int
	}{
		{"syn v4", syn4, nil, 4, true, 40, 0},
		{"data v4", data4, nil, 4, true, 32, 100},
		{"syn v6", mustBuild(t, synV6()), nil, 6, true, 40, 0},
		{"empty", nil, ErrTruncated, 0, false, 0, 0},
		{"one byte", []byte{0x45}, ErrTruncated, 0, false, 0, 0},
		{"version 0", make([]byte, 60), ErrBadHeader, 0, false, 0, 0},
		{"udp", mod(data4, func(b []byte) { b[9] = 17 }), ErrNotTCP, 4, false, 0, 0},
		{"first fragment", mod(data4, func(b []byte) { b[6] |= 0x20 }), ErrFragment, 4, false, 0, 0},
		{"later fragment", mod(data4, func(b []byte) { b[6], b[7] = 0, 0x10 }), ErrFragment, 4, false, 0, 0},
		{"later fragment with MF", mod(data4, func(b []byte) { b[6], b[7] = 0x20, 0x10 }), ErrFragment, 4, false, 0, 0},
		{"tcp too short", mod(syn4[:39], func(b []byte) { b[3] = 39 }), ErrTruncated, 4, false, 0, 0},
		{"tcp doff 4", mod(syn4, func(b []byte) { b[32] = 0x40 }), ErrBadHeader, 4, false, 0, 0},
		{"tcp doff past end", mod(syn4[:50], func(b []byte) { b[3] = 50 }), ErrTruncated, 4, false, 0, 0},
		{"bad options", mod(syn4, func(b []byte) { b[41] = 1 }), ErrBadOptions, 4, true, 40, 0},
		{"options overrun", mod(syn4, func(b []byte) { b[41] = 40 }), ErrBadOptions, 4, true, 40, 0},
	}
	for _, tt := range tests {
		p, err := Parse(tt.b)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
			continue
		}
		if p.Version() != tt.version || p.HasTCP() != tt.hasTCP || p.TCPHeaderLen() != tt.tcpHL || p.PayloadLen() != tt.plen {
			t.Errorf("%s: got v%d tcp=%v hl=%d plen=%d", tt.name, p.Version(), p.HasTCP(), p.TCPHeaderLen(), p.PayloadLen())
		}
	}
}

func TestErrors(t *testing.T) {
	for e := Error(0); e < 60; e++ {
		if e.Error() == "" {
			t.Errorf("%d: empty message", e)
		}
		c := e.Category()
		if e != 0 && int(e) < len(errInfo) && errInfo[e].msg != "" {
			if !errors.Is(e, c) || c == 0 || c > ErrInvalid {
				t.Errorf("%v: category %v", e, c)
			}
		}
	}
	if errors.Is(errIPv4Short, ErrBadHeader) || !errors.Is(errIPv4Short, ErrTruncated) {
		t.Error("errIPv4Short category")
	}
	if errors.Is(ErrTruncated, errIPv4Short) {
		t.Error("category matched a specific error")
	}
	if errors.Is(ErrTruncated, errors.New("x")) {
		t.Error("matched foreign error")
	}
	if Error(200).Error() != "packet: unknown error" {
		t.Error("unknown error message")
	}
}

func TestPacketAccessors(t *testing.T) {
	for _, s := range []Segment{dataV4(3), dataV6(3)} {
		p := mustParse(t, mustBuild(t, s))
		if p.Src() != s.Src || p.Dst() != s.Dst || p.SrcAddr() != s.Src.Addr() || p.DstAddr() != s.Dst.Addr() {
			t.Errorf("addresses %v %v", p.Src(), p.Dst())
		}
		if string(p.Payload()) != "abc" || !bytes.Equal(p.Options(), dataOptions()) {
			t.Errorf("payload %q options % x", p.Payload(), p.Options())
		}
		if (p.IPv4() != nil) != (p.Version() == 4) || (p.IPv6() != nil) != (p.Version() == 6) {
			t.Error("IPv4/IPv6 views")
		}
		want := 20
		if p.Version() == 6 {
			want = 40
		}
		if p.IPHeaderLen() != want || p.Protocol() != ProtoTCP || p.Len() != len(p.Bytes()) {
			t.Error("IPHeaderLen/Protocol/Len")
		}
	}
	var z Packet
	if z.TCP() != nil || z.Options() != nil || z.Payload() != nil || z.PayloadLen() != 0 || z.IPHeaderLen() != 0 ||
		z.SrcAddr().IsValid() || z.DstAddr().IsValid() || z.Src().Port() != 0 || z.Dst().IsValid() ||
		z.IPv4() != nil || z.IPv6() != nil || z.TCPChecksum() != 0 || z.VerifyTCPChecksum() {
		t.Error("zero Packet accessors")
	}
	z.UpdateTCPChecksum()
	if z.InsertOption(OptENO, nil) != ErrNotTCP || z.ReplaceOption(OptENO, nil) != ErrNotTCP ||
		z.RemoveOption(OptENO) != ErrNotTCP || z.CompactOptions() != ErrNotTCP || z.SetPayload(nil) != ErrNotTCP {
		t.Error("zero Packet rewrites")
	}
	if _, err := z.ResizePayload(0); err != ErrNotTCP {
		t.Error("zero Packet ResizePayload")
	}
}

func TestTCPAccessors(t *testing.T) {
	s := dataV4(4)
	s.Urgent = 77
	s.Flags = ACK | URG | ECE | CWR
	tcp := mustParse(t, mustBuild(t, s)).TCP()
	if tcp.SrcPort() != s.Src.Port() || tcp.DstPort() != s.Dst.Port() || tcp.Seq() != s.Seq || tcp.Ack() != s.Ack ||
		tcp.DataOffset() != 8 || tcp.HeaderLen() != 32 || tcp.Flags() != s.Flags || tcp.Window() != s.Window ||
		tcp.Urgent() != 77 || len(tcp.Options()) != 12 || string(tcp.Payload()) != "abcd" {
		t.Fatalf("accessors: % x", []byte(tcp))
	}
	tcp.SetSrcPort(1)
	tcp.SetDstPort(2)
	tcp.SetSeq(3)
	tcp.SetAck(4)
	tcp.SetFlags(FIN)
	tcp.SetWindow(5)
	tcp.SetChecksum(6)
	tcp.SetUrgent(7)
	if tcp.SrcPort() != 1 || tcp.DstPort() != 2 || tcp.Seq() != 3 || tcp.Ack() != 4 || tcp.Flags() != FIN ||
		tcp.Window() != 5 || tcp.Checksum() != 6 || tcp.Urgent() != 7 || tcp.HeaderLen() != 32 {
		t.Fatal("setters")
	}
	tcp[12] |= 0x01 // AE/reserved bit must survive SetHeaderLen
	tcp.SetHeaderLen(24)
	if tcp.HeaderLen() != 24 || tcp[12]&0x0f != 1 || len(tcp.Options()) != 4 {
		t.Fatal("SetHeaderLen")
	}
	// Nonsense data offsets clamp instead of panicking.
	tcp.SetHeaderLen(60)
	short := tcp[:40]
	if len(short.Options()) != 20 || len(short.Payload()) != 0 {
		t.Fatal("clamp high")
	}
	tcp[12] = 0x10
	if len(tcp.Options()) != 0 || len(tcp.Payload()) != len(tcp)-20 {
		t.Fatal("clamp low")
	}
}

func TestFlagsString(t *testing.T) {
	tests := map[Flags]string{0: "0", SYN: "SYN", SYN | ACK: "SYN|ACK", FIN | PSH | ACK: "FIN|PSH|ACK",
		0xff: "FIN|SYN|RST|PSH|ACK|URG|ECE|CWR"}
	for f, want := range tests {
		if f.String() != want {
			t.Errorf("%08b: %q, want %q", uint8(f), f.String(), want)
		}
	}
	if !(SYN | ACK).Has(SYN) || SYN.Has(SYN|ACK) {
		t.Error("Has")
	}
}

func TestOptionWalk(t *testing.T) {
	type opt struct {
		kind   uint8
		off, n int
	}
	tests := []struct {
		name string
		b    []byte
		want []opt
		err  error
	}{
		{"empty", nil, nil, nil},
		{"linux syn", linuxSYNOptions(), []opt{{2, 0, 4}, {4, 4, 2}, {8, 6, 10}, {1, 16, 1}, {3, 17, 3}}, nil},
		{"eol stops", []byte{1, 0, 2, 4, 1, 2}, []opt{{1, 0, 1}, {0, 1, 1}}, nil},
		{"garbage after eol", []byte{0, 9, 9, 9}, []opt{{0, 0, 1}}, nil},
		{"len 0", []byte{2, 0, 0, 0}, nil, ErrBadOptions},
		{"len 1", []byte{1, 5, 1, 0}, []opt{{1, 0, 1}}, ErrBadOptions},
		{"overrun", []byte{2, 4, 1}, nil, ErrBadOptions},
		{"kind without len", []byte{1, 1, 1, 8}, []opt{{1, 0, 1}, {1, 1, 1}, {1, 2, 1}}, ErrBadOptions},
		{"exact end", []byte{30, 4, 1, 2}, []opt{{30, 0, 4}}, nil},
		{"len 2 empty", []byte{4, 2, 4, 2}, []opt{{4, 0, 2}, {4, 2, 2}}, nil},
	}
	for _, tt := range tests {
		it := Options(tt.b).Iter()
		var got []opt
		for o, ok := it.Next(); ok; o, ok = it.Next() {
			got = append(got, opt{o.Kind, o.Offset, o.Len()})
			if o.Kind > 1 && !bytes.Equal(o.Data, tt.b[o.Offset+2:o.Offset+o.Len()]) {
				t.Errorf("%s: data mismatch", tt.name)
			}
		}
		if _, ok := it.Next(); ok {
			t.Errorf("%s: Next after end", tt.name)
		}
		if !errors.Is(it.Err(), tt.err) || (tt.err == nil) != (it.Err() == nil) {
			t.Errorf("%s: err %v, want %v", tt.name, it.Err(), tt.err)
		}
		if len(got) != len(tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
				break
			}
		}
		if (Options(tt.b).Validate() == nil) != (tt.err == nil) {
			t.Errorf("%s: Validate disagrees", tt.name)
		}
	}
}

func TestOptionHelpers(t *testing.T) {
	o := Options(linuxSYNOptions())
	if mss, ok := o.MSS(); !ok || mss != 1460 {
		t.Error("MSS")
	}
	if ws, ok := o.WindowScale(); !ok || ws != 7 {
		t.Error("WindowScale")
	}
	if !o.SACKPermitted() {
		t.Error("SACKPermitted")
	}
	if v, e, ok := o.Timestamps(); !ok || v != 0x11223344 || e != 0 {
		t.Error("Timestamps")
	}
	if _, ok := o.SACK(); ok {
		t.Error("SACK on SYN")
	}
	if !o.SetMSS(1200) || !o.SetTimestamps(5, 6) {
		t.Error("setters failed")
	}
	if mss, _ := o.MSS(); mss != 1200 {
		t.Error("SetMSS")
	}
	if v, e, _ := o.Timestamps(); v != 5 || e != 6 {
		t.Error("SetTimestamps")
	}
	if o.Count(OptNOP) != 1 || o.Count(OptMSS) != 1 || o.Count(OptENO) != 0 || o.Used() != 20 {
		t.Error("Count/Used")
	}
	if f, ok := o.Find(OptWindowScale); !ok || f.Offset != 17 || f.Len() != 3 {
		t.Error("Find")
	}

	// Malformed lengths of known kinds are not reported as values.
	bad := Options{OptMSS, 3, 5, OptWindowScale, 4, 1, 2, OptSACKPermitted, 3, 0, OptTimestamps, 2, OptSACK, 6, 1, 2, 3, 4}
	if _, ok := bad.MSS(); ok {
		t.Error("MSS len 3 accepted")
	}
	if bad.SetMSS(1) || bad.SetTimestamps(1, 2) {
		t.Error("setter on malformed option")
	}
	if _, ok := bad.WindowScale(); ok {
		t.Error("WS len 4 accepted")
	}
	if bad.SACKPermitted() {
		t.Error("SACK-perm len 3 accepted")
	}
	if _, _, ok := bad.Timestamps(); ok {
		t.Error("TS len 2 accepted")
	}
	if _, ok := bad.SACK(); ok {
		t.Error("SACK len 6 accepted")
	}
	var none Options
	if _, ok := none.MSS(); ok || none.Count(2) != 0 || none.Used() != 0 || none.Validate() != nil {
		t.Error("empty options")
	}

	// Two ENO options, as TCP-ENO must detect.
	eno := AppendOption(AppendOption(nil, OptENO, []byte{0x21}), OptENO, []byte{0x22})
	if Options(eno).Count(OptENO) != 2 {
		t.Error("ENO count")
	}
	// Used ignores trailing NOPs and EOL padding.
	if Options([]byte{2, 4, 5, 0xb4, 1, 1, 0, 0}).Used() != 4 {
		t.Error("Used with padding")
	}
}

func TestSACKBlocks(t *testing.T) {
	blocks := []SACKBlock{{100, 200}, {300, 400}, {0xfffffff0, 0x10}}
	o := Options(AppendSACK([]byte{OptNOP, OptNOP}, blocks...))
	s, ok := o.SACK()
	if !ok || s.Len() != 3 {
		t.Fatal("SACK")
	}
	for i, b := range blocks {
		if s.Block(i) != b {
			t.Errorf("block %d: %v", i, s.Block(i))
		}
	}
	s.SetBlock(1, SACKBlock{7, 8})
	if s2, _ := o.SACK(); s2.Block(1) != (SACKBlock{7, 8}) || s2.Block(0) != blocks[0] {
		t.Error("SetBlock")
	}
	if binary.BigEndian.Uint32(o[2+2+8:]) != 7 {
		t.Error("SetBlock not in place")
	}
}

func TestParseAllocs(t *testing.T) {
	b4 := mustBuild(t, synV4())
	b6 := v6WithExt(t, synV6(), hbh(), frag(0, false), ah())
	var sink int
	n := testing.AllocsPerRun(200, func() {
		p, _ := Parse(b4)
		q, _ := Parse(b6)
		o := p.Options()
		it := o.Iter()
		for opt, ok := it.Next(); ok; opt, ok = it.Next() {
			sink += int(opt.Kind)
		}
		sink += o.Count(OptENO) + q.TCPOffset()
		if mss, ok := o.MSS(); ok {
			sink += int(mss)
		}
		_, _, _ = o.Timestamps()
		sink += p.Src().Addr().BitLen() + q.Dst().Addr().BitLen()
		_, err := Parse(b4[:30])
		if err != nil {
			sink++
		}
	})
	if n != 0 {
		t.Fatalf("allocs = %v, want 0", n)
	}
	_ = sink
}

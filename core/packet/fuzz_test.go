package packet

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse parses arbitrary bytes and exercises every accessor and the
// option walk on whatever parsed; nothing may panic, every error must be a
// typed category, and a parsed packet must be self-consistent.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := append([]byte(nil), data...)
		p, err := Parse(data)
		if err != nil {
			var e Error
			if !errors.As(err, &e) || e.Category() < ErrTruncated || e.Category() > ErrInvalid {
				t.Fatalf("untyped error %v", err)
			}
		}
		exercise(t, p)
		if !bytes.Equal(data, orig) {
			t.Fatal("read-only accessors modified the packet")
		}
		if p.HasTCP() {
			if err != nil && !errors.Is(err, ErrBadOptions) {
				t.Fatalf("TCP view with error %v", err)
			}
			checkLayout(t, p, data)
			if err == nil {
				q, err := Parse(p.Bytes())
				if err != nil || !sameLayout(q, p) {
					t.Fatalf("re-parse differs: %v", err)
				}
				mutate(t, p)
			}
		}
		// The lower-level parsers on the same bytes.
		if h, err := ParseIPv4(data); err == nil {
			_ = h.IsFragment() || h.VerifyChecksum()
			_, _ = h.Src(), h.Payload()
		}
		if h, err := ParseIPv6(data); err == nil {
			_, _, _ = h.UpperLayer()
		}
		if tcp, err := ParseTCP(data); tcp != nil {
			_ = tcp.Options().Count(OptENO)
			_ = tcp.Payload()
			_ = err
		}
		walkOptions(Options(data))
	})
}

func sameLayout(a, b Packet) bool {
	return len(a.buf) == len(b.buf) && &a.buf[0] == &b.buf[0] && a.version == b.version &&
		a.proto == b.proto && a.tcpOff == b.tcpOff && a.tcpHdrLen == b.tcpHdrLen
}

func checkLayout(t *testing.T, p Packet, data []byte) {
	if p.Len() > len(data) || &p.Bytes()[0] != &data[0] {
		t.Fatal("packet is not a prefix of the input")
	}
	hl := p.TCPHeaderLen()
	if hl < TCPMinHeaderLen || hl > TCPMaxHeaderLen || hl%4 != 0 || hl != p.TCP().HeaderLen() {
		t.Fatalf("TCP header length %d", hl)
	}
	if p.PayloadOffset()+p.PayloadLen() != p.Len() || p.TCPOffset()+len(p.TCP()) != p.Len() ||
		len(p.Options()) != hl-TCPMinHeaderLen || len(p.Payload()) != p.PayloadLen() {
		t.Fatal("inconsistent layout")
	}
	switch p.Version() {
	case 4:
		if p.IPv4().TotalLen() != p.Len() || p.TCPOffset() != p.IPv4().HeaderLen() {
			t.Fatal("IPv4 lengths")
		}
	case 6:
		if p.IPv6().PayloadLen()+IPv6HeaderLen != p.Len() || p.TCPOffset() < IPv6HeaderLen {
			t.Fatal("IPv6 lengths")
		}
	default:
		t.Fatal("version")
	}
}

// exercise calls every read accessor.
func exercise(t *testing.T, p Packet) {
	_, _, _, _ = p.Version(), p.Protocol(), p.Len(), p.IPHeaderLen()
	_, _, _, _ = p.Src(), p.Dst(), p.SrcAddr(), p.DstAddr()
	_, _, _ = p.TCPOffset(), p.PayloadOffset(), p.PayloadLen()
	_ = p.Payload()
	if h := p.IPv4(); h != nil {
		_, _, _, _, _ = h.HeaderLen(), h.TOS(), h.TotalLen(), h.ID(), h.DontFragment()
		_, _, _, _, _ = h.MoreFragments(), h.FragmentOffset(), h.TTL(), h.Protocol(), h.Checksum()
		_, _, _, _ = h.ComputeChecksum(), h.VerifyChecksum(), h.Src(), h.Dst()
		_ = h.Payload()
	}
	if h := p.IPv6(); h != nil {
		_, _, _, _, _ = h.TrafficClass(), h.FlowLabel(), h.PayloadLen(), h.NextHeader(), h.HopLimit()
		_, _, _ = h.Src(), h.Dst(), h.Payload()
		_, _, _ = h.UpperLayer()
	}
	tcp := p.TCP()
	if tcp == nil {
		return
	}
	_, _, _, _, _ = tcp.SrcPort(), tcp.DstPort(), tcp.Seq(), tcp.Ack(), tcp.DataOffset()
	_, _, _, _, _ = tcp.HeaderLen(), tcp.Flags().String(), tcp.Window(), tcp.Checksum(), tcp.Urgent()
	_, _ = tcp.Options(), tcp.Payload()
	_, _ = p.TCPChecksum(), p.VerifyTCPChecksum()
	walkOptions(p.Options())
}

func walkOptions(o Options) {
	it := o.Iter()
	for opt, ok := it.Next(); ok; opt, ok = it.Next() {
		_ = opt.Len()
	}
	_ = it.Err()
	_ = o.Validate()
	_, _ = o.Find(OptENO)
	_, _ = o.Count(OptENO), o.Used()
	_, _ = o.MSS()
	_, _ = o.WindowScale()
	_ = o.SACKPermitted()
	_, _, _ = o.Timestamps()
	if s, ok := o.SACK(); ok {
		for i := range s.Len() {
			_ = s.Block(i)
		}
	}
}

// mutate applies the in-place rewrites to a copy and checks that the
// incremental checksum updates preserve validity exactly.
func mutate(t *testing.T, p Packet) {
	b := append([]byte(nil), p.Bytes()...)
	q, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	valid := q.VerifyTCPChecksum()
	tcp := q.TCP()
	tcp.RewriteSeq(^tcp.Seq())
	tcp.RewriteAck(tcp.Ack() + 12345)
	tcp.RewriteWindow(^tcp.Window())
	tcp.RewriteUrgent(tcp.Urgent() + 1)
	tcp.RewriteFlags(tcp.Flags() ^ PSH)
	if o, ok := tcp.Options().Find(OptTimestamps); ok {
		nd := append([]byte(nil), o.Data...)
		for i := range nd {
			nd[i]++
		}
		if err := tcp.RewriteOptionData(o, nd); err != nil {
			t.Fatal(err)
		}
	}
	if q.VerifyTCPChecksum() != valid {
		t.Fatalf("incremental rewrites changed checksum validity from %v", valid)
	}
	q.UpdateTCPChecksum()
	if !q.VerifyTCPChecksum() {
		t.Fatal("UpdateTCPChecksum did not produce a valid checksum")
	}
	if h := q.IPv4(); h != nil {
		h.UpdateChecksum()
		if !h.VerifyChecksum() {
			t.Fatal("IPv4 UpdateChecksum")
		}
	}
}

// FuzzOptionRewrite parses a packet and applies one rewrite. A success
// must re-parse with consistent lengths, keep the payload (for option
// edits), change the option list exactly as asked, and keep checksum
// validity as it was; a failure must leave the packet untouched.
func FuzzOptionRewrite(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, op, kind, dlen uint8) {
		p0, err := Parse(data)
		if err != nil {
			return
		}
		buf := make([]byte, p0.Len(), p0.Len()+int(dlen)+48)
		copy(buf, p0.Bytes())
		p, err := Parse(buf)
		if err != nil {
			t.Fatal(err)
		}
		orig := append([]byte(nil), buf...)
		tcpValid := p.VerifyTCPChecksum()
		ipValid := p.Version() == 6 || p.IPv4().VerifyChecksum()
		before := optList(p.Options())
		payload := append([]byte(nil), p.Payload()...)
		optData := bytes.Repeat([]byte{kind ^ 0x5a}, int(dlen%48))

		op %= 6
		switch op {
		case 0:
			err = p.InsertOption(kind, optData)
		case 1:
			err = p.ReplaceOption(kind, optData)
		case 2:
			err = p.RemoveOption(kind)
		case 3:
			err = p.CompactOptions()
		case 4:
			payload = bytes.Repeat([]byte{kind}, int(dlen)+len(payload)/2)
			err = p.SetPayload(payload)
		case 5:
			var pay []byte
			pay, err = p.ResizePayload(len(payload) - int(dlen))
			if err == nil {
				copy(pay, payload)
				payload = payload[:len(pay)]
			}
		}
		if err != nil {
			var e Error
			if !errors.As(err, &e) {
				t.Fatalf("untyped error %v", err)
			}
			if !bytes.Equal(p.Bytes(), orig) {
				t.Fatalf("op %d failed (%v) but modified the packet", op, err)
			}
			if op <= 3 && (errors.Is(err, ErrShortBuffer) || errors.Is(err, ErrBadOptions)) {
				t.Fatalf("op %d: unexpected %v", op, err)
			}
			return
		}
		q, err := Parse(p.Bytes())
		if err != nil {
			t.Fatalf("op %d: re-parse: %v", op, err)
		}
		if !sameLayout(q, p) {
			t.Fatalf("op %d: re-parse layout differs", op)
		}
		checkLayout(t, p, p.Bytes())
		if !bytes.Equal(p.Payload(), payload) {
			t.Fatalf("op %d: payload wrong", op)
		}
		if p.Version() == 4 && ipValid && !p.IPv4().VerifyChecksum() {
			t.Fatalf("op %d: IPv4 header checksum broken", op)
		}
		switch {
		case op == 4:
			if !p.VerifyTCPChecksum() {
				t.Fatal("SetPayload: invalid checksum")
			}
		case op <= 3:
			if p.VerifyTCPChecksum() != tcpValid {
				t.Fatalf("op %d: checksum validity %v -> %v", op, tcpValid, !tcpValid)
			}
			var want [][]byte
			replaced := false
			for _, o := range before {
				switch {
				case op == 1 && o[0] == kind && !replaced:
					want = append(want, AppendOption(nil, kind, optData))
					replaced = true
				case op == 2 && o[0] == kind:
				default:
					want = append(want, o)
				}
			}
			if op == 0 {
				want = append(want, AppendOption(nil, kind, optData))
			}
			if got := optList(p.Options()); !equalOptLists(got, want) {
				t.Fatalf("op %d: options % x, want % x", op, got, want)
			}
		}
	})
}

var writeSeeds = flag.Bool("write-seeds", false, "rewrite the seed corpora in testdata/fuzz")

// TestWriteSeedCorpus regenerates the checked-in seed corpora from code
// (go test -run TestWriteSeedCorpus -write-seeds). Files the fuzzer adds
// (crashers kept as regression seeds) are not touched.
func TestWriteSeedCorpus(t *testing.T) {
	if !*writeSeeds {
		t.Skip("use -write-seeds")
	}
	seeds := seedPackets(t)
	for _, s := range seeds {
		writeSeed(t, "FuzzParse", s.name, s.b)
	}
	ops := []struct {
		op, kind, dlen uint8
	}{
		{0, OptENO, 2}, {0, OptENO, 18}, {0, 253, 30}, {1, OptMSS, 2}, {1, OptTimestamps, 0},
		{1, OptSACKPermitted, 20}, {2, OptENO, 0}, {2, OptTimestamps, 0}, {3, 0, 0}, {4, 0, 100}, {5, 0, 1},
	}
	for _, s := range seeds {
		if _, err := Parse(s.b); err != nil {
			continue
		}
		for _, o := range ops {
			writeSeed(t, "FuzzOptionRewrite", fmt.Sprintf("%s-op%d-k%d-l%d", s.name, o.op, o.kind, o.dlen), s.b, o.op, o.kind, o.dlen)
		}
	}
}

type seed struct {
	name string
	b    []byte
}

func seedPackets(t *testing.T) []seed {
	synack := synV4()
	synack.Src, synack.Dst = synack.Dst, synack.Src
	synack.Flags = SYN | ACK
	synack.Ack = 0x01020305
	synack.Options = AppendOption(linuxSYNOptions(), OptENO, []byte{0x23})
	enoSyn := synV6()
	enoSyn.Options = AppendOption(linuxSYNOptions(), OptENO, []byte{0x21, 0x23, 0x24})
	sackAck := dataV4(0)
	sackAck.Options = AppendSACK(AppendTimestamps([]byte{1, 1}, 7, 8)[:12], SACKBlock{3000, 4000}, SACKBlock{5000, 6000})
	sackAck.Options = append([]byte{}, sackAck.Options...)
	nopHeavy := dataV4(10)
	nopHeavy.Options = []byte{1, 1, 1, 1, 1, 1, 1, 1, 2, 4, 5, 0xb4, 1, 1, 1, 0}
	ipOpts := mustBuild(t, dataV4(20))
	ipOpts = append(append(append([]byte(nil), ipOpts[:20]...), 1, 1, 1, 0), ipOpts[20:]...)
	ipOpts[0], ipOpts[3] = 0x46, byte(len(ipOpts))
	IPv4(ipOpts).UpdateChecksum()
	mod := func(b []byte, f func([]byte)) []byte {
		c := append([]byte(nil), b...)
		f(c)
		return c
	}
	syn4 := mustBuild(t, synV4())
	data4 := mustBuild(t, dataV4(100))
	data6ext := v6WithExt(t, dataV6(40), hbh(), dstOpts(), routing(), ah())
	return []seed{
		{"ipv4-syn-linux", syn4},
		{"ipv4-synack-eno", mustBuild(t, synack)},
		{"ipv6-syn-eno", mustBuild(t, enoSyn)},
		{"ipv6-syn-linux", mustBuild(t, synV6())},
		{"ipv4-data", data4},
		{"ipv4-data-1500", mustBuild(t, dataV4(1448))},
		{"ipv6-data", mustBuild(t, dataV6(200))},
		{"ipv4-ack-sack", mustBuild(t, sackAck)},
		{"ipv4-nop-padding", mustBuild(t, nopHeavy)},
		{"ipv4-ip-options", ipOpts},
		{"ipv4-padded-frame", append(append([]byte(nil), mustBuild(t, dataV4(0))...), 0, 0, 0, 0, 0, 0)},
		{"ipv6-ext-headers", data6ext},
		{"ipv6-atomic-fragment", v6WithExt(t, synV6(), frag(0, false))},
		{"ipv6-first-fragment", v6WithExt(t, dataV6(30), frag(0, true))},
		{"ipv6-later-fragment", v6WithExt(t, dataV6(30), frag(185, false))},
		{"ipv6-esp", v6WithExt(t, dataV6(30), ext(ProtoESP, 1, 2, 3, 4, 5, 6, 7))},
		{"ipv4-first-fragment", mod(data4, func(b []byte) { b[6] = 0x20 })},
		{"ipv4-later-fragment", mod(data4, func(b []byte) { b[6], b[7] = 0, 0xb9 })},
		{"ipv4-udp", mod(data4, func(b []byte) { b[9] = 17 })},
		{"ipv4-truncated-ip", syn4[:12]},
		{"ipv4-truncated-tcp", mod(syn4[:35], func(b []byte) { b[3] = 35 })},
		{"ipv4-truncated-buffer", syn4[:45]},
		{"ipv6-truncated-ext", data6ext[:60]},
		{"ipv4-bad-option-len", mod(syn4, func(b []byte) { b[41] = 1 })},
		{"ipv4-option-overrun", mod(syn4, func(b []byte) { b[41] = 30 })},
		{"ipv4-doff-4", mod(syn4, func(b []byte) { b[32] = 0x40 })},
		{"ipv4-bad-checksum", mod(data4, func(b []byte) { b[len(b)-1] ^= 0xff })},
		{"empty", nil},
	}
}

func writeSeed(t *testing.T, target, name string, vals ...any) {
	var sb bytes.Buffer
	sb.WriteString("go test fuzz v1\n")
	for _, v := range vals {
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&sb, "[]byte(%q)\n", v)
		case uint8:
			fmt.Fprintf(&sb, "byte(%q)\n", v)
		default:
			t.Fatalf("unsupported seed type %T", v)
		}
	}
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "seed-"+name), sb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

package eno

import (
	"testing"
)

// The hot paths run once per SYN or per segment in the packet engine and
// must not allocate.
func TestZeroAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	syn := h(mss + "01 01 45 0f 21 22 a3 " + "01 02 03 04 05 06 07 08 09 0a")
	synENO := h("45 0f 21 22 a3 01 02 03 04 05 06 07 08 09 0a")
	synAck := h(mss + "45 04 01 23")
	peerENO := h("45 04 01 24")
	resume := Suboption{Byte: 0xa3, Data: h("x12")}
	cfgA := &Config{TEPs: tcpcryptTEPs, Offer: func(t TEP) []byte {
		if t == 0x24 {
			return resume.Data
		}
		return nil
	}, Accept: func(c Candidate) bool { return len(c.B.Data) <= 17 }}
	cfgB := &Config{TEPs: tcpcryptTEPs, Choose: func(o Suboption, _ int) (Suboption, bool) {
		if o.V() {
			return resume, true
		}
		return Suboption{Byte: o.Byte}, true
	}}
	dst := make([]byte, 0, 64)
	sink := 0

	cases := []struct {
		name string
		fn   func()
	}{
		{"Iter", func() {
			it := Suboptions(synENO[2:])
			for s, ok := it.Next(); ok; s, ok = it.Next() {
				sink += len(s.Data)
			}
		}},
		{"ParseSYNOption", func() {
			o, _ := ParseSYNOption(synENO)
			g, _ := o.Global()
			sink += o.NumTEPs() + int(g)
		}},
		{"ParseSYNOption malformed", func() {
			_, err := ParseSYNOption(h3)
			if err == nil {
				panic("accepted")
			}
		}},
		{"ScanOptions", func() {
			o, _ := ScanOptions(syn)
			sink += o.NumENO
		}},
		{"AppendOption", func() {
			out, _ := AppendOption(dst[:0], Suboption{Byte: 1}, resume, Suboption{Byte: 0x21})
			sink += len(out)
		}},
		{"AppendSYN", func() {
			out, _ := cfgA.AppendSYN(dst[:0])
			sink += len(out)
		}},
		{"Respond", func() {
			out, r, _ := Respond(dst[:0], cfgB, syn)
			sink += len(out) + int(r.NegTEP())
		}},
		{"Complete", func() {
			r, _ := Complete(cfgA, synENO, synAck)
			sink += int(r.NegTEP())
		}},
		{"Negotiate", func() {
			r, _ := Negotiate(cfgA, synENO, peerENO)
			sink += len(r.Transcript())
		}},
	}
	for _, c := range cases {
		if n := testing.AllocsPerRun(100, c.fn); n != 0 {
			t.Errorf("%s: %v allocations", c.name, n)
		}
	}

	tr := new(Tracker)
	ackSeg := Segment{ACK: true, Options: h("45 02")}
	synSeg := Segment{SYN: true, Options: syn, DataLen: 10}
	handshake := func() {
		*tr = NewTracker(cfgB)
		v := tr.Recv(synSeg)
		out, _ := tr.Send(dst[:0], Segment{SYN: true, ACK: true})
		v2 := tr.Recv(ackSeg)
		if v2.Event != EventEnabled || !v.DiscardSYNData {
			panic("handshake failed")
		}
		out, _ = tr.Send(out, Segment{ACK: true, DataLen: 100})
		r, _ := tr.Result()
		sink += len(out) + len(r.Transcript())
	}
	if n := testing.AllocsPerRun(100, handshake); n != 0 {
		t.Errorf("Tracker handshake: %v allocations", n)
	}
	_ = sink
}

var h3 = []byte{0x45, 0x05, 0x23, 0x85, 0xa3}

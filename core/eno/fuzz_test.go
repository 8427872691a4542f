package eno

import (
	"bytes"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the decoders as the contents of a
// SYN-form option and as a TCP options area.
func FuzzDecode(f *testing.F) {
	f.Add(h("01 23"))
	f.Add(h("90 a3 x17 21"))
	f.Fuzz(func(t *testing.T, contents []byte) {
		var subs []Suboption
		consumed := 0
		it := Suboptions(contents)
		for s, ok := it.Next(); ok; s, ok = it.Next() {
			if s.Byte >= 0x80 && s.Byte < 0xa0 {
				t.Fatalf("length byte %#02x yielded as a suboption", s.Byte)
			}
			if s.Data != nil && (!s.V() || cap(s.Data) != len(s.Data)) {
				t.Fatalf("bad data on %+v", s)
			}
			if s.Data == nil && s.V() {
				t.Fatalf("v=1 suboption without data slice: %+v", s)
			}
			consumed += 1 + len(s.Data)
			subs = append(subs, s)
		}
		if consumed > len(contents) || len(subs) > len(contents) {
			t.Fatalf("decoded %d bytes in %d suboptions from %d", consumed, len(subs), len(contents))
		}
		err := it.Err()
		if len(contents) <= MaxSuboptions {
			opt := append([]byte{OptionKind, byte(2 + len(contents))}, contents...)
			o, perr := ParseSYNOption(opt)
			if perr != err {
				t.Fatalf("ParseSYNOption err %v, iterator err %v", perr, err)
			}
			if err == nil {
				// Re-encoding what was decoded yields the same suboptions,
				// in no more bytes (only a length byte before the last
				// suboption can go).
				enc, eerr := AppendOption(nil, subs...)
				if eerr != nil {
					t.Fatalf("re-encode %+v: %v", subs, eerr)
				}
				if len(enc) > len(opt) {
					t.Fatalf("re-encoded % x longer than % x", enc, opt)
				}
				it2 := Suboptions(enc[2:])
				for i := 0; ; i++ {
					s, ok := it2.Next()
					if !ok {
						if i != len(subs) || it2.Err() != nil {
							t.Fatalf("re-decoded %d of %d: %v", i, len(subs), it2.Err())
						}
						break
					}
					if i >= len(subs) || s.Byte != subs[i].Byte || !bytes.Equal(s.Data, subs[i].Data) {
						t.Fatalf("re-decoded suboption %d = %+v", i, s)
					}
				}
				n := 0
				for _, s := range subs {
					if !s.Global() {
						n++
					}
				}
				if o.NumTEPs() != n {
					t.Fatalf("NumTEPs %d, want %d", o.NumTEPs(), n)
				}
			}
		}

		o, _ := ScanOptions(contents)
		if o.ENO != nil && (o.ENO[0] != OptionKind || int(o.ENO[1]) != len(o.ENO) || o.NumENO < 1) {
			t.Fatalf("ScanOptions ENO % x", o.ENO)
		}
		if o.ENO == nil && o.NumENO > 1 {
			// Only legacy options: never more than the area can hold.
			if o.NumENO > len(contents)/4 {
				t.Fatalf("NumENO %d in %d bytes", o.NumENO, len(contents))
			}
		}
	})
}

// fuzzOption wraps up to 38 fuzzed bytes as a SYN-form ENO option.
func fuzzOption(contents []byte) []byte {
	if len(contents) > MaxSuboptions {
		contents = contents[:MaxSuboptions]
	}
	return append([]byte{OptionKind, byte(2 + len(contents))}, contents...)
}

// FuzzNegotiate runs two fuzzed SYN options through the simultaneous-open
// path in both directions, and through the passive and active paths of a
// three-way handshake.
func FuzzNegotiate(f *testing.F) {
	f.Add(h("21 23"), h("01 23"))
	f.Add(h("21 a3 x9"), h("01 a3 x10"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		optA, optB := fuzzOption(a), fuzzOption(b)
		var cfg Config

		// Simultaneous open: each end sees its own option and the other's.
		r1, e1 := Negotiate(&cfg, optA, optB)
		r2, e2 := Negotiate(&cfg, optB, optA)
		if e1 != e2 {
			t.Fatalf("ends disagree: %v vs %v", e1, e2)
		}
		if e1 == None {
			agree(t, &r1, &r2)
			want := append(append([]byte{}, optA...), optB...)
			if r1.Role() == RoleB {
				want = append(append([]byte{}, optB...), optA...)
			}
			if !bytes.Equal(r1.Transcript(), want) {
				t.Fatalf("transcript % x, want % x", r1.Transcript(), want)
			}
		}

		// Three-way handshake: optA is the active opener's SYN option, b
		// configures the passive opener.
		var teps []TEP
		var seen [128]bool
		for _, c := range b {
			if t := TEP(c & 0x7f); t.Valid() && !t.Reserved() && !seen[t] && len(teps) < 8 {
				seen[t] = true
				teps = append(teps, t)
			}
		}
		cfgB := Config{TEPs: teps, AAMandatory: len(b) > 0 && b[0]&1 == 1, Choose: func(o Suboption, _ int) (Suboption, bool) {
			if o.V() && len(o.Data) >= 9 {
				return Suboption{Byte: o.Byte, Data: b[:len(b)%18]}, true
			}
			return Suboption{Byte: byte(o.TEP())}, true
		}}
		synAck, rb, reason := Respond(nil, &cfgB, optA)
		if reason != None {
			if len(synAck) != 0 {
				t.Fatalf("reply % x with reason %v", synAck, reason)
			}
			return
		}
		if _, err := ParseSYNOption(synAck); err != nil {
			t.Fatalf("reply % x: %v", synAck, err)
		}
		ra, reason := Complete(&Config{}, optA, synAck)
		if reason != None {
			t.Fatalf("passive opener succeeded, active failed: %v (SYN % x, SYN-ACK % x)", reason, optA, synAck)
		}
		agree(t, &ra, &rb)
		if ra.Role() != RoleA || !bytes.Equal(ra.AOption(), optA) || !bytes.Equal(ra.BOption(), synAck) {
			t.Fatalf("active opener: role %v transcript % x", ra.Role(), ra.Transcript())
		}
	})
}

// agree checks two ends' results of one negotiation.
func agree(t *testing.T, x, y *Result) {
	t.Helper()
	if x.Role() == y.Role() {
		t.Fatalf("both ends are %v", x.Role())
	}
	if x.NegTEP() != y.NegTEP() || x.SessionIDPrefix() != y.SessionIDPrefix() {
		t.Fatalf("NegTEP %#02x vs %#02x", x.NegTEP(), y.NegTEP())
	}
	if !bytes.Equal(x.Transcript(), y.Transcript()) {
		t.Fatalf("transcripts differ:\n% x\n% x", x.Transcript(), y.Transcript())
	}
	if tr := x.Transcript(); len(tr) < 4 || tr[0] != OptionKind || tr[x.AOption()[1]] != OptionKind {
		t.Fatalf("transcript % x does not hold two ENO options", tr)
	}
	if x.A().Byte != y.A().Byte || !bytes.Equal(x.A().Data, y.A().Data) ||
		x.B().Byte != y.B().Byte || !bytes.Equal(x.B().Data, y.B().Data) {
		t.Fatalf("suboptions differ: %+v %+v vs %+v %+v", x.A(), x.B(), y.A(), y.B())
	}
	if x.B().Byte != x.NegTEP() || x.A().TEP() != x.TEP() || !x.TEP().Valid() {
		t.Fatalf("NegTEP %#02x, A %+v, B %+v", x.NegTEP(), x.A(), x.B())
	}
	if x.SelfGOpt() != y.PeerGOpt() || x.PeerGOpt() != y.SelfGOpt() {
		t.Fatalf("global suboptions: %#02x/%#02x vs %#02x/%#02x", x.SelfGOpt(), x.PeerGOpt(), y.SelfGOpt(), y.PeerGOpt())
	}
}

// FuzzTracker drives a Tracker with a fuzzed segment sequence: each
// segment is a control byte (bit 0 send, 1 SYN, 2 ACK, 3 data) and a
// length-prefixed options area.
func FuzzTracker(f *testing.F) {
	f.Add(h("03 00 06 04 00 02 04 45 02"), false)
	f.Fuzz(func(t *testing.T, script []byte, roleB bool) {
		cfg := &Config{TEPs: []TEP{0x21, 0x23}}
		if roleB {
			cfg.SelfGOpt = GlobalB
		}
		tr := NewTracker(cfg)
		wasEnabled := false
		for len(script) >= 2 {
			ctl, n := script[0], int(script[1])
			script = script[2:]
			n = min(n, len(script))
			seg := Segment{SYN: ctl&2 != 0, ACK: ctl&4 != 0, Options: script[:n]}
			if ctl&8 != 0 {
				seg.DataLen = 1
			}
			script = script[n:]
			before := tr.State()
			var ev Event
			if ctl&1 != 0 {
				var out []byte
				out, ev = tr.Send(nil, seg)
				switch {
				case before == StateDisabled && len(out) != 0:
					t.Fatalf("disabled tracker sent % x", out)
				case len(out) != 0 && seg.SYN:
					if _, err := ParseSYNOption(out); err != nil {
						t.Fatalf("sent SYN option % x: %v", out, err)
					}
				case len(out) != 0 && !bytes.Equal(out, []byte{OptionKind, 2}):
					t.Fatalf("sent non-SYN option % x", out)
				}
			} else {
				v := tr.Recv(seg)
				ev = v.Event
				if v.DiscardSYNData && (!seg.SYN || seg.DataLen == 0) {
					t.Fatal("discard without SYN data")
				}
			}
			after := tr.State()
			switch {
			case wasEnabled && after != StateEnabled:
				t.Fatalf("enabled tracker went %v", after)
			case (ev == EventEnabled) != (before != StateEnabled && after == StateEnabled):
				t.Fatalf("event %v for %v -> %v", ev, before, after)
			case (ev == EventDisabled) != (before != StateDisabled && after == StateDisabled):
				t.Fatalf("event %v for %v -> %v", ev, before, after)
			case (after == StateDisabled) != (tr.Reason() != None):
				t.Fatalf("state %v reason %v", after, tr.Reason())
			}
			wasEnabled = after == StateEnabled
			if _, err := tr.Result(); (err == nil) != wasEnabled {
				t.Fatalf("Result err %v in state %v", err, after)
			}
			if wasEnabled {
				r, _ := tr.Result()
				if tr := r.Transcript(); tr[0] != OptionKind || !r.TEP().Valid() {
					t.Fatalf("result transcript % x", tr)
				}
			}
		}
	})
}

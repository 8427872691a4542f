package eno

import (
	"bytes"
	"errors"
	"testing"
)

// step is one segment through a Tracker and what must come of it.
type step struct {
	send    bool // through Send (true) or Recv
	syn     bool
	ack     bool
	opts    string // hex of the options area
	data    int
	want    string // Send: the ENO option it must append
	ev      Event
	discard bool // Recv: DiscardSYNData
	state   State
	reason  Reason
}

func sendSYN(want string) step {
	return step{send: true, syn: true, want: want, state: StateNegotiating}
}

func sendSYNACK(want string) step {
	return step{send: true, syn: true, ack: true, want: want, state: StateNegotiating}
}

const mss = "02 04 05 b4 "

func runSteps(t *testing.T, tr *Tracker, steps []step) {
	t.Helper()
	for i, s := range steps {
		seg := Segment{SYN: s.syn, ACK: s.ack, Options: h(s.opts), DataLen: s.data}
		if s.send {
			got, ev := tr.Send([]byte{0xee}, seg)
			if !bytes.Equal(got[1:], h(s.want)) || ev != s.ev {
				t.Fatalf("step %d: Send = % x, %v; want % x, %v", i, got[1:], ev, h(s.want), s.ev)
			}
		} else {
			v := tr.Recv(seg)
			if v.Event != s.ev || v.DiscardSYNData != s.discard {
				t.Fatalf("step %d: Recv = %+v; want event %v discard %v (reason %v)", i, v, s.ev, s.discard, tr.Reason())
			}
		}
		if tr.State() != s.state || tr.Reason() != s.reason {
			t.Fatalf("step %d: state %v reason %v; want %v %v", i, tr.State(), tr.Reason(), s.state, s.reason)
		}
	}
}

var (
	cfgA  = Config{TEPs: []TEP{0x21, 0x23}}                    // SYN: 45 04 21 23
	cfgB  = Config{TEPs: []TEP{0x21, 0x23}}                    // SYN-ACK: 45 04 01 23
	cfgSB = Config{TEPs: []TEP{0x21, 0x23}, SelfGOpt: GlobalB} // b=1 for a simultaneous open
)

func TestTracker(t *testing.T) {
	const N, D = StateNegotiating, StateDisabled
	const E = StateEnabled
	tests := []struct {
		name  string
		cfg   *Config
		steps []step
	}{
		{"§6 Fig. 9 active opener", &cfgA, []step{
			sendSYN("45 04 21 23"),
			{syn: true, ack: true, opts: mss + "45 04 01 23", state: N},
			// §4.6: the third segment carries 45 02; sent+received ENO ACK enables.
			{send: true, ack: true, want: "45 02", ev: EventEnabled, state: E},
			// ENO in every segment until a non-SYN segment arrives.
			{send: true, ack: true, data: 100, want: "45 02", state: E},
			{ack: true, data: 100, state: E},
			{send: true, ack: true, state: E},
		}},
		{"§6 Fig. 9 passive opener", &cfgB, []step{
			{syn: true, opts: mss + "45 04 21 23", state: N},
			sendSYNACK("45 04 01 23"),
			{ack: true, opts: "45 02", ev: EventEnabled, state: E},
			{send: true, ack: true, data: 10, state: E},
		}},
		{"§4.6 rule 1: A's third segment lacks ENO", &cfgB, []step{
			{syn: true, opts: "45 04 21 23", state: N},
			sendSYNACK("45 04 01 23"),
			{ack: true, opts: mss, ev: EventDisabled, state: D, reason: MissingInACK},
			{send: true, ack: true, state: D, reason: MissingInACK},
		}},
		{"§4.1 several ENO options in a non-SYN segment count as one; contents ignored", &cfgB, []step{
			{syn: true, opts: "45 04 21 23", state: N},
			sendSYNACK("45 04 01 23"),
			{ack: true, opts: "45 05 aa bb cc 01 45 02", ev: EventEnabled, state: E},
		}},
		{"§4.6 rule 1: A's lost third segment, data segment carries ENO", &cfgB, []step{
			{syn: true, opts: "45 04 21 23", state: N},
			sendSYNACK("45 04 01 23"),
			sendSYNACK("45 04 01 23"), // SYN-ACK retransmission: same option
			{ack: true, data: 50, opts: "45 02", ev: EventEnabled, state: E},
		}},
		{"§6 Fig. 11 SYN-ACK stripped: A disables and sends no ENO", &cfgA, []step{
			sendSYN("45 04 21 23"),
			{syn: true, ack: true, opts: mss, ev: EventDisabled, state: D, reason: NoENOInSYNACK},
			{send: true, ack: true, state: D, reason: NoENOInSYNACK},
		}},
		{"§6 Fig. 10 SYN without ENO: B disables", &cfgB, []step{
			{syn: true, opts: mss, ev: EventDisabled, state: D, reason: NoENOInSYN},
			{send: true, syn: true, ack: true, state: D, reason: NoENOInSYN},
		}},
		{"§4.6 rule 2: no valid TEP; no vacuous reply", &cfgB, []step{
			{syn: true, opts: "45 03 22", ev: EventDisabled, state: D, reason: NoCommonTEP},
			{send: true, syn: true, ack: true, state: D, reason: NoCommonTEP},
		}},
		{"§4.6 rule 3: active opener with b=1 meets a passive opener", &cfgB, []step{
			{syn: true, opts: "45 04 01 23", ev: EventDisabled, state: D, reason: SameRoleBit},
		}},
		{"§4.6 vacuous SYN option", &cfgB, []step{
			{syn: true, opts: "45 03 00", ev: EventDisabled, state: D, reason: Vacuous},
		}},
		{"§4.1 two ENO options in a SYN", &cfgB, []step{
			{syn: true, opts: "45 03 23 45 03 23", ev: EventDisabled, state: D, reason: MultipleENO},
		}},
		{"§4.4 ill-formed SYN option", &cfgB, []step{
			{syn: true, opts: "45 04 81 a3", ev: EventDisabled, state: D, reason: Malformed},
		}},
		{"§4.6 SYN retransmissions carry the same option", &cfgA, []step{
			sendSYN("45 04 21 23"),
			sendSYN("45 04 21 23"),
			sendSYN("45 04 21 23"),
			{syn: true, ack: true, opts: "45 04 01 21", state: N},
			{send: true, ack: true, want: "45 02", ev: EventEnabled, state: E},
		}},
		{"§4.6 passive: identical SYN retransmission", &cfgB, []step{
			{syn: true, opts: "45 04 21 23", state: N},
			sendSYNACK("45 04 01 23"),
			{syn: true, opts: "45 04 21 23", state: N},
			sendSYNACK("45 04 01 23"),
			{ack: true, opts: "45 02", ev: EventEnabled, state: E},
		}},
		{"§4.6 retransmitted SYN without ENO (active opener gave up)", &cfgB, []step{
			{syn: true, opts: "45 04 21 23", state: N},
			sendSYNACK("45 04 01 23"),
			{syn: true, opts: mss, ev: EventDisabled, state: D, reason: SYNENORemoved},
			{send: true, syn: true, ack: true, state: D, reason: SYNENORemoved},
		}},
		{"§4.6 [rec] retransmitted SYN with a changed option", &cfgB, []step{
			{syn: true, opts: "45 04 21 23", state: N},
			{syn: true, opts: "45 03 23", ev: EventDisabled, state: D, reason: SYNChanged},
		}},
		{"§4.6 [rec] retransmitted SYN with two ENO options", &cfgB, []step{
			{syn: true, opts: "45 04 21 23", state: N},
			{syn: true, opts: "45 04 21 23 45 02", ev: EventDisabled, state: D, reason: MultipleENO},
		}},
		{"§4.6 changes after the first ACK are ignored", &cfgB, []step{
			{syn: true, opts: "45 04 21 23", state: N},
			sendSYNACK("45 04 01 23"),
			{ack: true, opts: "45 02", ev: EventEnabled, state: E},
			{syn: true, opts: "45 03 21", state: E},
			{ack: true, state: E},
		}},
		{"§4.6 A: retransmitted SYN-ACK after the first ACK", &cfgA, []step{
			sendSYN("45 04 21 23"),
			{syn: true, ack: true, opts: "45 04 01 23", state: N},
			{send: true, ack: true, want: "45 02", ev: EventEnabled, state: E},
			{syn: true, ack: true, opts: "45 04 01 21", state: E},
			{send: true, ack: true, want: "45 02", state: E},
		}},
		{"§4.6 rule 1 ends at the first ACK: A ignores a changed SYN-ACK copy", &cfgA, []step{
			sendSYN("45 04 21 23"),
			{syn: true, ack: true, opts: "45 04 01 23", state: N},
			{syn: true, ack: true, opts: mss, state: N},
			{send: true, ack: true, want: "45 02", ev: EventEnabled, state: E},
			{send: true, syn: true, want: "45 04 21 23", state: E}, // a SYN now would repeat the option
		}},
		{"§4.4 retransmitted SYN in a malformed options area", &cfgB, []step{
			{syn: true, opts: "45 04 21 23", state: N},
			{syn: true, opts: "45 04 21 23 08", ev: EventDisabled, state: D, reason: Malformed},
		}},
		{"§4.7 SYN+ENO data discarded (passive)", &cfgB, []step{
			{syn: true, opts: "45 04 21 23", data: 100, discard: true, state: N},
			sendSYNACK("45 04 01 23"),
		}},
		{"§4.7 SYN+ENO data discarded when ENO fails", &cfgB, []step{
			{syn: true, opts: "45 03 22", data: 100, discard: true, ev: EventDisabled, state: D, reason: NoCommonTEP},
		}},
		{"§4.7 SYN+ENO data discarded with ENO off by configuration", &Config{}, []step{
			{syn: true, opts: "45 03 23", data: 1, discard: true, ev: EventDisabled, state: D, reason: ConfigOff},
		}},
		{"§4.7 SYN+ENO with non-empty TFO: data discarded, not a failure", &cfgB, []step{
			{syn: true, opts: "22 0a 01 02 03 04 05 06 07 08 45 04 21 23", data: 10, discard: true, state: N},
		}},
		{"§4.7 SYN with several ENO options: data still discarded", &cfgB, []step{
			{syn: true, opts: "45 03 23 45 03 23", data: 10, discard: true, ev: EventDisabled, state: D, reason: MultipleENO},
		}},
		{"§4.7 SYN without ENO keeps its data", &cfgB, []step{
			{syn: true, opts: mss, data: 10, ev: EventDisabled, state: D, reason: NoENOInSYN},
		}},
		{"§4.7 SYN-ACK+ENO data discarded (active)", &cfgA, []step{
			sendSYN("45 04 21 23"),
			{syn: true, ack: true, opts: "45 04 01 23", data: 5, discard: true, state: N},
		}},
		{"§4.7 local SYN data: ENO not offered", &cfgA, []step{
			{send: true, syn: true, data: 20, ev: EventDisabled, state: D, reason: LocalSYNData},
			{send: true, syn: true, state: D, reason: LocalSYNData},
		}},
		{"§4.7 local SYN with a TFO cookie: ENO not offered", &cfgA, []step{
			{send: true, syn: true, opts: "22 06 01 02 03 04", ev: EventDisabled, state: D, reason: LocalSYNData},
		}},
		{"TFO cookie request is fine", &cfgA, []step{
			{send: true, syn: true, opts: "22 02", want: "45 04 21 23", state: N},
		}},
		{"§4.7 local SYN retransmission with data: ENO dropped", &cfgA, []step{
			sendSYN("45 04 21 23"),
			{send: true, syn: true, data: 20, ev: EventDisabled, state: D, reason: LocalSYNData},
		}},
		{"A ignores non-SYN segments in SYN-SENT", &cfgA, []step{
			sendSYN("45 04 21 23"),
			{ack: true, state: N},
			{syn: true, ack: true, opts: "45 04 01 23", state: N},
			{send: true, ack: true, want: "45 02", ev: EventEnabled, state: E},
		}},
		{"ENO off: nothing sent", &Config{}, []step{
			{send: true, syn: true, ev: EventDisabled, state: D, reason: ConfigOff},
			{syn: true, ack: true, opts: "45 04 01 23", state: D, reason: ConfigOff},
		}},
		{"tracker started mid-stream", &cfgA, []step{
			{send: true, ack: true, data: 10, ev: EventDisabled, state: D, reason: MidStream},
		}},
		{"tracker started at the SYN-ACK", &cfgB, []step{
			{syn: true, ack: true, opts: "45 04 01 23", ev: EventDisabled, state: D, reason: MidStream},
		}},
		{"invalid configuration", &Config{TEPs: []TEP{0x23}, Offer: offer(0x23, "x40")}, []step{
			{send: true, syn: true, ev: EventDisabled, state: D, reason: ConfigInvalid},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(tt.cfg)
			runSteps(t, &tr, tt.steps)
		})
	}
}

// §6 Fig. 12 and §4.3: both ends of a simultaneous open, one with b=1.
func TestTrackerSimultaneousOpen(t *testing.T) {
	const N, E, D = StateNegotiating, StateEnabled, StateDisabled
	synA, synB := "45 04 21 23", "45 05 01 21 23"
	t.Run("A", func(t *testing.T) {
		tr := NewTracker(&cfgA)
		runSteps(t, &tr, []step{
			sendSYN(synA),
			{syn: true, opts: synB, state: N},
			sendSYNACK(synA), // identical to its SYN (§4.6)
			{syn: true, ack: true, opts: synB, ev: EventEnabled, state: E},
			{send: true, ack: true, want: "45 02", state: E},
		})
		res, _ := tr.Result()
		checkResult(t, &res, RoleA, 0x23, h(synA), h(synB), "", "")
	})
	t.Run("B", func(t *testing.T) {
		tr := NewTracker(&cfgSB)
		runSteps(t, &tr, []step{
			sendSYN(synB),
			{syn: true, opts: synA, state: N},
			// The peer's SYN-ACK may arrive before ours leaves.
			{syn: true, ack: true, opts: synA, state: N},
			{send: true, syn: true, ack: true, want: synB, ev: EventEnabled, state: E},
		})
		res, _ := tr.Result()
		checkResult(t, &res, RoleB, 0x23, h(synA), h(synB), "", "")
	})
	t.Run("§4.3 both b=0; §4.6 exception 2: SYN-ACK without ENO", func(t *testing.T) {
		tr := NewTracker(&cfgA)
		runSteps(t, &tr, []step{
			sendSYN(synA),
			{syn: true, opts: synA, ev: EventDisabled, state: D, reason: SameRoleBit},
			{send: true, syn: true, ack: true, state: D, reason: SameRoleBit},
		})
	})
	t.Run("§4.3 both b=1", func(t *testing.T) {
		tr := NewTracker(&cfgSB)
		runSteps(t, &tr, []step{
			sendSYN(synB),
			{syn: true, opts: synB, ev: EventDisabled, state: D, reason: SameRoleBit},
		})
	})
	t.Run("§4.6 peer's SYN-ACK changed its option", func(t *testing.T) {
		tr := NewTracker(&cfgA)
		runSteps(t, &tr, []step{
			sendSYN(synA),
			{syn: true, opts: synB, state: N},
			sendSYNACK(synA),
			{syn: true, ack: true, opts: "45 04 01 21", ev: EventDisabled, state: D, reason: SYNChanged},
		})
	})
	t.Run("§4.6 rule 1: peer's SYN-ACK without ENO", func(t *testing.T) {
		tr := NewTracker(&cfgA)
		runSteps(t, &tr, []step{
			sendSYN(synA),
			{syn: true, opts: synB, state: N},
			{syn: true, ack: true, opts: mss, ev: EventDisabled, state: D, reason: NoENOInSYNACK},
		})
	})
	t.Run("§4.6 rule 1: peer's SYN without ENO", func(t *testing.T) {
		tr := NewTracker(&cfgA)
		runSteps(t, &tr, []step{
			sendSYN(synA),
			{syn: true, opts: mss, ev: EventDisabled, state: D, reason: NoENOInSYN},
		})
	})
	t.Run("§4.3 peer's SYN lost: b=1 active opener becomes B on the SYN-ACK", func(t *testing.T) {
		tr := NewTracker(&cfgSB)
		runSteps(t, &tr, []step{
			sendSYN(synB),
			{syn: true, ack: true, opts: synA, state: N},
			{send: true, ack: true, want: "45 02", ev: EventEnabled, state: E},
		})
		res, _ := tr.Result()
		checkResult(t, &res, RoleB, 0x23, h(synA), h(synB), "", "")
	})
}

func TestTrackerDisable(t *testing.T) {
	tr := NewTracker(&cfgA)
	runSteps(t, &tr, []step{sendSYN("45 04 21 23")})
	// §4.6: an active opener MAY remove ENO between SYN retransmissions.
	if !tr.Disable() {
		t.Fatal("Disable before enabling failed")
	}
	if !tr.Disable() || tr.Reason() != Abandoned {
		t.Fatal("second Disable")
	}
	runSteps(t, &tr, []step{
		{send: true, syn: true, state: StateDisabled, reason: Abandoned},
		{syn: true, ack: true, opts: "45 04 01 23", state: StateDisabled, reason: Abandoned},
		{send: true, ack: true, state: StateDisabled, reason: Abandoned},
	})

	tr = NewTracker(&cfgA)
	runSteps(t, &tr, []step{
		sendSYN("45 04 21 23"),
		{syn: true, ack: true, opts: "45 04 01 23", state: StateNegotiating},
		{send: true, ack: true, want: "45 02", ev: EventEnabled, state: StateEnabled},
	})
	// §4.6: no fallback once enabled.
	if tr.Disable() || tr.State() != StateEnabled {
		t.Fatal("Disable after enabling succeeded")
	}
}

func TestTrackerSessionID(t *testing.T) {
	sid := append([]byte{0x23}, bytes.Repeat([]byte{0xab}, 32)...)
	tr := NewTracker(&cfgB)
	expect := func(want error) {
		t.Helper()
		if _, err := tr.SessionID(nil); !errors.Is(err, want) {
			t.Errorf("SessionID err = %v, want %v", err, want)
		}
		if _, err := tr.SelfName(nil); !errors.Is(err, want) {
			t.Errorf("SelfName err = %v, want %v", err, want)
		}
		if _, err := tr.PeerName(nil); !errors.Is(err, want) {
			t.Errorf("PeerName err = %v, want %v", err, want)
		}
	}
	expect(ErrNotNegotiated)
	if _, err := tr.Result(); !errors.Is(err, ErrNotNegotiated) {
		t.Errorf("Result before negotiation: %v", err)
	}
	if err := tr.SetSessionID(sid); !errors.Is(err, ErrNotNegotiated) {
		t.Errorf("SetSessionID before negotiation: %v", err)
	}
	runSteps(t, &tr, []step{
		{syn: true, opts: "45 04 21 23", state: StateNegotiating},
		sendSYNACK("45 04 01 23"),
	})
	if _, ok := tr.Negotiated(); !ok {
		t.Error("Negotiated not available to the engine")
	}
	expect(ErrNotNegotiated) // API draft: read-only options only when encrypting
	if _, err := tr.Result(); !errors.Is(err, ErrNotNegotiated) {
		t.Errorf("Result before enabling: %v", err)
	}
	runSteps(t, &tr, []step{{ack: true, opts: "45 02", ev: EventEnabled, state: StateEnabled}})
	expect(ErrNotNegotiated) // enabled, but the TEP has no ID yet: never an empty ID
	if _, err := tr.Result(); err != nil {
		t.Errorf("Result after enabling: %v", err)
	}
	for _, bad := range [][]byte{sid[:32], append([]byte{0xa3}, sid[1:]...), make([]byte, MaxSessionIDLen+1)} {
		if err := tr.SetSessionID(bad); !errors.Is(err, ErrBadSessionID) {
			t.Errorf("SetSessionID(% x) = %v", bad, err)
		}
	}
	if err := tr.SetSessionID(sid); err != nil {
		t.Fatal(err)
	}
	expect(nil)
	got, _ := tr.SessionID([]byte("x"))
	self, _ := tr.SelfName(nil)
	peer, _ := tr.PeerName(nil)
	if !bytes.Equal(got, append([]byte("x"), sid...)) ||
		!bytes.Equal(self, append([]byte{1}, sid...)) || // B's role byte is 1
		!bytes.Equal(peer, append([]byte{0}, sid...)) {
		t.Errorf("SessionID % x SelfName % x PeerName % x", got, self, peer)
	}

	tr = NewTracker(&cfgB)
	runSteps(t, &tr, []step{{syn: true, opts: "45 03 22", ev: EventDisabled, state: StateDisabled, reason: NoCommonTEP}})
	expect(ErrDisabled)
	if _, err := tr.Result(); !errors.Is(err, ErrDisabled) {
		t.Errorf("Result when disabled: %v", err)
	}
	if err := tr.SetSessionID(sid); !errors.Is(err, ErrDisabled) {
		t.Errorf("SetSessionID when disabled: %v", err)
	}
	if _, ok := tr.Negotiated(); ok {
		t.Error("Negotiated after failure")
	}
}

func TestNames(t *testing.T) {
	sid := []byte{0x23, 1, 2}
	if got := AppendSelfName(nil, RoleA, sid); !bytes.Equal(got, []byte{0, 0x23, 1, 2}) {
		t.Errorf("SelfName A % x", got)
	}
	if got := AppendPeerName(nil, RoleA, sid); !bytes.Equal(got, []byte{1, 0x23, 1, 2}) {
		t.Errorf("PeerName A % x", got)
	}
	if !bytes.Equal(AppendPeerName(nil, RoleB, sid), AppendSelfName(nil, RoleA, sid)) {
		t.Error("B's PeerName must equal A's SelfName")
	}
}

// wire runs a whole three-way handshake between an active and a passive
// tracker, as two packet engines would, and returns both.
func wire(t *testing.T, ca, cb *Config) (a, b Tracker) {
	t.Helper()
	a, b = NewTracker(ca), NewTracker(cb)
	syn, _ := a.Send(nil, Segment{SYN: true})
	b.Recv(Segment{SYN: true, Options: syn})
	synAck, _ := b.Send(nil, Segment{SYN: true, ACK: true})
	a.Recv(Segment{SYN: true, ACK: true, Options: synAck})
	ack, _ := a.Send(nil, Segment{ACK: true})
	b.Recv(Segment{ACK: true, Options: ack})
	return a, b
}

func TestTrackerPair(t *testing.T) {
	a, b := wire(t, &Config{TEPs: tcpcryptTEPs}, &Config{TEPs: []TEP{0x24, 0x23}})
	if a.State() != StateEnabled || b.State() != StateEnabled {
		t.Fatalf("states %v %v", a.State(), b.State())
	}
	ra, _ := a.Result()
	rb, _ := b.Result()
	if ra.Role() != RoleA || rb.Role() != RoleB || ra.NegTEP() != 0x23 || rb.NegTEP() != 0x23 ||
		!bytes.Equal(ra.Transcript(), rb.Transcript()) {
		t.Fatalf("A %v %#02x % x\nB %v %#02x % x", ra.Role(), ra.NegTEP(), ra.Transcript(), rb.Role(), rb.NegTEP(), rb.Transcript())
	}
	// AA mandatory on B, A not aware: both fall back (§6 Fig. 10 case 3).
	a, b = wire(t, &Config{TEPs: tcpcryptTEPs}, &Config{TEPs: tcpcryptTEPs, AAMandatory: true})
	if a.Reason() != NoENOInSYNACK || b.Reason() != AAMandatoryPeerNotAware {
		t.Fatalf("reasons %v %v", a.Reason(), b.Reason())
	}
	// Both aware.
	a, b = wire(t, &Config{TEPs: tcpcryptTEPs, SelfGOpt: GlobalA}, &Config{TEPs: tcpcryptTEPs, AAMandatory: true})
	ra, _ = a.Result()
	if a.State() != StateEnabled || b.State() != StateEnabled || !ra.PeerAware() {
		t.Fatalf("states %v %v", a.State(), b.State())
	}
}

func TestStrings(t *testing.T) {
	for _, s := range []State{StateIdle, StateNegotiating, StateEnabled, StateDisabled} {
		if s.String() == "" {
			t.Error(int(s))
		}
	}
	for _, e := range []Event{EventNone, EventEnabled, EventDisabled} {
		if e.String() == "" {
			t.Error(int(e))
		}
	}
}

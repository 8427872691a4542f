package eno

import "bytes"

// Segment describes a TCP segment to a Tracker: the flags ENO cares about,
// the TCP options area (header bytes after the fixed 20) and the payload
// length.
type Segment struct {
	SYN, ACK bool
	Options  []byte
	DataLen  int
}

// Event is what a segment changed in a connection's ENO state.
type Event uint8

const (
	EventNone     Event = iota
	EventEnabled        // ENO succeeded: encryption MUST be on from now on (§4.6)
	EventDisabled       // ENO failed: plain TCP from now on; see Tracker.Reason
)

func (e Event) String() string {
	switch e {
	case EventEnabled:
		return "enabled"
	case EventDisabled:
		return "disabled"
	}
	return "none"
}

// State is a connection's ENO state. Its names follow the API draft:
// read-only options succeed only once it is StateEnabled ("encrypting").
type State uint8

const (
	StateIdle        State = iota // no SYN seen yet
	StateNegotiating              // SYN exchange under way
	StateEnabled                  // ENO succeeded; the TEP governs the connection
	StateDisabled                 // ENO failed or is off; plain TCP
)

func (s State) String() string {
	switch s {
	case StateNegotiating:
		return "negotiating"
	case StateEnabled:
		return "enabled"
	case StateDisabled:
		return "disabled"
	}
	return "idle"
}

// Verdict is a Tracker's answer for a received segment.
type Verdict struct {
	Event Event
	// DiscardSYNData: the segment is a SYN carrying ENO and payload. The
	// payload must be removed before the local stack sees the segment, so
	// that only the peer's ISN is acknowledged and no data is read from
	// it (§4.7). No TEP here defines SYN data, so this holds whatever the
	// negotiation's outcome, and even when ENO is off.
	DiscardSYNData bool
}

// Tracker follows one connection's TCP-ENO handshake (RFC 8547 §4.6,
// §4.7) as a packet engine sees it: every segment the local stack sends
// goes through Send, every segment from the network through Recv. It
// decides which ENO option each outgoing segment carries, and when ENO is
// enabled or disabled. It never allocates and holds no pointers besides
// its Config, so it lives inline in a connection table entry.
//
// Which end is the active opener follows from the first segment: a SYN
// sent first makes this host an active opener, a SYN received first a
// passive one. A Tracker is not safe for concurrent use.
type Tracker struct {
	cfg    *Config
	state  State
	reason Reason
	flags  uint8
	self   optBuf // our SYN-form option, identical in every SYN we send
	peer   optBuf // the peer's SYN-form option as first received
	res    Result
	sid    [MaxSessionIDLen]byte
	sidLen uint8
}

const (
	fPeerSYN   = 1 << iota // peer's SYN-form option is in peer and res is the outcome
	fSentACK               // we sent an ACK segment carrying ENO
	fGotACK                // we received our first ACK segment
	fGotENOACK             // ... and it carried ENO
	fGotNonSYN             // we received a non-SYN segment
)

type optBuf struct {
	b [MaxOptionLen]byte
	n uint8
}

func (o *optBuf) set(b []byte) { o.n = uint8(copy(o.b[:], b)) }

func (o *optBuf) bytes() []byte { return o.b[:o.n] }

// NewTracker returns the tracker of a new connection. cfg must have passed
// Validate and must not change while the tracker uses it.
func NewTracker(cfg *Config) Tracker { return Tracker{cfg: cfg} }

// State returns the connection's ENO state.
func (t *Tracker) State() State { return t.state }

// Reason returns why ENO was disabled, or None.
func (t *Tracker) Reason() Reason { return t.reason }

// Negotiated returns the negotiation's outcome as soon as this host knows
// it (a passive opener on the SYN, an active one on the SYN-ACK), before
// the handshake has confirmed it. Applications should use Result.
func (t *Tracker) Negotiated() (Result, bool) {
	if t.state == StateDisabled || t.flags&fPeerSYN == 0 {
		return Result{}, false
	}
	return t.res, true
}

// Result returns the negotiation's outcome once ENO is enabled:
// ErrNotNegotiated before, ErrDisabled if ENO failed.
func (t *Tracker) Result() (Result, error) {
	if err := t.readable(); err != nil {
		return Result{}, err
	}
	return t.res, nil
}

// Disable turns ENO off for a connection on which it is not yet enabled,
// for instance to send a SYN retransmission without ENO (§4.6 lets an
// active opener do so). Once ENO is enabled there is no way back to plain
// TCP (§4.6), so it then returns false and changes nothing.
func (t *Tracker) Disable() bool {
	switch t.state {
	case StateEnabled:
		return false
	case StateDisabled:
		return true
	}
	t.disable(Abandoned)
	return true
}

func (t *Tracker) disable(r Reason) Event {
	t.state, t.reason = StateDisabled, r
	t.res = Result{}
	return EventDisabled
}

// Send handles a segment the local stack is about to send and appends to
// dst the ENO option the segment must carry, if any, for the caller to
// insert into its options area:
//
//   - in SYN segments, this host's SYN-form option, the same bytes every
//     time: in retransmissions and in the SYN-ACK of a simultaneous open
//     (§4.6);
//   - in non-SYN segments, the non-SYN form 45 02, until a non-SYN segment
//     has been received (§4.6: "every TCP segment sent until either
//     encryption is disabled or the host receives a non-SYN segment");
//   - nothing once ENO is disabled.
func (t *Tracker) Send(dst []byte, seg Segment) ([]byte, Event) {
	if t.state == StateDisabled {
		return dst, EventNone
	}
	if t.state == StateIdle {
		if !seg.SYN || seg.ACK {
			return dst, t.disable(MidStream)
		}
		if len(t.cfg.TEPs) == 0 {
			return dst, t.disable(ConfigOff)
		}
		b, err := t.cfg.AppendSYN(t.self.b[:0])
		if err != nil {
			return dst, t.disable(ConfigInvalid)
		}
		t.self.set(b)
		t.state = StateNegotiating
	}
	if seg.SYN {
		if t.state == StateEnabled {
			return append(dst, t.self.bytes()...), EventNone
		}
		// A SYN+ENO segment MUST NOT carry data unless its SYN TEP defines
		// some (none here does), nor a non-empty TFO option (§4.7). Rather
		// than edit the local stack's SYN, leave ENO out: an active opener
		// may drop ENO from a retransmitted SYN (§4.6), and a passive one
		// sending data in its SYN-ACK disables ENO before sending it.
		if seg.DataLen > 0 {
			return dst, t.disable(LocalSYNData)
		}
		if o, _ := ScanOptions(seg.Options); o.TFO {
			return dst, t.disable(LocalSYNData)
		}
		dst = append(dst, t.self.bytes()...)
		if !seg.ACK {
			return dst, EventNone
		}
		// A SYN-ACK is an ACK segment too: a passive opener's, or either
		// end's in a simultaneous open, counts as "sent an ACK segment
		// containing an ENO option" (§4.6).
		t.flags |= fSentACK
		return dst, t.check()
	}
	if t.flags&fGotNonSYN != 0 {
		return dst, EventNone
	}
	dst = AppendNonSYNOption(dst)
	if seg.ACK {
		t.flags |= fSentACK
	}
	return dst, t.check()
}

// Recv handles a segment received from the peer. Feed it only segments
// the local stack will accept (sequence and acknowledgment numbers in
// window): during the handshake a blind forged segment without ENO would
// otherwise disable ENO.
func (t *Tracker) Recv(seg Segment) Verdict {
	o, err := ScanOptions(seg.Options)
	// §4.7: discard data of any received SYN+ENO segment the negotiated
	// TEP does not define SYN data for; with no such TEP, that is all of
	// them. Discarding is always safe: TCP resends unacknowledged data.
	v := Verdict{DiscardSYNData: seg.SYN && seg.DataLen > 0 && o.NumENO > 0}
	if !seg.SYN {
		if t.state == StateNegotiating && t.flags&fPeerSYN == 0 {
			// An active opener before any SYN from the peer: TCP drops
			// non-SYN segments in SYN-SENT, so ENO ignores them too, lest
			// a stray ACK end the 45 02 of the third segment or disable ENO.
			return v
		}
		t.flags |= fGotNonSYN // stop adding ENO to what we send (§4.6)
	}
	switch t.state {
	case StateEnabled, StateDisabled:
		return v
	case StateIdle:
		v.Event = t.recvFirst(seg, o, err)
		return v
	}
	// Rule 1 of §4.6 covers segments "up to and including the first
	// received ACK segment"; what comes later cannot change ENO's outcome.
	if t.flags&fGotACK != 0 {
		return v
	}
	if seg.ACK {
		t.flags |= fGotACK
	}
	switch {
	case seg.SYN && t.flags&fPeerSYN != 0:
		// The peer's SYN-form option again: a retransmitted SYN, or the
		// SYN-ACK of a simultaneous open. The sender MUST NOT alter it
		// (§4.6). Without ENO, rule 1 disables ENO (this is also how an
		// active opener's legitimate removal shows). The RFC gives no
		// receiver rule for a changed option; any change disables ENO,
		// which is safe before any data has flowed (SPEC.md §1.8 [rec]).
		// The transcript keeps the first copy.
		r := None
		switch {
		case err != nil:
			r = Malformed
		case o.NumENO > 1:
			r = MultipleENO
		case o.ENO == nil && seg.ACK:
			r = NoENOInSYNACK
		case o.ENO == nil:
			r = SYNENORemoved
		case !bytes.Equal(o.ENO, t.peer.bytes()):
			r = SYNChanged
		}
		if r != None {
			v.Event = t.disable(r)
			return v
		}
	case seg.SYN:
		// The first SYN-form option an active opener receives: the
		// SYN-ACK's, or the peer's SYN in a simultaneous open.
		if r := synReason(o, err, seg.ACK); r != None {
			v.Event = t.disable(r)
			return v
		}
		res, r := Negotiate(t.cfg, t.self.bytes(), o.ENO)
		if r != None {
			v.Event = t.disable(r)
			return v
		}
		t.peer.set(o.ENO)
		t.res = res
		t.flags |= fPeerSYN
	case o.ENO == nil:
		// Rule 1: a non-SYN segment up to the first ACK (for B, A's third
		// segment) lacks ENO. Several ENO options count as one (§4.1), and
		// their contents are ignored.
		v.Event = t.disable(MissingInACK)
		return v
	}
	if seg.ACK {
		t.flags |= fGotENOACK
	}
	v.Event = t.check()
	return v
}

// recvFirst handles the first segment of a connection that arrives before
// this host sent anything: a SYN-only segment makes it the passive opener.
func (t *Tracker) recvFirst(seg Segment, o Options, err error) Event {
	if !seg.SYN || seg.ACK {
		return t.disable(MidStream)
	}
	t.state = StateNegotiating
	if len(t.cfg.TEPs) == 0 {
		return t.disable(ConfigOff)
	}
	if r := synReason(o, err, false); r != None {
		return t.disable(r)
	}
	b, res, r := respond(t.self.b[:0], t.cfg, o.ENO)
	if r != None {
		return t.disable(r)
	}
	t.self.set(b)
	t.peer.set(o.ENO)
	t.res = res
	t.flags |= fPeerSYN
	return EventNone
}

// check enables ENO once this host "has both sent and received an ACK
// segment containing an ENO option" (§4.6), given a negotiated TEP.
func (t *Tracker) check() Event {
	const done = fPeerSYN | fSentACK | fGotENOACK
	if t.state == StateNegotiating && t.flags&done == done {
		t.state = StateEnabled
		return EventEnabled
	}
	return EventNone
}

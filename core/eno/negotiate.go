package eno

import (
	"errors"
	"fmt"
)

// Config is one host's TCP-ENO configuration for a connection. Field names
// follow draft-ietf-tcpinc-api-06 (TCP_ENO_TEPS, TCP_ENO_SELF_GOPT,
// TCP_ENO_AA_MANDATORY). A Config is read-only once in use and may be
// shared by any number of connections.
type Config struct {
	// TEPs lists the TEPs this host supports in increasing order of
	// preference: the last is the most preferred. As A the SYN offers them
	// in this order; as B, and in particular as a passive opener, the
	// order is the priority (§4.5). An empty list turns ENO off.
	TEPs []TEP

	// SelfGOpt holds the global suboption bits to send: a (GlobalA), and b
	// (GlobalB) to take role B in a simultaneous open (§4.2). b is forced
	// to 1 on passive opens; z bits are never sent.
	SelfGOpt byte

	// AAMandatory selects mandatory application-aware mode: a = 1 is sent
	// and ENO is disabled unless the peer sends a = 1 too (§4.2, §8.4).
	AAMandatory bool

	// Offer, if set, returns suboption data to send with TEP t in an
	// active opener's SYN (tcpcrypt: a resumption offer, RFC 8548 §3.5), or
	// nil to offer t without data. Non-nil data sets the v bit.
	Offer func(t TEP) []byte

	// Accept, if set, decides whether a pair of suboptions for one TEP,
	// one from each SYN, makes that TEP valid: the data is valid for the
	// TEP, meets runtime constraints, and any repetition is defined by the
	// TEP (§4.5 conditions 2 and 3). The v bit is not part of the match
	// (RFC 8548 §3.2); Accept sees it and may judge it. nil accepts every
	// pair.
	Accept func(c Candidate) bool

	// Choose, if set, is the passive opener's pick (§4.5: B "SHOULD
	// include only one TEP identifier ... and SHOULD ensure [it] is
	// valid"). It is called for A's suboptions whose TEP is in TEPs, most
	// preferred TEP first and, within a TEP, from A's last suboption
	// backwards, until it returns ok; count is how many of A's suboptions
	// carry the TEP. The reply is the suboption B sends for offer.TEP(),
	// with or without data (tcpcrypt: its resumption half, or the bare TEP
	// for a fresh key exchange); a reply for another TEP, or one that
	// cannot be encoded, counts as a refusal. nil replies with the bare
	// TEP to the first offer tried.
	Choose func(offer Suboption, count int) (reply Suboption, ok bool)
}

// Candidate is a pair of suboptions that could make a TEP valid.
type Candidate struct {
	Self   Role      // the role of the host deciding
	A, B   Suboption // A's and B's suboption; their TEP() is equal
	NA, NB int       // suboptions with this TEP in A's and in B's option
}

// Validate checks a Config once, before use: SelfGOpt sets only a and b,
// the TEPs are distinct, in range and not reserved, and the SYN option
// they make fits in the TCP options area.
func (c *Config) Validate() error {
	if c.SelfGOpt&^(GlobalA|GlobalB) != 0 {
		return fmt.Errorf("eno: SelfGOpt %#02x sets bits other than a and b", c.SelfGOpt)
	}
	var seen [128]bool
	for _, t := range c.TEPs {
		switch {
		case !t.Valid() || t.Reserved():
			return fmt.Errorf("eno: TEP %#02x is not a usable TEP identifier (0x20-0x6f)", byte(t))
		case seen[t]:
			return fmt.Errorf("eno: TEP %v listed twice", t)
		}
		seen[t] = true
	}
	n := 2 + len(c.TEPs)
	if c.gopt(false) != 0 {
		n++
	}
	if n > MaxOptionLen {
		return errors.New("eno: too many TEPs for a 40-byte option")
	}
	return nil
}

// gopt returns the global suboption to send.
func (c *Config) gopt(passive bool) byte {
	g := c.SelfGOpt & (GlobalA | GlobalB) // z bits MUST be 0 when sent (§4.2)
	if passive {
		g |= GlobalB // MUST be 1 for all passive openers (§4.2)
	}
	if c.AAMandatory {
		g |= GlobalA // the mode sets a = 1 itself (§8.4)
	}
	return g
}

// AppendSYN appends the ENO option of an active opener's SYN to dst: the
// global suboption if it is not 0x00 (which a SYN has implicitly, §4.2),
// then every TEP in order, with data from Offer. On error dst is returned
// unchanged.
func (c *Config) AppendSYN(dst []byte) ([]byte, error) {
	start := len(dst)
	dst = append(dst, OptionKind, 0)
	if g := c.gopt(false); g != 0 {
		dst = append(dst, g)
	}
	var err error
	for i, t := range c.TEPs {
		s := Suboption{Byte: byte(t)}
		if c.Offer != nil {
			if d := c.Offer(t); d != nil {
				s = Suboption{Byte: byte(t) | VBit, Data: d}
			}
		}
		if dst, err = appendSuboption(dst, s, i == len(c.TEPs)-1); err != nil {
			return dst[:start], err
		}
	}
	return finishOption(dst, start)
}

// Result is a successful TCP-ENO negotiation: everything the TEP and the
// API need. It holds a copy of both SYN options and no pointers, so it can
// be stored or copied freely.
type Result struct {
	role     Role
	negTEP   byte
	selfGOpt byte
	peerGOpt byte
	alen     uint8 // A's option is buf[:alen], B's buf[alen:n]
	n        uint8
	aSub     sub // A's and B's matching suboptions, offsets within their options
	bSub     sub
	buf      [2 * MaxOptionLen]byte
}

// Role returns this host's role (TCP_ENO_ROLE).
func (r *Result) Role() Role { return r.role }

// TEP returns the negotiated TEP (the v bit cleared).
func (r *Result) TEP() TEP { return TEP(r.negTEP &^ VBit) }

// NegTEP returns B's suboption byte for the negotiated TEP with its v bit
// as B sent it (TCP_ENO_NEGTEP). tcpcrypt reads v = 1 as resumption.
func (r *Result) NegTEP() byte { return r.negTEP }

// SessionIDPrefix returns the first byte of every session ID of this
// connection: NegTEP, v bit included, without suboption data (§5.1).
func (r *Result) SessionIDPrefix() byte { return r.negTEP }

// SelfGOpt returns the global suboption this host sent, 0x00 if implicit.
func (r *Result) SelfGOpt() byte { return r.selfGOpt }

// PeerGOpt returns the first global suboption the peer sent, 0x00 if
// implicit (TCP_ENO_PEER_GOPT). Its z bits are reported as received.
func (r *Result) PeerGOpt() byte { return r.peerGOpt }

// PeerAware reports whether the peer set the application-aware bit.
func (r *Result) PeerAware() bool { return r.peerGOpt&GlobalA != 0 }

// Transcript returns the negotiation transcript: A's SYN ENO option then
// B's, each with its kind and length bytes, exactly as sent (§4.8). The
// slice aliases r.
func (r *Result) Transcript() []byte { return r.buf[:r.n] }

// AppendTranscript appends the transcript to dst.
func (r *Result) AppendTranscript(dst []byte) []byte { return append(dst, r.buf[:r.n]...) }

// AOption returns A's SYN ENO option; it aliases r.
func (r *Result) AOption() []byte { return r.buf[:r.alen] }

// BOption returns B's SYN ENO option; it aliases r.
func (r *Result) BOption() []byte { return r.buf[r.alen:r.n] }

// A returns A's suboption for the negotiated TEP; its data aliases r.
func (r *Result) A() Suboption { return r.aSub.suboption(r.AOption()) }

// B returns B's suboption for the negotiated TEP; its data aliases r.
// B().Byte == NegTEP().
func (r *Result) B() Suboption { return r.bSub.suboption(r.BOption()) }

// Self returns this host's suboption for the negotiated TEP.
func (r *Result) Self() Suboption {
	if r.role == RoleA {
		return r.A()
	}
	return r.B()
}

// Peer returns the peer's suboption for the negotiated TEP.
func (r *Result) Peer() Suboption {
	if r.role == RoleA {
		return r.B()
	}
	return r.A()
}

func (r *Result) set(role Role, a, b *parsed, ai, bi int, self, peer *parsed) {
	r.role = role
	r.negTEP = b.subs[bi].b
	r.selfGOpt, r.peerGOpt = self.gopt, peer.gopt
	r.alen = uint8(copy(r.buf[:], a.opt))
	r.n = r.alen + uint8(copy(r.buf[r.alen:], b.opt))
	r.aSub, r.bSub = a.subs[ai], b.subs[bi]
}

// sub is a decoded TEP suboption: its initial byte and the offset and
// length of its data within its option.
type sub struct{ b, off, n uint8 }

func (s sub) suboption(opt []byte) Suboption {
	if s.b&VBit == 0 {
		return Suboption{Byte: s.b}
	}
	end := int(s.off) + int(s.n)
	return Suboption{Byte: s.b, Data: opt[s.off:end:end]}
}

// parsed is a validated SYN-form option with an index of its TEP
// suboptions, so negotiation can walk them in any order without
// allocating.
type parsed struct {
	opt  []byte
	gopt byte // first global suboption; 0x00 if there is none (§4.2)
	n    int  // TEP suboptions in subs
	subs [MaxSuboptions]sub
}

func (p *parsed) parse(opt []byte) error {
	if err := checkHeader(opt); err != nil {
		return err
	}
	p.opt, p.gopt, p.n = opt, 0, 0
	global := false
	it := Suboptions(opt[2:])
	for b, d0, d1, ok := it.step(); ok; b, d0, d1, ok = it.step() {
		switch {
		case b >= 0x20:
			p.subs[p.n] = sub{b, uint8(d0 + 2), uint8(d1 - d0)}
			p.n++
		case !global:
			// Only the first global suboption counts; later ones are
			// ignored so that ENO updates can give them meaning (§4.2).
			p.gopt, global = b, true
		}
	}
	return it.err
}

// count returns how many TEP suboptions carry t.
func (p *parsed) count(t TEP) int {
	n := 0
	for _, s := range p.subs[:p.n] {
		if TEP(s.b&^VBit) == t {
			n++
		}
	}
	return n
}

func (p *parsed) suboption(i int) Suboption { return p.subs[i].suboption(p.opt) }

// Negotiate decides the outcome of TCP-ENO from the two SYN-form options
// of a connection, each a whole ENO option (kind and length included):
// self as this host sent it and peer as received. It serves an active
// opener (peer is the SYN-ACK's option) and both ends of a simultaneous
// open (peer is the other SYN's option). On failure the Reason is not
// None and the Result is meaningless.
//
// The checks run in this order: a malformed option (§4.4), a vacuous one
// (§4.6), equal b bits (§4.3), mandatory application-aware mode (§4.2),
// and last the search for a valid TEP (§4.5).
func Negotiate(cfg *Config, self, peer []byte) (Result, Reason) {
	var ps, pp parsed
	if ps.parse(self) != nil || pp.parse(peer) != nil {
		return Result{}, Malformed
	}
	if ps.n == 0 || pp.n == 0 {
		return Result{}, Vacuous
	}
	if ps.gopt&GlobalB == pp.gopt&GlobalB {
		return Result{}, SameRoleBit
	}
	if cfg.AAMandatory && pp.gopt&GlobalA == 0 {
		return Result{}, AAMandatoryPeerNotAware
	}
	// The host that sent b = 1 is B, the other A (§4.3).
	role, a, b := RoleA, &ps, &pp
	if ps.gopt&GlobalB != 0 {
		role, a, b = RoleB, &pp, &ps
	}
	// The negotiated TEP is the last valid TEP in B's option (§4.5), so
	// scan B from the end. A's order carries no meaning; scanning it from
	// the end too pairs B's reply with the same offer as Respond does.
	for bi := b.n - 1; bi >= 0; bi-- {
		t := TEP(b.subs[bi].b &^ VBit)
		for ai := a.n - 1; ai >= 0; ai-- {
			if TEP(a.subs[ai].b&^VBit) != t {
				continue
			}
			if cfg.Accept != nil && !cfg.Accept(Candidate{
				Self: role,
				A:    a.suboption(ai), B: b.suboption(bi),
				NA: a.count(t), NB: b.count(t),
			}) {
				continue
			}
			var r Result
			r.set(role, a, b, ai, bi, &ps, &pp)
			return r, None
		}
	}
	return Result{}, NoCommonTEP
}

// Complete is the active opener's step on receiving a SYN-ACK: sent is the
// ENO option of its SYN as sent, synAckOpts the SYN-ACK's TCP options
// area.
func Complete(cfg *Config, sent, synAckOpts []byte) (Result, Reason) {
	o, err := ScanOptions(synAckOpts)
	if r := synReason(o, err, true); r != None {
		return Result{}, r
	}
	return Negotiate(cfg, sent, o.ENO)
}

// Respond is the passive opener's step on receiving a SYN-only segment
// whose TCP options area is synOpts. On success it appends the SYN-ACK's
// ENO option to dst: an explicit global suboption with b = 1 (§4.2)
// followed by exactly the one TEP suboption that Choose picked (§4.5). On
// failure dst is returned unchanged and no ENO option is to be sent.
func Respond(dst []byte, cfg *Config, synOpts []byte) ([]byte, Result, Reason) {
	o, err := ScanOptions(synOpts)
	if r := synReason(o, err, false); r != None {
		return dst, Result{}, r
	}
	return respond(dst, cfg, o.ENO)
}

func respond(dst []byte, cfg *Config, syn []byte) ([]byte, Result, Reason) {
	if len(cfg.TEPs) == 0 {
		return dst, Result{}, ConfigOff
	}
	var pa parsed
	if pa.parse(syn) != nil {
		return dst, Result{}, Malformed
	}
	switch {
	case pa.n == 0:
		return dst, Result{}, Vacuous
	case pa.gopt&GlobalB != 0:
		return dst, Result{}, SameRoleBit // we are passive, so b = 1 too (§4.3)
	case cfg.AAMandatory && pa.gopt&GlobalA == 0:
		return dst, Result{}, AAMandatoryPeerNotAware
	}
	gopt := cfg.gopt(true)
	for i := len(cfg.TEPs) - 1; i >= 0; i-- {
		t := cfg.TEPs[i]
		for ai := pa.n - 1; ai >= 0; ai-- {
			if TEP(pa.subs[ai].b&^VBit) != t {
				continue
			}
			reply, ok := Suboption{Byte: byte(t)}, true
			if cfg.Choose != nil {
				reply, ok = cfg.Choose(pa.suboption(ai), pa.count(t))
			}
			if !ok || reply.Global() || reply.TEP() != t {
				continue
			}
			out, err := AppendOption(dst, Suboption{Byte: gopt}, reply)
			if err != nil {
				continue
			}
			var pb parsed
			pb.opt, pb.gopt, pb.n = out[len(dst):], gopt, 1
			pb.subs[0] = sub{reply.Byte, 4, uint8(len(reply.Data))}
			var r Result
			r.set(RoleB, &pa, &pb, ai, 0, &pb, &pa)
			return out, r, None
		}
	}
	return dst, Result{}, NoCommonTEP
}

// synReason checks the ENO options of a received SYN segment: exactly one
// ENO option in a well-formed options area (§4.1). A legacy-only option
// (253/0x454E) counts as none.
func synReason(o Options, err error, synAck bool) Reason {
	switch {
	case err != nil:
		return Malformed
	case o.NumENO > 1:
		return MultipleENO
	case o.ENO == nil && synAck:
		return NoENOInSYNACK
	case o.ENO == nil:
		return NoENOInSYN
	}
	return None
}

package divert

import (
	"io"
	"tcpinc.dev/tcpinc/core"
	"time"

	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/packet"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

// phase is where a connection is in its life.
type phase uint8

const (
	phaseSYN       phase = iota // TCP-ENO negotiation in the SYNs
	phaseKeys                   // ENO succeeded; Init1/Init2 under way
	phaseEncrypted              // keys established
	phasePlain                  // ENO failed: plain TCP, hands off
	phaseDead                   // encrypted, then expired: refuse its packets
	phaseGone                   // to be removed from the table
)

// mssReduction is how much the MSS advertised to the local stack shrinks
// so that a segment's data plus a frame's overhead (with URGp) plus the
// non-SYN ENO option an active opener may still carry fits the segment
// size the peer allowed.
const mssReduction = tcpcrypt.FrameOverhead + 2 + 4

// maxHeld bounds outbound data held while the key exchange runs.
const maxHeld = 64 << 10

type conn struct {
	e      *Engine
	pol    *policy // the engine's policy when the connection started
	key    flowKey
	active bool
	phase  phase

	enoCfg   eno.Config
	tracker  eno.Tracker
	needENO  bool // outbound segments may still need the non-SYN ENO option
	proposed *tcpcrypt.ResumeSecret
	accepted *tcpcrypt.ResumeSecret
	nonce    [tcpcrypt.MaxResumeNonceLen]byte
	result   eno.Result

	hs      *tcpcrypt.Handshake
	sess    *tcpcrypt.Session
	resumed bool
	plainR  eno.Reason

	localISN, peerISN         uint32
	haveLocalISN, havePeerISN bool
	snd                       sendSide
	rcv                       recvSide

	held      [][]byte // outbound data packets waiting for keys
	heldBytes int

	// What engine-made packets copy: the last window and timestamps
	// each side sent.
	outWnd, inWnd uint16
	outTS, inTS   tsOption

	keyDeadline time.Time
	initTimer   time.Time
	initRTO     time.Duration
	closeAt     time.Time
	localFIN    bool
	peerFIN     bool
	created     time.Time
	lastActive  time.Time
	badFrames   int
	lastInWnd   uint16
	deliv       []delivery // scratch for one inbound segment
	// segSize is the most data the local stack puts in one segment as
	// the peer's (lowered) MSS allows it, 0 if unknown: the size of the
	// pieces a GSO super-packet's surplus and retransmissions are cut
	// into, so that injected packets fit the path.
	segSize   uint16
	replaying bool    // held segments are being sent: every frame is injected
	carrier   *Packet // the stack's bare ACK that Init1 may replace (during enable)
	// Window scaling (RFC 7323): the shift of the windows the peer
	// advertises, once both SYNs carried the option.
	localWS, peerWS       bool
	peerShift, localShift uint8
}

func (c *conn) init() {
	e := c.e
	c.needENO = true
	if e.cfg.ResumeNonceLen > 0 {
		if _, err := io.ReadFull(e.rand, c.nonce[:e.cfg.ResumeNonceLen]); err != nil {
			// Without randomness ENO must not be sent (RFC 8547 §4.6).
			e.cfg.Log.Error("divert: no randomness for resumption nonce; connection stays plain", "err", err)
			c.enoCfg = eno.Config{}
			c.tracker = eno.NewTracker(&c.enoCfg)
			return
		}
	}
	teps := c.pol.teps
	if c.active && c.pol.cache != nil {
		// A cached secret for the peer: offer only its TEP, with the
		// resumption suboption (20 bytes of ENO with an 8-byte nonce,
		// what a Linux SYN leaves free). It also offers a fresh
		// exchange with that TEP (RFC 8548 §3.5).
		for i := len(teps) - 1; i >= 0; i-- {
			if rs, ok := c.pol.cache.TakeForPeer(c.key.remote.Addr(), tcpcrypt.TEP(teps[i])); ok {
				c.proposed = &rs
				teps = teps[i : i+1]
				break
			}
		}
	}
	c.enoCfg = eno.Config{TEPs: teps, SelfGOpt: c.pol.gopt, AAMandatory: c.pol.AAMandatory,
		Offer: c.offer, Accept: c.accept, Choose: c.choose}
	c.tracker = eno.NewTracker(&c.enoCfg)
}

func (c *conn) nonceBytes() []byte { return c.nonce[:c.e.cfg.ResumeNonceLen] }

func (c *conn) offer(t eno.TEP) []byte {
	if c.proposed == nil || tcpcrypt.TEP(t) != c.proposed.TEP {
		return nil
	}
	sub, err := tcpcrypt.AppendResumeSuboption(nil, c.proposed, c.nonceBytes())
	if err != nil {
		return nil
	}
	return sub[1:]
}

func (c *conn) accept(cand eno.Candidate) bool {
	if !tcpcrypt.TEP(cand.A.TEP()).Supported() || !tcpcrypt.SuboptionAcceptable(cand.A.Data) || !tcpcrypt.SuboptionAcceptable(cand.B.Data) {
		return false
	}
	// RFC 8548 §3.5: an active opener ignores a resumption reply whose
	// identifier half does not match the secret it proposed.
	if c.active && cand.B.V() {
		half, _, ok, _ := tcpcrypt.ParseResumeData(cand.B.Data)
		if ok {
			return c.proposed != nil && tcpcrypt.HalvesMatch(half, c.proposed.PeerHalf())
		}
	}
	return true
}

func (c *conn) choose(offer eno.Suboption, count int) (eno.Suboption, bool) {
	t := offer.TEP()
	if !tcpcrypt.TEP(t).Supported() {
		return eno.Suboption{}, false
	}
	if cache := c.pol.cache; offer.V() && cache != nil && c.accepted == nil {
		if half, _, ok, _ := tcpcrypt.ParseResumeData(offer.Data); ok {
			if rs, ok := cache.TakeByPeerHalf(tcpcrypt.TEP(t), half); ok {
				sub, err := tcpcrypt.AppendResumeSuboption(nil, &rs, c.nonceBytes())
				if err == nil {
					c.accepted = &rs
					return eno.Suboption{Byte: sub[0], Data: sub[1:]}, true
				}
				rs.Zero()
			}
		}
	}
	return eno.Suboption{Byte: byte(t)}, true
}

// ---- outbound -------------------------------------------------------

// enoSegment describes a TCP segment to the ENO tracker.
func enoSegment(pk *packet.Packet) eno.Segment {
	tcp := pk.TCP()
	f := tcp.Flags()
	return eno.Segment{SYN: f&packet.SYN != 0, ACK: f&packet.ACK != 0, Options: tcp.Options(), DataLen: pk.PayloadLen()}
}

// handle routes a packet of this connection by phase and direction.
func (c *conn) handle(p *Packet, pk *packet.Packet) {
	tcp := pk.TCP()
	out := p.Dir == Outbound
	// Engine-made packets copy each side's latest window and timestamps.
	if out {
		c.outWnd = tcp.Window()
		c.outTS.from(pk)
	} else {
		c.inWnd = tcp.Window()
		c.inTS.from(pk)
	}
	if c.phase == phasePlain && tcp.Flags()&packet.SYN != 0 {
		// Remembered so that a retransmitted SYN is told from a new
		// connection on the same 4-tuple (replacedBy).
		if out && !c.haveLocalISN {
			c.localISN, c.haveLocalISN = tcp.Seq(), true
		} else if !out && !c.havePeerISN {
			c.peerISN, c.havePeerISN = tcp.Seq(), true
		}
	}
	switch {
	case c.phase == phaseDead:
		c.refuse(p, pk)
	case c.phase == phasePlain:
		c.e.ctr.PacketsPassed++
	case c.phase == phaseSYN && out:
		c.outHandshake(p, pk)
	case c.phase == phaseSYN:
		c.inHandshake(p, pk)
	case out:
		c.outData(p, pk)
	default:
		c.inData(p, pk)
	}
}

func (c *conn) outHandshake(p *Packet, pk *packet.Packet) {
	tcp := pk.TCP()
	flags := tcp.Flags()
	if flags&packet.RST != 0 {
		c.phase = phaseGone
		return
	}
	if flags&packet.SYN != 0 {
		c.localISN, c.haveLocalISN = tcp.Seq(), true
		c.localShift, c.localWS = tcp.Options().WindowScale()
		c.localShift = min(c.localShift, 14)
	}
	opt, ev := c.tracker.Send(nil, enoSegment(pk))
	if flags&packet.SYN != 0 && len(opt) > 0 && c.tracker.State() != eno.StateDisabled {
		c.e.ctr.ConnsOffered++
	}
	if len(opt) > 0 {
		if err := pk.InsertOption(eno.OptionKind, opt[2:]); err != nil {
			if flags&packet.SYN != 0 {
				// No room: send the SYN without ENO (RFC 8547 §4.6 lets
				// a SYN drop ENO) and stay plain.
				c.e.ctr.NoOptionSpace++
				c.tracker.Disable()
				c.goPlain()
				return
			}
			c.abort(&c.e.ctr.AbortInternal, "no room for the ENO option", err)
			p.Verdict = Drop
			return
		}
		pk.UpdateTCPChecksum()
		p.Buf, p.Modified = pk.Bytes(), true
	}
	switch {
	case ev == eno.EventDisabled || c.tracker.State() == eno.StateDisabled:
		c.goPlain()
	case ev == eno.EventEnabled:
		bare := pk.PayloadLen() == 0 && flags&(packet.FIN|packet.RST|packet.SYN) == 0
		if bare {
			c.carrier = p
		}
		c.enable()
		c.carrier = nil
		if c.phase != phaseGone && !bare {
			c.outData(p, pk)
		}
	}
}

func (c *conn) outData(p *Packet, pk *packet.Packet) {
	tcp := pk.TCP()
	flags := tcp.Flags()
	if flags&packet.SYN != 0 {
		// A retransmitted SYN-ACK: it carries the same ENO option.
		opt, _ := c.tracker.Send(nil, enoSegment(pk))
		if len(opt) > 0 && pk.InsertOption(eno.OptionKind, opt[2:]) == nil {
			pk.UpdateTCPChecksum()
			p.Buf, p.Modified = pk.Bytes(), true
		}
		return
	}
	ack := tcp.Ack()
	wireAck := c.rcv.wireNxt
	if flags&packet.ACK != 0 {
		wireAck = c.rcv.onLocalAck(ack)
	}
	if flags&packet.RST != 0 {
		c.emitOut(p, c.snd.mapLocalSeq(tcp.Seq()), wireAck, flags)
		c.phase = phaseGone
		return
	}
	n := pk.PayloadLen()
	fin := flags&packet.FIN != 0
	if n == 0 && !fin {
		c.emitOut(p, c.snd.mapLocalSeq(tcp.Seq()), wireAck, flags)
		return
	}
	if c.sess == nil {
		c.hold(p)
		return
	}
	c.sendData(p, pk, wireAck)
}

// hold keeps a copy of an outbound data segment until the keys exist and
// drops the original; the copy is encrypted and sent then.
func (c *conn) hold(p *Packet) {
	p.Verdict = Drop
	if c.heldBytes+len(p.Buf) > maxHeld {
		c.e.ctr.DropHeldOverflow++
		return
	}
	c.e.ctr.DropHeld++
	c.held = append(c.held, append([]byte(nil), p.Buf...))
	c.heldBytes += len(p.Buf)
}

// ---- inbound --------------------------------------------------------

func (c *conn) inHandshake(p *Packet, pk *packet.Packet) {
	tcp := pk.TCP()
	flags := tcp.Flags()
	if flags&packet.RST != 0 {
		c.phase = phaseGone
		return
	}
	if flags&packet.SYN != 0 {
		c.peerISN, c.havePeerISN = tcp.Seq(), true
		c.peerShift, c.peerWS = tcp.Options().WindowScale()
		c.peerShift = min(c.peerShift, 14)
	}
	v := c.tracker.Recv(enoSegment(pk))
	if flags&packet.SYN != 0 {
		if v.DiscardSYNData && pk.PayloadLen() > 0 {
			// RFC 8547 §4.7: the stack must not read or acknowledge it.
			c.e.ctr.SYNDataDiscarded++
			if err := pk.SetPayload(nil); err == nil {
				p.Buf, p.Modified = pk.Bytes(), true
			}
		}
		if c.tracker.State() == eno.StateNegotiating || v.Event == eno.EventEnabled {
			c.clampMSS(p, pk)
			c.noSACK(p, pk)
		}
		if flags&packet.ACK == 0 && c.tracker.State() != eno.StateDisabled {
			c.e.ctr.ConnsOffered++
		}
	}
	switch {
	case v.Event == eno.EventDisabled || c.tracker.State() == eno.StateDisabled:
		c.goPlain()
	case v.Event == eno.EventEnabled:
		c.needENO = false // B has received A's non-SYN segment
		c.enable()
		if c.phase != phaseGone && flags&packet.SYN == 0 {
			c.inData(p, pk)
		}
	}
}

// noSACK removes SACK-permitted from the peer's SYN or SYN-ACK before
// the local stack sees it, so that the stacks of an encrypted connection
// do not negotiate SACK: the engine cannot map SACK blocks (it removes
// them), and a stack that believes in SACK ignores duplicate ACKs
// without them, so it would recover every loss only by its timer. With
// SACK off, the duplicate ACKs the peer's engine sends for data beyond a
// hole trigger fast retransmit (RFC 5681).
func (c *conn) noSACK(p *Packet, pk *packet.Packet) {
	if _, ok := pk.TCP().Options().Find(packet.OptSACKPermitted); !ok {
		return
	}
	if pk.RemoveOption(packet.OptSACKPermitted) == nil {
		c.e.ctr.SACKRemoved++
		p.Buf, p.Modified = pk.Bytes(), true
	}
}

// clampMSS lowers the MSS the peer announced, so that the local stack's
// segments still fit once they become frames.
func (c *conn) clampMSS(p *Packet, pk *packet.Packet) {
	tcp := pk.TCP()
	o, ok := tcp.Options().Find(2)
	if !ok || len(o.Data) != 2 {
		return
	}
	mss := uint16(o.Data[0])<<8 | uint16(o.Data[1])
	if mss <= mssReduction+64 {
		c.segSize = mss
		return
	}
	mss -= mssReduction
	c.segSize = mss
	if tcp.RewriteOptionData(o, []byte{byte(mss >> 8), byte(mss)}) == nil {
		c.e.ctr.MSSClamped++
		p.Modified = true
	}
}

// replacedBy reports whether a SYN (without ACK) with sequence number
// seq, travelling in dir, starts a new connection on this entry's
// 4-tuple rather than belonging to it: the entry is plain or closed (both
// FINs seen), and the SYN is not a retransmission of its first SYN.
func (c *conn) replacedBy(dir Direction, seq uint32) bool {
	ended := c.phase == phasePlain || c.phase == phaseGone || c.localFIN && c.peerFIN
	if !ended {
		return false
	}
	if dir == Outbound {
		return !c.haveLocalISN || seq != c.localISN
	}
	return !c.havePeerISN || seq != c.peerISN
}

// ---- state changes --------------------------------------------------

func (c *conn) goPlain() { c.goPlainBecause(c.tracker.Reason()) }

func (c *conn) goPlainBecause(r eno.Reason) {
	if c.phase == phasePlain {
		return
	}
	c.phase = phasePlain
	c.plainR = r
	c.e.countPlain(c.plainR)
	c.dropSecrets()
	c.e.cfg.Log.Debug("divert: connection plain", "local", c.key.local, "remote", c.key.remote, "reason", c.plainR)
	c.e.emit(EventPlain, c)
}

// plainLinger keeps a plain connection's entry for SYN retransmissions;
// the backend stops capturing it, so no later packets refresh it.
const plainLinger = 60 * time.Second

// deadLinger keeps the tombstone of an expired encrypted connection.
const deadLinger = 24 * time.Hour

// dropSecrets erases resumption secrets this connection did not use.
// A proposal the peer declined is spent all the same (RFC 8548 §3.5:
// each i is tried at most once).
func (c *conn) dropSecrets() {
	if c.proposed != nil {
		c.proposed.Zero()
		c.proposed = nil
	}
	if c.accepted != nil {
		c.accepted.Zero()
		c.accepted = nil
	}
}

// enable starts tcpcrypt once TCP-ENO succeeded (RFC 8547 §4.6: from now
// on no plaintext may reach either side).
func (c *conn) enable() {
	res, err := c.tracker.Result()
	if err != nil || !c.haveLocalISN || !c.havePeerISN {
		c.abort(&c.e.ctr.AbortInternal, "ENO enabled without a complete handshake", err)
		return
	}
	c.result = res
	c.snd.reset(c.localISN+1, c.e.cfg.MaxBuffer)
	c.rcv.reset(c.peerISN+1, c.e.cfg.MaxBuffer)
	c.phase = phaseKeys
	tep := tcpcrypt.TEP(res.TEP())
	if res.NegTEP()&eno.VBit != 0 {
		c.resume(&res)
		return
	}
	c.dropSecrets()
	var eph *tcpcrypt.Ephemeral
	if f := c.e.cfg.Ephemerals; f != nil && c.e.cfg.Rand == nil {
		eph = f(tep)
	}
	if res.Role() == eno.RoleA {
		c.hs, err = tcpcrypt.NewInitiator(&c.pol.tc, tep, res.Transcript(), eph)
	} else {
		c.hs, err = tcpcrypt.NewResponder(&c.pol.tc, tep, res.Transcript(), eph)
	}
	if eph != nil {
		// The handshake has its own copy of the nonce and owns the key
		// (or failed: then nobody does).
		clear(eph.Nonce[:])
		if err != nil {
			destroyEphemeral(eph)
		}
	}
	if err != nil {
		c.abort(&c.e.ctr.AbortInternal, "start key exchange", err)
		return
	}
	c.keyDeadline = c.e.now.Add(c.e.cfg.HandshakeTimeout)
	c.e.setTimer(c.keyDeadline)
	if res.Role() == eno.RoleA {
		c.sendInit(c.hs.Init1())
	}
}

func (c *conn) resume(res *eno.Result) {
	rs := c.proposed
	if rs == nil {
		rs = c.accepted
	}
	if rs == nil {
		c.abort(&c.e.ctr.AbortInternal, "resumption negotiated without a cached secret", nil)
		return
	}
	// sn = nonce_a | nonce_b, ordered by the original roles.
	_, nA, _, _ := tcpcrypt.ParseResumeData(res.A().Data)
	_, nB, _, _ := tcpcrypt.ParseResumeData(res.B().Data)
	if rs.OrigA != (res.Role() == eno.RoleA) {
		nA, nB = nB, nA
	}
	c.rcv.initDone = true // no Init messages when resuming
	s, err := tcpcrypt.Resume(rs, nA, nB)
	c.proposed, c.accepted = nil, nil
	if err != nil {
		c.abort(&c.e.ctr.AbortBadInit, "resume", err)
		return
	}
	c.resumed = true
	c.e.ctr.ConnsResumed++
	c.ready(s)
}

// ready installs the session: encryption is on.
func (c *conn) ready(s *tcpcrypt.Session) {
	c.sess = s
	c.hs = nil
	c.phase = phaseEncrypted
	c.keyDeadline = time.Time{} // the Init timer runs until our Init is acknowledged
	id := s.ID()
	if err := c.tracker.SetSessionID(id[:]); err != nil {
		c.abort(&c.e.ctr.AbortInternal, "session ID", err)
		return
	}
	// RFC 8548 §3.5: once mk[0] is computed, cache ss[i+1] (the session
	// erased ss[i] already).
	if cache := c.pol.cache; cache != nil {
		if rs, ok := s.TakeResumeSecret(); ok {
			cache.Put(c.key.remote.Addr(), &rs)
		}
	} else {
		s.DiscardResumeSecret()
	}
	c.e.ctr.ConnsEncrypted++
	c.e.emit(EventEncrypted, c)
	c.e.cfg.Log.Debug("divert: connection encrypted", "local", c.key.local, "remote", c.key.remote,
		"tep", c.result.TEP(), "aead", s.AEAD(), "resumed", c.resumed)
	held := c.held
	c.held, c.heldBytes = nil, 0
	// Held segments (GSO super-packets among them) are injected, so
	// they leave in segment-sized frames.
	c.replaying = true
	defer func() { c.replaying = false }()
	for _, b := range held {
		hp := Packet{Dir: Outbound, Buf: b}
		pk, err := packet.Parse(b)
		if err != nil {
			continue
		}
		c.outData(&hp, &pk)
		if hp.Verdict == Accept {
			c.e.inject(Outbound, hp.Buf)
		}
	}
}

// abort resets the connection on both sides (RFC 8548's "abort": the
// application must see an error, not EOF) and counts why.
func (c *conn) abort(counter *uint64, why string, err error) {
	if c.phase == phaseGone {
		return
	}
	*counter++
	if cache := c.e.cfg.Cache; cache != nil && c.sess != nil {
		// The abort may come from an attack on this session: do not
		// resume from its chain.
		cache.FlushPeer(c.key.remote.Addr())
	}
	c.e.ctr.ConnsAborted++
	c.e.cfg.Log.Warn("divert: connection reset", "local", c.key.local, "remote", c.key.remote, "why", why, "err", err)
	if c.haveLocalISN && c.havePeerISN {
		c.e.inject(Outbound, c.build(Outbound, c.snd.wireNxt, c.rcv.wireNxt, packet.RST|packet.ACK, nil))
		c.e.inject(Inbound, c.build(Inbound, c.rcv.localNxt, c.snd.ackedLocal, packet.RST|packet.ACK, nil))
	}
	c.phase = phaseGone
}

// refuse drops a packet of an expired encrypted connection and resets
// the local end, whose stack still believes in the connection.
func (c *conn) refuse(p *Packet, pk *packet.Packet) {
	p.Verdict = Drop
	c.e.ctr.DropExpired++
	tcp := pk.TCP()
	if tcp.Flags()&packet.RST != 0 {
		return
	}
	if p.Dir == Outbound {
		// The stack sent seq S: answer with a RST it accepts (RFC 793:
		// in a synchronized state a RST is valid if its seq is in the
		// window; the stack's own ack is exactly that).
		c.e.inject(Inbound, c.build(Inbound, tcp.Ack(), 0, packet.RST, nil))
	}
}

// closeSoon starts TIME_WAIT once both sides have sent their last frame:
// the entry stays to answer retransmissions, then goes.
func (c *conn) closeSoon() {
	if !c.localFIN || !c.peerFIN {
		return
	}
	t := c.e.now.Add(c.e.cfg.TimeWait)
	if c.closeAt.IsZero() || t.Before(c.closeAt) {
		c.closeAt = t
		c.e.setTimer(t)
	}
}

// expire handles a connection idle since before now-idle (Sweep). An
// encrypted connection is not forgotten: it becomes a tombstone, so that
// its later packets are refused instead of passing as plaintext (fail
// closed).
func (c *conn) expire(now time.Time) {
	switch c.phase {
	case phasePlain, phaseGone:
		if !now.Before(c.lastActive.Add(plainLinger)) {
			c.phase = phaseGone
		}
		return
	case phaseDead:
		if !now.Before(c.lastActive.Add(deadLinger)) {
			c.phase = phaseGone
		}
		return
	}
	if now.Before(c.lastActive.Add(c.e.cfg.IdleTimeout)) {
		return
	}
	c.e.ctr.ConnsExpired++
	if c.phase == phaseSYN {
		c.phase = phaseGone
		return
	}
	c.destroy()
	c.phase = phaseDead
	c.lastActive = now
}

// timer runs the connection's due timers and returns its next deadline.
// Idle expiry is not a timer: it runs in Sweep, so an idle connection
// does not wake the engine.
func (c *conn) timer(now time.Time) time.Time {
	var next time.Time
	at := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if !c.closeAt.IsZero() {
		if !now.Before(c.closeAt) {
			c.phase = phaseGone
			return time.Time{}
		}
		at(c.closeAt)
	}
	if c.phase == phaseKeys {
		if !now.Before(c.keyDeadline) {
			c.abort(&c.e.ctr.AbortHandshakeTimeout, "key exchange timed out", nil)
			return time.Time{}
		}
		at(c.keyDeadline)
	}
	// B is encrypting as soon as it has sent Init2, and still owes its
	// retransmission until A acknowledges it.
	if !c.initTimer.IsZero() && (c.phase == phaseKeys || c.phase == phaseEncrypted) {
		if !now.Before(c.initTimer) {
			c.retransmitInit()
		}
		at(c.initTimer)
	}
	return next
}

func (c *conn) destroy() {
	c.dropSecrets()
	if c.hs != nil {
		c.hs.Destroy()
		c.hs = nil
	}
	if c.sess != nil {
		c.sess.Close()
		c.sess = nil
	}
	c.snd.wipe()
	c.rcv.wipe()
	for _, b := range c.held {
		clear(b)
	}
	c.held = nil
}

func (c *conn) info() ConnInfo {
	ci := ConnInfo{Mode: core.ModeDivert, Local: c.key.local, Remote: c.key.remote, Created: c.created, Resumed: c.resumed,
		BytesOut: c.snd.appBytes, BytesIn: c.rcv.appBytes, PlainReason: c.plainR}
	switch c.phase {
	case phaseSYN:
		ci.State = "negotiating"
	case phaseKeys:
		ci.State = "key-exchange"
	case phaseEncrypted:
		ci.State = "encrypted"
		if c.localFIN || c.peerFIN {
			ci.State = "closing"
		}
	case phasePlain:
		ci.State = "plain"
	default:
		ci.State = "closed"
	}
	if c.phase == phaseKeys || c.phase == phaseEncrypted {
		ci.Role, ci.TEP, ci.NegTEP = c.result.Role(), c.result.TEP(), c.result.NegTEP()
		ci.SelfGOpt, ci.PeerGOpt = c.result.SelfGOpt(), c.result.PeerGOpt()
	}
	if c.sess != nil {
		id := c.sess.ID()
		ci.SessionID = id[:]
		ci.AEAD = c.sess.AEAD()
	}
	return ci
}

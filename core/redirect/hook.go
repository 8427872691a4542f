package redirect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/packet"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

// Direction is which way a packet goes through the host.
type Direction uint8

const (
	// Outbound: sent by this host, before it leaves.
	Outbound Direction = iota
	// Inbound: received from the network, before the local stack sees it.
	Inbound
)

func (d Direction) String() string {
	if d == Outbound {
		return "outbound"
	}
	return "inbound"
}

// Action is what a backend does with a packet after Process.
type Action uint8

const (
	// Pass: let the packet continue unchanged.
	Pass Action = iota
	// Modified: let the packet continue as Process returned it.
	Modified
	// Drop: discard the packet.
	Drop
)

// Verdict is Process's answer for one packet.
type Verdict struct {
	Action Action
	// Done: the hook needs no more packets of this connection; the
	// backend may stop giving them to it (on Linux, a conntrack mark).
	Done bool
}

// DefaultTEPs in increasing preference: X25519 last, so it wins.
var DefaultTEPs = []eno.TEP{eno.TEPTcpcryptP521, eno.TEPTcpcryptP256, eno.TEPTcpcryptCurve448, eno.TEPTcpcryptCurve25519}

// HookConfig configures a Hook. The zero value is usable: ENO off until
// SetPolicy turns it on.
type HookConfig struct {
	// Policy decides whether new connections offer or answer ENO, with
	// which TEPs, and whether resumption is used (with Cache).
	Policy core.Policy
	// Cache holds resumption secrets; nil disables resumption. Share it
	// with the Proxy.
	Cache *tcpcrypt.Cache
	// ResumeNonceLen is the resumption nonce length, 0–8; 0 means 8
	// (RFC 8548 §3.5), NoResumeNonce a true zero.
	ResumeNonceLen int
	// MaxEntries bounds the table; 0 means 16384. SYNs past it leave
	// their connection plain.
	MaxEntries int
	// Expiry drops an entry this long after its last packet if the proxy
	// has not taken its outcome or its handshake is unfinished; 0 means
	// 2 minutes.
	Expiry time.Duration
	// Rand is the randomness for resumption nonces; nil means crypto/rand.
	Rand io.Reader
	// Log receives rejections and failures; nil discards.
	Log *slog.Logger
}

// NoResumeNonce selects empty resumption nonces (HookConfig.ResumeNonceLen).
const NoResumeNonce = -1

// Outcome is the TCP-ENO outcome of one wire leg, as the hook recorded
// it. An enabled outcome for a resumed session carries the resumption
// secret (ownership moves with the Outcome: Join consumes it, Zero erases
// it).
type Outcome struct {
	Local, Remote netip.AddrPort // the wire leg as this host sees it
	Enabled       bool
	Result        eno.Result // valid when Enabled
	Reason        eno.Reason // why not Enabled
	Resume        *tcpcrypt.ResumeSecret
}

// Resumed reports whether the outcome is a resumed tcpcrypt session.
func (o *Outcome) Resumed() bool { return o.Enabled && o.Result.NegTEP()&eno.VBit != 0 }

// Zero erases the resumption secret the outcome holds, if any.
func (o *Outcome) Zero() {
	if o.Resume != nil {
		o.Resume.Zero()
		o.Resume = nil
	}
}

// PlainOutcome is the outcome of a leg on which ENO is off for reason r.
func PlainOutcome(local, remote netip.AddrPort, r eno.Reason) Outcome {
	return Outcome{Local: local, Remote: remote, Reason: r}
}

// HookCounters are the hook's counters.
type HookCounters struct {
	Packets        uint64 // packets given to Process
	NotTCP         uint64 // unparsable or not TCP (passed)
	BadChecksum    uint64 // inbound handshake segments with a bad TCP checksum (passed, not read)
	OutOfWindow    uint64 // inbound segments whose ack does not fit our ISN (passed, not read)
	EarlyPeerACK   uint64 // bare peer ACKs of only our SYN: no proof the peer saw 45 02 (option kept)
	Unknown        uint64 // packets of no tracked connection (passed)
	Policy         uint64 // SYNs left plain by policy (off or excluded)
	TableFull      uint64 // SYNs left plain because the table was full
	NoOptionSpace  uint64 // SYNs without room for ENO (left plain)
	OptionsAdded   uint64 // ENO options written into segments
	SYNDataDropped uint64 // received SYN+ENO payloads discarded (RFC 8547 §4.7)
	MSSClamped     uint64 // SYN-ACKs whose MSS was lowered to leave room for ENO
	Enabled        uint64 // legs on which ENO succeeded
	Plain          uint64 // legs on which ENO failed (by reason below)
	PlainReasons   [eno.NumReasons]uint64
	Resumed        uint64 // enabled legs that resume a session
	Expired        uint64 // entries dropped by expiry
	Reused         uint64 // entries replaced by a new connection's SYN on the same 4-tuple
	NoRandom       uint64 // SYNs left plain for lack of randomness
}

type tuple struct{ local, remote netip.AddrPort }

// hookConn is one wire leg's handshake state.
type hookConn struct {
	key       tuple
	active    bool
	cfg       eno.Config
	tracker   eno.Tracker
	cache     *tcpcrypt.Cache
	proposed  *tcpcrypt.ResumeSecret
	accepted  *tcpcrypt.ResumeSecret
	nonce     [tcpcrypt.MaxResumeNonceLen]byte
	nonceLen  int
	localISN  uint32
	haveISN   bool
	peerISN   uint32
	havePeer  bool
	gotNonSYN bool
	decided   bool
	taken     bool
	outcome   Outcome
	lastSeen  time.Time
}

// Hook is the SYN hook engine: see the package documentation. It is safe
// for concurrent use.
type Hook struct {
	mu        sync.Mutex
	cfg       HookConfig
	policy    core.Policy
	teps      []eno.TEP
	rand      io.Reader
	log       *slog.Logger
	conns     map[tuple]*hookConn
	ctr       HookCounters
	notify    chan struct{} // closed and replaced when an outcome is decided
	nextSweep time.Time
	optBuf    [eno.MaxOptionLen]byte
}

// NewHook returns a hook engine.
func NewHook(cfg HookConfig) (*Hook, error) {
	switch {
	case cfg.ResumeNonceLen == 0:
		cfg.ResumeNonceLen = tcpcrypt.MaxResumeNonceLen
	case cfg.ResumeNonceLen == NoResumeNonce:
		cfg.ResumeNonceLen = 0
	case cfg.ResumeNonceLen < 0 || cfg.ResumeNonceLen > tcpcrypt.MaxResumeNonceLen:
		return nil, fmt.Errorf("redirect: resumption nonce length %d: allowed 0–8", cfg.ResumeNonceLen)
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 16384
	}
	if cfg.Expiry <= 0 {
		cfg.Expiry = 2 * time.Minute
	}
	h := &Hook{cfg: cfg, rand: cfg.Rand, log: cfg.Log, conns: make(map[tuple]*hookConn), notify: make(chan struct{})}
	if h.rand == nil {
		h.rand = cryptoRand
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if err := h.SetPolicy(cfg.Policy); err != nil {
		return nil, err
	}
	return h, nil
}

// SetPolicy changes what new connections get; legs already in the table
// keep their configuration.
func (h *Hook) SetPolicy(p core.Policy) error {
	teps := p.TEPs
	if len(teps) == 0 {
		teps = DefaultTEPs
	}
	for _, t := range teps {
		if !tcpcrypt.TEP(t).Supported() {
			return fmt.Errorf("redirect: TEP %v is not a tcpcrypt TEP this proxy runs; remove it from the configuration", t)
		}
	}
	cfg := eno.Config{TEPs: teps, AAMandatory: p.AAMandatory}
	if p.AAMandatory {
		cfg.SelfGOpt = eno.GlobalA
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("redirect: TEP configuration: %w", err)
	}
	h.mu.Lock()
	h.policy, h.teps = p, append([]eno.TEP(nil), teps...)
	h.mu.Unlock()
	return nil
}

// Counters returns a snapshot of the counters.
func (h *Hook) Counters() HookCounters {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ctr
}

// Len is the number of legs in the table.
func (h *Hook) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// Process runs the hook on one captured packet of a wire leg's handshake.
// Give it only wire legs: the proxy's own connections to original
// destinations, and peers' connections that are being redirected to the
// proxy; an application's SYN that is about to be redirected is not one.
// Process returns the packet to let through (buf itself, possibly changed and
// grown within its capacity: give it room for 40 more bytes) and the
// verdict. dir says whether this host sends it or received it. Packets
// of connections the hook does not track pass unchanged.
func (h *Hook) Process(buf []byte, dir Direction, now time.Time) ([]byte, Verdict) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ctr.Packets++
	if now.After(h.nextSweep) {
		h.sweepLocked(now)
		h.nextSweep = now.Add(h.cfg.Expiry / 4)
	}
	pk, err := packet.Parse(buf)
	if err != nil || !pk.HasTCP() {
		h.ctr.NotTCP++
		return buf, Verdict{Action: Pass, Done: true}
	}
	tcp := pk.TCP()
	flags := tcp.Flags()
	key := tuple{pk.Src(), pk.Dst()}
	if dir == Inbound {
		key = tuple{pk.Dst(), pk.Src()}
	}
	c := h.conns[key]
	if c != nil && flags&(packet.SYN|packet.ACK|packet.RST) == packet.SYN && c.newer(dir, tcp.Seq()) {
		// A new connection on the 4-tuple of one the table still
		// holds (its entry outlives it until the peer's first non-SYN
		// segment or expiry; ports are reused quickly under churn).
		// The old entry's tracker and outcome must not decide the new
		// connection.
		h.ctr.Reused++
		h.drop(c)
		c = nil
	}
	if c == nil {
		if flags&packet.SYN == 0 || flags&packet.ACK != 0 || flags&packet.RST != 0 {
			h.ctr.Unknown++
			return buf, Verdict{Action: Pass, Done: true}
		}
		if dir == Inbound && !pk.VerifyTCPChecksum() {
			h.ctr.BadChecksum++
			return buf, Verdict{Action: Pass}
		}
		c = h.newConn(key, dir == Outbound, now)
		if c == nil {
			return buf, Verdict{Action: Pass, Done: true}
		}
	}
	c.lastSeen = now
	if dir == Outbound {
		return h.send(c, &pk, buf)
	}
	return h.recv(c, &pk, buf)
}

func (h *Hook) newConn(key tuple, active bool, now time.Time) *hookConn {
	if !h.policy.Enabled || h.policy.Excluded(key.local, key.remote) {
		h.ctr.Policy++
		return nil
	}
	if len(h.conns) >= h.cfg.MaxEntries {
		h.ctr.TableFull++
		h.log.Warn("redirect: SYN hook table full; connection left plain", "local", key.local, "remote", key.remote, "max", h.cfg.MaxEntries)
		return nil
	}
	c := &hookConn{key: key, active: active, lastSeen: now, nonceLen: h.cfg.ResumeNonceLen}
	if h.policy.Resumption {
		c.cache = h.cfg.Cache
	}
	if c.cache != nil && c.nonceLen > 0 {
		if _, err := io.ReadFull(h.rand, c.nonce[:c.nonceLen]); err != nil {
			// Without randomness no ENO (RFC 8547 §4.6 wants fresh nonces).
			h.ctr.NoRandom++
			h.log.Error("redirect: no randomness for a resumption nonce; connection left plain", "err", err)
			return nil
		}
	}
	teps := h.teps
	if active && c.cache != nil {
		// Offer only the TEP of a cached secret, with the resumption
		// suboption: 20 bytes, what a Linux SYN leaves free. It also
		// offers a fresh key exchange with that TEP (RFC 8548 §3.5).
		for i := len(teps) - 1; i >= 0; i-- {
			if rs, ok := c.cache.TakeForPeer(key.remote.Addr(), tcpcrypt.TEP(teps[i])); ok {
				c.proposed = &rs
				teps = teps[i : i+1]
				break
			}
		}
	}
	c.cfg = eno.Config{TEPs: teps, AAMandatory: h.policy.AAMandatory, Offer: c.offer, Accept: c.accept, Choose: c.choose}
	if h.policy.AAMandatory {
		c.cfg.SelfGOpt = eno.GlobalA
	}
	c.tracker = eno.NewTracker(&c.cfg)
	h.conns[key] = c
	return c
}

// newer reports whether a SYN (without ACK) with sequence number seq
// starts a connection other than the one c follows: its initial
// sequence number differs from the one c recorded for that side. A
// retransmitted SYN has the same one.
func (c *hookConn) newer(dir Direction, seq uint32) bool {
	if dir == Outbound {
		return c.active && c.haveISN && seq != c.localISN
	}
	return !c.active && c.havePeer && seq != c.peerISN
}

func (h *Hook) send(c *hookConn, pk *packet.Packet, buf []byte) ([]byte, Verdict) {
	tcp := pk.TCP()
	flags := tcp.Flags()
	if flags&packet.RST != 0 {
		h.fail(c, eno.Abandoned)
		return buf, Verdict{Action: Pass, Done: true}
	}
	if flags&packet.SYN != 0 {
		c.localISN, c.haveISN = tcp.Seq(), true
	}
	seg := eno.Segment{SYN: flags&packet.SYN != 0, ACK: flags&packet.ACK != 0, Options: tcp.Options(), DataLen: pk.PayloadLen()}
	opt, _ := c.tracker.Send(h.optBuf[:0], seg)
	act := Pass
	if len(opt) > 0 {
		if err := pk.InsertOption(eno.OptionKind, opt[2:]); err != nil {
			if seg.SYN && c.tracker.State() != eno.StateEnabled {
				// No room: the SYN goes without ENO (RFC 8547 §4.6 lets
				// a SYN drop it) and the leg stays plain.
				h.ctr.NoOptionSpace++
				c.tracker.Disable()
			} else {
				// A non-SYN segment that must carry ENO cannot: the
				// peer would disable ENO while we enabled it. Drop it;
				// TCP retransmits (smaller, if the MSS was the problem).
				h.log.Info("redirect: no room for ENO in a segment; dropped", "local", c.key.local, "remote", c.key.remote, "err", err)
				return buf, Verdict{Action: Drop}
			}
		} else {
			pk.UpdateTCPChecksum()
			buf, act = pk.Bytes(), Modified
			h.ctr.OptionsAdded++
		}
	}
	return buf, Verdict{Action: act, Done: h.settle(c)}
}

func (h *Hook) recv(c *hookConn, pk *packet.Packet, buf []byte) ([]byte, Verdict) {
	tcp := pk.TCP()
	flags := tcp.Flags()
	if !pk.VerifyTCPChecksum() {
		h.ctr.BadChecksum++
		return buf, Verdict{Action: Pass}
	}
	if flags&packet.ACK != 0 && c.haveISN && tcp.Ack()-(c.localISN+1) >= 1<<30 {
		// Not for our connection's sequence space (blind or stale):
		// the stack will discard it, so it must not sway ENO either.
		h.ctr.OutOfWindow++
		return buf, Verdict{Action: Pass}
	}
	if flags&packet.RST != 0 {
		h.fail(c, eno.Abandoned)
		return buf, Verdict{Action: Pass, Done: true}
	}
	if flags&(packet.SYN|packet.ACK) == packet.SYN && !c.havePeer {
		c.peerISN, c.havePeer = tcp.Seq(), true
	}
	if c.active && flags&packet.SYN == 0 && pk.PayloadLen() == 0 && c.haveISN && tcp.Ack() == c.localISN+1 {
		// A bare segment that acknowledges nothing past our SYN (the
		// peer's answer to a delayed duplicate SYN while it is still in
		// SYN-RECEIVED) is no proof that the peer saw our third segment
		// and its 45 02: RFC 8547 §4.6 stops the option at the peer's
		// first non-SYN segment assuming it follows ours. Keep sending the
		// option until the peer acknowledges our data or sends its own.
		h.ctr.EarlyPeerACK++
		return buf, Verdict{Action: Pass, Done: h.settle(c)}
	}
	v := c.tracker.Recv(eno.Segment{SYN: flags&packet.SYN != 0, ACK: flags&packet.ACK != 0, Options: tcp.Options(), DataLen: pk.PayloadLen()})
	if flags&packet.SYN == 0 {
		c.gotNonSYN = true
	}
	act := Pass
	if c.active && flags&packet.SYN != 0 && flags&packet.ACK != 0 && c.tracker.State() != eno.StateDisabled && h.clampMSS(pk) {
		act = Modified
	}
	if v.DiscardSYNData && pk.PayloadLen() > 0 {
		if err := pk.SetPayload(nil); err == nil {
			pk.UpdateTCPChecksum()
			buf, act = pk.Bytes(), Modified
			h.ctr.SYNDataDropped++
		} else {
			return buf, Verdict{Action: Drop}
		}
	}
	return buf, Verdict{Action: act, Done: h.settle(c)}
}

// mssReduction is what the hook takes off the MSS a peer announces in
// its SYN-ACK: the active side's segments carry the non-SYN ENO option
// (4 bytes with padding) until the peer's first non-SYN segment, and a
// resumed session sends full-size data at once; without room for the
// option those segments would exceed the path MTU and never arrive.
const mssReduction = 4

// clampMSS lowers the MSS option of a SYN-ACK (before the local stack
// reads it) and reports whether it did.
func (h *Hook) clampMSS(pk *packet.Packet) bool {
	tcp := pk.TCP()
	o, ok := tcp.Options().Find(2)
	if !ok || len(o.Data) != 2 {
		return false
	}
	mss := uint16(o.Data[0])<<8 | uint16(o.Data[1])
	if mss <= 64+mssReduction {
		return false
	}
	mss -= mssReduction
	if tcp.RewriteOptionData(o, []byte{byte(mss >> 8), byte(mss)}) != nil {
		return false
	}
	h.ctr.MSSClamped++
	return true
}

// settle records the outcome once the tracker knows it and says whether
// the leg still needs the hook.
func (h *Hook) settle(c *hookConn) bool {
	switch c.tracker.State() {
	case eno.StateDisabled:
		h.fail(c, c.tracker.Reason())
		return true
	case eno.StateEnabled:
		if !c.decided {
			res, err := c.tracker.Result()
			if err != nil {
				h.fail(c, eno.Abandoned)
				return true
			}
			o := Outcome{Local: c.key.local, Remote: c.key.remote, Enabled: true, Result: res}
			if res.NegTEP()&eno.VBit != 0 {
				o.Resume = c.proposed
				if o.Resume == nil {
					o.Resume = c.accepted
				}
				c.proposed, c.accepted = nil, nil
				if o.Resume == nil {
					h.fail(c, eno.Abandoned)
					return true
				}
				h.ctr.Resumed++
			}
			c.dropSecrets()
			h.ctr.Enabled++
			h.decide(c, o)
		}
		// The active side sends 45 02 until the peer's first non-SYN
		// segment; the passive side is enabled only by one.
		if c.gotNonSYN {
			h.maybeForget(c)
			return true
		}
	}
	return false
}

func (h *Hook) fail(c *hookConn, r eno.Reason) {
	if c.decided {
		if !c.outcome.Enabled {
			h.maybeForget(c)
		}
		return
	}
	if r == eno.None {
		r = eno.Abandoned
	}
	c.tracker.Disable()
	c.dropSecrets()
	h.ctr.Plain++
	h.ctr.PlainReasons[r]++
	h.log.Debug("redirect: leg plain", "local", c.key.local, "remote", c.key.remote, "reason", r)
	h.decide(c, PlainOutcome(c.key.local, c.key.remote, r))
	h.maybeForget(c)
}

func (h *Hook) decide(c *hookConn, o Outcome) {
	c.decided, c.outcome = true, o
	close(h.notify)
	h.notify = make(chan struct{})
}

// maybeForget removes a leg whose outcome the proxy has and whose
// handshake the hook no longer follows.
func (h *Hook) maybeForget(c *hookConn) {
	if c.taken && h.conns[c.key] == c {
		delete(h.conns, c.key)
	}
}

func (c *hookConn) dropSecrets() {
	// A proposal the peer declined is spent all the same (RFC 8548
	// §3.5: each secret is tried at most once).
	if c.proposed != nil {
		c.proposed.Zero()
		c.proposed = nil
	}
	if c.accepted != nil {
		c.accepted.Zero()
		c.accepted = nil
	}
}

func (c *hookConn) offer(t eno.TEP) []byte {
	if c.proposed == nil || tcpcrypt.TEP(t) != c.proposed.TEP {
		return nil
	}
	sub, err := tcpcrypt.AppendResumeSuboption(nil, c.proposed, c.nonce[:c.nonceLen])
	if err != nil {
		return nil
	}
	return sub[1:]
}

func (c *hookConn) accept(cand eno.Candidate) bool {
	if !tcpcrypt.TEP(cand.A.TEP()).Supported() || !tcpcrypt.SuboptionAcceptable(cand.A.Data) || !tcpcrypt.SuboptionAcceptable(cand.B.Data) {
		return false
	}
	// RFC 8548 §3.5: an active opener ignores a resumption reply whose
	// identifier half does not match the secret it proposed.
	if c.active && cand.B.V() {
		if half, _, ok, _ := tcpcrypt.ParseResumeData(cand.B.Data); ok {
			return c.proposed != nil && tcpcrypt.HalvesMatch(half, c.proposed.PeerHalf())
		}
	}
	return true
}

func (c *hookConn) choose(offer eno.Suboption, _ int) (eno.Suboption, bool) {
	t := offer.TEP()
	if !tcpcrypt.TEP(t).Supported() {
		return eno.Suboption{}, false
	}
	if offer.V() && c.cache != nil && c.accepted == nil {
		if half, _, ok, _ := tcpcrypt.ParseResumeData(offer.Data); ok {
			if rs, ok := c.cache.TakeByPeerHalf(tcpcrypt.TEP(t), half); ok {
				sub, err := tcpcrypt.AppendResumeSuboption(nil, &rs, c.nonce[:c.nonceLen])
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

// ErrUndecided means the hook saw the leg's handshake but has no outcome
// for it: the proxy must abort the leg, since the peer may have enabled
// ENO.
var ErrUndecided = errors.New("redirect: TCP-ENO outcome of the connection not known")

// Wait returns the outcome of the wire leg (local, remote) and hands it
// over: a second Wait for the same leg does not find it. Call it once the
// leg's SYN has passed the hook (after connect returns, or after accept):
// if the hook has no entry for the leg then, it never added ENO to it, so
// ENO cannot be on and Wait returns a plain outcome (eno.MidStream). If
// the leg's handshake is still undecided, Wait waits; when ctx ends first
// it returns ErrUndecided.
func (h *Hook) Wait(ctx context.Context, local, remote netip.AddrPort) (Outcome, error) {
	key := tuple{local, remote}
	for {
		h.mu.Lock()
		c := h.conns[key]
		if c == nil || c.taken {
			h.mu.Unlock()
			return PlainOutcome(local, remote, eno.MidStream), nil
		}
		if c.decided {
			o := c.outcome
			c.outcome.Resume = nil
			c.taken = true
			if c.tracker.State() == eno.StateDisabled || c.gotNonSYN {
				delete(h.conns, key)
			}
			h.mu.Unlock()
			return o, nil
		}
		ch := h.notify
		h.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Outcome{}, fmt.Errorf("%w (%v → %v): %w", ErrUndecided, local, remote, ctx.Err())
		}
	}
}

// Forget drops a leg's entry and any secret it holds (a proxy that gave
// up on the connection).
func (h *Hook) Forget(local, remote netip.AddrPort) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.conns[tuple{local, remote}]; c != nil {
		h.drop(c)
	}
}

func (h *Hook) drop(c *hookConn) {
	c.dropSecrets()
	c.outcome.Zero()
	delete(h.conns, c.key)
}

// Sweep expires entries idle for longer than HookConfig.Expiry. Process
// also sweeps now and then.
func (h *Hook) Sweep(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sweepLocked(now)
}

func (h *Hook) sweepLocked(now time.Time) {
	for _, c := range h.conns {
		if now.Sub(c.lastSeen) > h.cfg.Expiry {
			h.ctr.Expired++
			h.drop(c)
		}
	}
}

// Close erases every secret the hook holds and empties the table.
func (h *Hook) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		h.drop(c)
	}
}

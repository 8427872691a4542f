package divert

import (
	"crypto/rand"
	"io"
	"net/netip"
	"sync"
	"time"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/packet"
)

// Engine rewrites one host's TCP packets to speak TCP-ENO and tcpcrypt.
// It is deterministic and does no I/O: a backend (NFQUEUE, WinDivert, a
// test network) feeds it batches and applies its verdicts. Its methods
// may be called from any goroutine (a mutex serialises them, uncontended
// on the packet path); a backend with several workers runs one Engine per
// worker and keeps each flow on one worker.
type Engine struct {
	mu    sync.Mutex
	cfg   Config
	pol   *policy // what new connections get (SetPolicy)
	rand  io.Reader
	conns map[flowKey]*conn
	ctr   Counters

	now      time.Time
	deadline time.Time // earliest timer of any connection (zero: none)

	// Packets injected during the current call; their buffers come from
	// pool and stay valid until the next call.
	out     []Packet
	pool    [][]byte
	poolUse int

	optBuf   [40]byte // TCP options of a packet being built
	frameBuf []byte   // a sealed frame
	joinBuf  []byte   // plaintext of several frames delivered as one segment
}

// flowKey identifies a connection from the local host's point of view.
type flowKey struct {
	local, remote netip.AddrPort
}

// New returns an engine with cfg's settings.
func New(cfg Config) (*Engine, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: c, conns: map[flowKey]*conn{}, rand: c.Rand}
	if e.rand == nil {
		e.rand = rand.Reader
	}
	// Until SetPolicy: on, the configured TEPs and AEADs, resumption
	// when there is a cache.
	if e.pol, err = e.newPolicy(core.Policy{Enabled: true, TEPs: c.TEPs, AEADs: c.AEADs, Resumption: c.Cache != nil}); err != nil {
		return nil, err
	}
	return e, nil
}

// Process decides on a batch of captured packets: it sets each packet's
// Verdict (rewriting Buf in place when needed) and appends the packets it
// injects to out. Call it with no packets when NextDeadline has passed.
func (e *Engine) Process(pkts []Packet, out []Packet, now time.Time) []Packet {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = now
	e.out = out
	e.poolUse = 0
	for i := range pkts {
		p := &pkts[i]
		p.Verdict, p.Modified = Accept, false
		e.ctr.Packets[p.Dir&1]++
		e.process(p)
	}
	if !e.deadline.IsZero() && !now.Before(e.deadline) {
		e.runTimers()
	}
	out = e.out
	e.out = nil
	return out
}

// NextDeadline is when the engine next needs Process to run, even with
// no packets; zero means no timer is pending.
func (e *Engine) NextDeadline() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.deadline
}

// Len returns the number of connections in the table.
func (e *Engine) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.conns)
}

func (e *Engine) process(p *Packet) {
	pk, err := packet.Parse(p.Buf)
	if err != nil || !pk.HasTCP() {
		e.ctr.PacketsBad++
		return
	}
	key := flowKey{local: pk.Src(), remote: pk.Dst()}
	if p.Dir == Inbound {
		key = flowKey{local: pk.Dst(), remote: pk.Src()}
	}
	c := e.conns[key]
	flags := pk.TCP().Flags()
	if c != nil && flags&(packet.SYN|packet.ACK|packet.RST) == packet.SYN && c.replacedBy(p.Dir, pk.TCP().Seq()) {
		// A new connection on the 4-tuple of one that ended (TIME_WAIT
		// reuse, a plain connection's lingering entry).
		e.ctr.ConnsReused++
		e.remove(c)
		c = nil
	}
	if c == nil {
		if flags&(packet.SYN|packet.ACK|packet.RST) != packet.SYN {
			// Not the start of a connection we saw: a plain connection
			// we stopped tracking, or one older than the engine.
			e.ctr.PacketsPassed++
			return
		}
		if c = e.newConn(key, p.Dir == Outbound); c == nil {
			e.ctr.PacketsPassed++
			return
		}
	}
	c.lastActive = e.now
	c.handle(p, &pk)
	if c.phase == phaseGone {
		e.remove(c)
	}
}

func (e *Engine) newConn(key flowKey, active bool) *conn {
	if len(e.conns) >= e.cfg.MaxConns {
		e.ctr.ConnsTableFull++
		e.cfg.Log.Warn("divert: connection table full; new connection stays plain", "max", e.cfg.MaxConns)
		return nil
	}
	c := &conn{e: e, pol: e.pol, key: key, active: active, created: e.now, lastActive: e.now}
	e.conns[key] = c
	if cause, plain := c.pol.leftPlain(key); plain {
		// Hands off from the first SYN: no ENO option is sent, and a
		// peer's is left unanswered (the stack ignores it).
		switch cause {
		case causeDisabled:
			e.ctr.ConnsDisabled++
		case causeExcluded:
			e.ctr.ConnsExcluded++
		}
		c.enoCfg = eno.Config{}
		c.tracker = eno.NewTracker(&c.enoCfg)
		c.tracker.Disable()
		c.goPlainBecause(eno.ConfigOff)
		return c
	}
	c.init()
	return c
}

func (e *Engine) remove(c *conn) {
	if e.conns[c.key] != c {
		return
	}
	delete(e.conns, c.key)
	c.destroy()
	e.ctr.ConnsClosed++
	e.emit(EventClosed, c)
}

func (e *Engine) emit(kind EventKind, c *conn) {
	if e.cfg.OnEvent == nil {
		return
	}
	ev := Event{Kind: kind, Local: c.key.local, Remote: c.key.remote}
	if kind == EventEncrypted && c.sess != nil {
		id := c.sess.ID()
		ev.SessionID = id[:]
	}
	e.cfg.OnEvent(ev)
}

// setTimer makes sure the engine wakes up at t for some connection.
func (e *Engine) setTimer(t time.Time) {
	if e.deadline.IsZero() || t.Before(e.deadline) {
		e.deadline = t
	}
}

// runTimers fires due connection timers and recomputes the deadline.
// It scans the table: timers are rare (handshakes, expiry), and a scan
// keeps the connection entry small.
func (e *Engine) runTimers() {
	e.deadline = time.Time{}
	for _, c := range e.conns {
		if d := c.timer(e.now); !d.IsZero() {
			e.setTimer(d)
		}
		if c.phase == phaseGone {
			e.remove(c)
		}
	}
}

// Sweep expires idle connections: call it every few seconds (it scans
// the table). Expired encrypted connections leave a tombstone so that
// their packets never pass as plaintext.
func (e *Engine) Sweep(now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = now
	for _, c := range e.conns {
		c.expire(now)
		if c.phase == phaseGone {
			e.remove(c)
		}
	}
}

// buffer returns a scratch buffer of at least n bytes for an injected
// packet, reused across calls.
func (e *Engine) buffer(n int) []byte {
	if e.poolUse == len(e.pool) {
		e.pool = append(e.pool, make([]byte, 0, 2048))
	}
	b := e.pool[e.poolUse]
	if cap(b) < n {
		b = make([]byte, 0, n)
		e.pool[e.poolUse] = b
	}
	e.poolUse++
	return b[:0]
}

func (e *Engine) inject(dir Direction, b []byte) {
	e.ctr.Injected++
	e.out = append(e.out, Packet{Dir: dir, Buf: b, Verdict: Accept, Modified: true})
}

// ConnInfo describes a connection for status listings and the tcpinc API.
type ConnInfo = core.ConnInfo

// Conns appends a description of every connection to dst.
func (e *Engine) Conns(dst []ConnInfo) []ConnInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.conns {
		dst = append(dst, c.info())
	}
	return dst
}

// Lookup describes the connection between local and remote, if known.
func (e *Engine) Lookup(local, remote netip.AddrPort) (ConnInfo, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.conns[flowKey{local, remote}]
	if c == nil {
		return ConnInfo{}, false
	}
	return c.info(), true
}

// Close erases every connection's secrets and empties the table.
func (e *Engine) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.conns {
		c.destroy()
	}
	clear(e.conns)
}

// AbortAll resets every connection that is exchanging keys or encrypted,
// on both sides, and empties the table. A backend calls it before it
// stops capturing: once the rules are gone, such a connection's next
// segments would leave in plaintext. The returned packets (their buffers
// owned by the caller) must be injected in their Dir.
func (e *Engine) AbortAll() []Packet {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.out, e.poolUse = nil, 0
	for _, c := range e.conns {
		if c.phase == phaseKeys || c.phase == phaseEncrypted {
			c.abort(&e.ctr.AbortShutdown, "service stopping", nil)
		}
	}
	out := e.out
	e.out = nil
	for i := range out {
		out[i].Buf = append([]byte(nil), out[i].Buf...)
	}
	for _, c := range e.conns {
		e.remove(c)
	}
	return out
}

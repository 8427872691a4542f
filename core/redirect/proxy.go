package redirect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

// Dialer opens the proxy's own connections. The platform marks the
// sockets it makes so that its redirection rules leave them alone (Linux:
// SO_MARK; Windows: the proxy's process; macOS: a bound source range).
type Dialer interface {
	DialContext(ctx context.Context, dst netip.AddrPort) (net.Conn, error)
}

// Flow is one logical connection the platform redirected. Src is the
// opener (the local application on Outbound, the peer on Inbound) as the
// proxy's accepted socket sees it; Dst is the original destination.
type Flow struct {
	Dir      Direction
	Src, Dst netip.AddrPort
}

// Decision is what a backend does with the application's held SYN after
// Prepare.
type Decision uint8

const (
	// Redirect: release the SYN to the proxy listener; Serve pairs it
	// with the prepared leg.
	Redirect Decision = iota
	// Refused: the destination refused the connection (a RST). The
	// application must see a refusal.
	Refused
	// Unreachable: the destination did not answer or is unreachable.
	// The application must see no connection (timeout or ICMP error).
	Unreachable
	// Bypass: the proxy does not take the flow (too many flows are
	// being prepared, see Config.MaxPending); let the SYN continue
	// unredirected, as plain TCP.
	Bypass
)

func (d Decision) String() string {
	switch d {
	case Redirect:
		return "redirect"
	case Refused:
		return "refused"
	case Bypass:
		return "bypass"
	}
	return "unreachable"
}

// Config configures a Proxy.
type Config struct {
	// Hook supplies the wire legs' ENO outcomes. Required.
	Hook *Hook
	// Dialer opens the proxy's legs. Required for Prepare and Serve
	// (not for Join).
	Dialer Dialer
	// AEADs, most preferred first; empty means tcpcrypt.DefaultAEADs.
	AEADs []tcpcrypt.AEADID
	// Cache receives the next resumption secret of every encrypted
	// connection; nil disables resumption. Share it with the Hook.
	Cache *tcpcrypt.Cache
	// DialTimeout bounds Prepare's dial; 0 means 20 s. A destination
	// that has not answered by then is Unreachable.
	DialTimeout time.Duration
	// OutcomeTimeout bounds the wait for the hook's outcome once the
	// leg is connected; 0 means 3 s.
	OutcomeTimeout time.Duration
	// HandshakeTimeout bounds Init1/Init2; 0 means 10 s.
	HandshakeTimeout time.Duration
	// PendingTimeout closes a prepared leg that Serve never claimed;
	// 0 means 30 s.
	PendingTimeout time.Duration
	// MaxPending bounds the flows being prepared or waiting for Serve;
	// past it Prepare answers Bypass. Every prepared inbound flow is a
	// connection to a local application before the peer has completed
	// its handshake, so without a bound a flood of spoofed SYNs would
	// become a flood of connections. 0 means 4096.
	MaxPending int
	// Linger keeps a connection in Conns and Lookup this long after
	// both legs are done, as TCP's TIME_WAIT keeps a socket: the
	// application may still be reading what the proxy handed its
	// socket, and asks by that socket's addresses (state "closed",
	// or "reset"). 0 means DefaultLinger; negative, none.
	Linger time.Duration
	// MaxFrameData limits the data per frame sent; 0 means
	// DefaultMaxFrameData.
	MaxFrameData int
	// Log receives connection events at debug level, failures at info or
	// warn. nil discards.
	Log *slog.Logger
}

// DefaultLinger is Config.Linger's default.
const DefaultLinger = 5 * time.Second

// DefaultMaxFrameData is the proxy's frame size: larger than the codec's
// default, since a proxy moves bulk data between sockets and the
// per-frame cost (a seal or open call, 20 bytes) dominates small frames.
const DefaultMaxFrameData = 60 << 10

// Counters are the proxy's counters.
type Counters struct {
	Prepared        uint64 // Prepare calls
	Overloaded      uint64 // Prepare calls answered Bypass (MaxPending reached)
	Refused         uint64 // destinations that refused
	Unreachable     uint64 // destinations that did not answer
	PendingExpired  uint64 // prepared legs never claimed
	Unpaired        uint64 // Serve calls without a prepared leg (dialled then)
	Conns           uint64 // connections joined
	Encrypted       uint64 // of which encrypted
	Resumed         uint64 // of which resumed
	Plain           uint64 // of which plain
	HandshakeFailed uint64 // Init1/Init2 failed (both legs reset)
	Undecided       uint64 // ENO outcome unknown (both legs reset)
	Integrity       uint64 // frames that failed authentication (both legs reset)
	Truncated       uint64 // wire leg ended without FINp (both legs reset)
	ResetWire       uint64 // resets received on the wire leg
	ResetLocal      uint64 // resets received on the local leg
	Aborted         uint64 // connections ended by a reset (any cause)
	BytesOut        uint64 // application bytes sent on wire legs (encrypted or plain)
	BytesIn         uint64 // application bytes received from wire legs
}

// Proxy joins redirected connections; see the package documentation. It
// is safe for concurrent use.
type Proxy struct {
	cfg  Config
	tc   tcpcrypt.Config
	scfg tcpcrypt.StreamConfig
	log  *slog.Logger

	mu      sync.Mutex
	pending map[Flow]*pendingLeg
	conns   map[*proxied]struct{}
	closed  bool

	preparing atomic.Int64 // Prepare calls dialling, plus legs in pending

	ctr struct {
		overloaded                                               atomic.Uint64
		prepared, refused, unreachable, pendingExpired, unpaired atomic.Uint64
		conns, encrypted, resumed, plain, hsFailed, undecided    atomic.Uint64
		integrity, truncated, resetWire, resetLocal, aborted     atomic.Uint64
		bytesOut, bytesIn                                        atomic.Uint64
	}
}

type pendingLeg struct {
	conn    net.Conn
	outcome Outcome
	timer   *time.Timer
}

// NewProxy returns a proxy.
func NewProxy(cfg Config) (*Proxy, error) {
	if cfg.Hook == nil {
		return nil, errors.New("redirect: Config.Hook is required")
	}
	if len(cfg.AEADs) == 0 {
		cfg.AEADs = tcpcrypt.DefaultAEADs
	}
	if cfg.MaxFrameData <= 0 {
		cfg.MaxFrameData = DefaultMaxFrameData
	}
	p := &Proxy{cfg: cfg, tc: tcpcrypt.Config{AEADs: cfg.AEADs}, scfg: tcpcrypt.StreamConfig{MaxFrameData: cfg.MaxFrameData}, log: cfg.Log,
		pending: make(map[Flow]*pendingLeg), conns: make(map[*proxied]struct{})}
	if err := p.tc.Validate(); err != nil {
		return nil, err
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&p.cfg.DialTimeout, 20*time.Second)
	def(&p.cfg.OutcomeTimeout, 3*time.Second)
	def(&p.cfg.HandshakeTimeout, 10*time.Second)
	def(&p.cfg.PendingTimeout, 30*time.Second)
	if p.cfg.Linger == 0 {
		p.cfg.Linger = DefaultLinger
	}
	if p.cfg.MaxPending <= 0 {
		p.cfg.MaxPending = 4096
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// SetAEADs changes the AEADs offered to new connections.
func (p *Proxy) SetAEADs(ids []tcpcrypt.AEADID) error {
	if len(ids) == 0 {
		ids = tcpcrypt.DefaultAEADs
	}
	tc := tcpcrypt.Config{AEADs: append([]tcpcrypt.AEADID(nil), ids...)}
	if err := tc.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	p.tc = tc
	p.mu.Unlock()
	return nil
}

// Counters returns a snapshot of the counters.
func (p *Proxy) Counters() Counters {
	c := &p.ctr
	return Counters{
		Prepared: c.prepared.Load(), Overloaded: c.overloaded.Load(), Refused: c.refused.Load(), Unreachable: c.unreachable.Load(),
		PendingExpired: c.pendingExpired.Load(), Unpaired: c.unpaired.Load(),
		Conns: c.conns.Load(), Encrypted: c.encrypted.Load(), Resumed: c.resumed.Load(), Plain: c.plain.Load(),
		HandshakeFailed: c.hsFailed.Load(), Undecided: c.undecided.Load(), Integrity: c.integrity.Load(),
		Truncated: c.truncated.Load(), ResetWire: c.resetWire.Load(), ResetLocal: c.resetLocal.Load(),
		Aborted: c.aborted.Load(), BytesOut: c.bytesOut.Load(), BytesIn: c.bytesIn.Load(),
	}
}

// ErrOverloaded is Prepare's error with Bypass.
var ErrOverloaded = errors.New("redirect: too many connections being prepared")

// classify turns a dial error into a Decision.
func classify(err error) Decision {
	if isRefused(err) {
		return Refused
	}
	return Unreachable
}

// Prepare dials the flow's destination while the backend holds the
// opener's SYN, and keeps the connected leg (and, on an outbound flow,
// the wire leg's ENO outcome) for Serve. The error says why the decision
// is Refused or Unreachable.
func (p *Proxy) Prepare(ctx context.Context, f Flow) (Decision, error) {
	p.ctr.prepared.Add(1)
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return Unreachable, net.ErrClosed
	}
	if p.preparing.Add(1) > int64(p.cfg.MaxPending) {
		p.preparing.Add(-1)
		p.ctr.overloaded.Add(1)
		if f.Dir == Inbound {
			p.cfg.Hook.Forget(f.Dst, f.Src)
		}
		if n := p.ctr.overloaded.Load(); n&(n-1) == 0 {
			p.log.Warn("redirect: too many connections being prepared; new ones pass unencrypted", "max", p.cfg.MaxPending, "times", n)
		}
		return Bypass, ErrOverloaded
	}
	leg, o, err := p.dial(ctx, f)
	if err != nil {
		p.preparing.Add(-1)
		if f.Dir == Inbound {
			// The peer's SYN will not reach the proxy: its hook entry
			// (it read the SYN's ENO) is of no use.
			p.cfg.Hook.Forget(f.Dst, f.Src)
		}
		d := classify(err)
		if d == Refused {
			p.ctr.refused.Add(1)
		} else {
			p.ctr.unreachable.Add(1)
		}
		p.log.Debug("redirect: destination not connected", "dir", f.Dir, "src", f.Src, "dst", f.Dst, "decision", d, "err", err)
		return d, err
	}
	pl := &pendingLeg{conn: leg, outcome: o}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.preparing.Add(-1)
		o.Zero()
		leg.Close()
		return Unreachable, net.ErrClosed
	}
	if old := p.pending[f]; old != nil {
		// A second SYN for the same flow (the application retried after
		// an earlier one was released): the older leg is orphaned.
		p.dropPendingLocked(f, old)
	}
	p.pending[f] = pl
	pl.timer = time.AfterFunc(p.cfg.PendingTimeout, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.pending[f] == pl {
			p.ctr.pendingExpired.Add(1)
			p.dropPendingLocked(f, pl)
			if f.Dir == Inbound {
				p.cfg.Hook.Forget(f.Dst, f.Src)
			}
		}
	})
	p.mu.Unlock()
	return Redirect, nil
}

func (p *Proxy) dropPendingLocked(f Flow, pl *pendingLeg) {
	delete(p.pending, f)
	p.preparing.Add(-1)
	pl.timer.Stop()
	pl.outcome.Zero()
	resetConn(pl.conn)
}

// dial connects the flow's destination. On outbound flows it also waits
// for the wire leg's outcome.
func (p *Proxy) dial(ctx context.Context, f Flow) (net.Conn, Outcome, error) {
	if p.cfg.Dialer == nil {
		return nil, Outcome{}, errors.New("redirect: no Dialer configured")
	}
	dctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	leg, err := p.cfg.Dialer.DialContext(dctx, f.Dst)
	cancel()
	if err != nil {
		return nil, Outcome{}, fmt.Errorf("dialing %v: %w", f.Dst, err)
	}
	if f.Dir != Outbound {
		return leg, Outcome{}, nil
	}
	local, remote := addrPort(leg.LocalAddr()), addrPort(leg.RemoteAddr())
	octx, cancel := context.WithTimeout(ctx, p.cfg.OutcomeTimeout)
	o, err := p.cfg.Hook.Wait(octx, local, remote)
	cancel()
	if err != nil {
		p.ctr.undecided.Add(1)
		resetConn(leg)
		return nil, Outcome{}, err
	}
	return leg, o, nil
}

// Serve joins c, a connection the platform redirected to the proxy, with
// its prepared leg (or dials one now, see the package documentation),
// and proxies it until both directions end. It closes c.
func (p *Proxy) Serve(ctx context.Context, c net.Conn, f Flow) error {
	p.mu.Lock()
	pl := p.pending[f]
	if pl != nil {
		delete(p.pending, f)
		p.preparing.Add(-1)
		pl.timer.Stop()
	}
	p.mu.Unlock()
	var leg net.Conn
	var o Outcome
	if pl != nil {
		leg, o = pl.conn, pl.outcome
	} else {
		p.ctr.unpaired.Add(1)
		p.log.Debug("redirect: no prepared leg; dialling now", "dir", f.Dir, "src", f.Src, "dst", f.Dst)
		var err error
		leg, o, err = p.dial(ctx, f)
		if err != nil {
			// Too late to refuse: the best left is a reset.
			resetConn(c)
			return err
		}
	}
	if f.Dir == Outbound {
		return p.Join(ctx, c, leg, o, f)
	}
	// The wire leg is c: its outcome is keyed by the original
	// destination (what the peer dialled) and the peer.
	octx, cancel := context.WithTimeout(ctx, p.cfg.OutcomeTimeout)
	o, err := p.cfg.Hook.Wait(octx, f.Dst, f.Src)
	cancel()
	if err != nil {
		p.ctr.undecided.Add(1)
		p.ctr.aborted.Add(1)
		resetConn(c)
		resetConn(leg)
		return err
	}
	return p.Join(ctx, leg, c, o, f)
}

// addrPort converts a net.Addr of a TCP socket.
func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// CloseAll resets every proxied connection and prepared leg, and makes
// Prepare fail from now on. Secrets are erased as the connections end.
func (p *Proxy) CloseAll() {
	p.mu.Lock()
	p.closed = true
	for f, pl := range p.pending {
		p.dropPendingLocked(f, pl)
	}
	conns := make([]*proxied, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.abort()
	}
}

// Conns describes every proxied connection.
func (p *Proxy) Conns() []core.ConnInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]core.ConnInfo, 0, len(p.conns))
	for c := range p.conns {
		out = append(out, c.snapshot())
	}
	return out
}

// Lookup describes the connection between local and remote as this host
// sees them: the logical flow, the wire leg, or the proxy's local leg.
func (p *Proxy) Lookup(local, remote netip.AddrPort) (core.ConnInfo, bool) {
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	p.mu.Lock()
	defer p.mu.Unlock()
	// A live connection wins over a lingering one on the same 4-tuple
	// (a port reused within the linger).
	var found *proxied
	for c := range p.conns {
		for _, t := range c.tuples {
			if t.local == local && t.remote == remote && (found == nil || found.ended.Load()) {
				found = c
			}
		}
	}
	if found == nil {
		return core.ConnInfo{}, false
	}
	return found.snapshot(), true
}

// errAborted wraps the error a direction sees after the other direction
// (or CloseAll, or the context) reset both legs.
var errAborted = errors.New("redirect: connection reset")

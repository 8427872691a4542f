package platform_windows

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/windows"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/packet"
	"tcpinc.dev/tcpinc/core/redirect"
)

// Redirect is the Windows redirect-mode backend: one WinDivert handle
// holds applications' outbound SYNs while the proxy (core/redirect) dials
// the destination, then reflects the connection to the proxy's listener
// (WinDivert's stream-reflection technique); the proxy's own wire legs
// get their ENO options from the SYN hook on the same handle.
//
// Connections peers open to this host are redirected too: their SYN is
// held while the proxy connects to the local server, then its destination
// port is rewritten to the proxy's inbound listener.
type Redirect struct {
	cfg    Config
	dll    *DLL
	hook   *redirect.Hook
	proxy  *redirect.Proxy
	own    *ownPorts
	lo, hi uint16 // the proxy's port range
	port   uint16 // the listener for reflected outbound connections, in the range
	portIn uint16 // the listener for peers' connections to this host, in the range

	// Test seams: the proxy's sockets (net by default).
	listen func(network string, port uint16) (net.Listener, error)
	dial   func(ctx context.Context, network string, localPort uint16, dst netip.AddrPort) (net.Conn, error)

	mu       sync.Mutex
	policy   core.Policy
	filtered core.Policy
	running  bool
	closed   bool
	stop     context.CancelFunc
	done     chan struct{}
	lns      []net.Listener // reflected outbound connections
	lnsIn    []net.Listener // peers' connections

	// The worker's state, shared with the accept and prepare goroutines
	// under fmu.
	fmu     sync.Mutex
	flows   map[flow]*rflow // applications' flows, by (L:lp, R:rp)
	back    map[flow]flow   // the proxy's accepted side (L:P, R:lp) → the application's flow
	inFlows map[flow]*rflow // peers' connections, by their wire flow (L:sp, R:rp)
	backIn  map[flow]flow   // the proxy's accepted side (L:Pin, R:rp) → the wire flow
	decided []decision      // Prepare results for the worker to apply

	runCtx context.Context // Run's: Prepare calls end with it
	prep   sync.WaitGroup  // Prepare goroutines

	h    *Handle
	rb   *RecvBuffer
	sb   *SendBuffer
	wake windows.Handle
	quit atomic.Bool

	// Worker goroutine only.
	bypass   plainTable         // flows released unredirected (and excluded ones)
	hookDone map[flow]time.Time // wire legs the hook is finished with
	slot     []byte

	st redirectStats
}

type rflow struct {
	held     []byte  // the application's SYN while Prepare runs
	heldAddr Address // its address
	ifIdx    [2]uint32
	back     flow // the reflected flow, once redirected
	closing  time.Time
}

type decision struct {
	f       flow
	d       redirect.Decision
	inbound bool
}

type redirectStats struct {
	Received       atomic.Uint64
	Held           atomic.Uint64 // applications' SYNs held for Prepare
	HeldDuplicates atomic.Uint64 // retransmitted SYNs dropped while held
	Redirected     atomic.Uint64
	Released       atomic.Uint64 // SYNs released unredirected (refused, unreachable, policy)
	Reflected      [2]atomic.Uint64
	Unknown        atomic.Uint64 // packets from the proxy port of no reflected flow (dropped)
	Foreign        atomic.Uint64 // inbound packets to the proxy port from the network (dropped)
	HookPackets    atomic.Uint64
	HookDropped    atomic.Uint64
	FastPath       atomic.Uint64
	Passed         atomic.Uint64
	SendErrors     atomic.Uint64
	NoOrigDst      atomic.Uint64 // accepted connections without a reflected flow (closed)
}

// NewRedirect loads WinDivert.dll, checks the driver like NewDivert, and
// prepares the SYN hook and the proxy. Nothing is captured until Run.
func NewRedirect(cfg Config) (*Redirect, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	dll, err := loadConfigured(&c)
	if err != nil {
		return nil, err
	}
	if err := probeDriver(dll, &c); err != nil {
		return nil, err
	}
	return newRedirect(c, dll)
}

func newRedirect(c Config, dll *DLL) (*Redirect, error) {
	r := &Redirect{cfg: c, dll: dll, policy: c.Policy, lo: DefaultProxyPortLo, hi: DefaultProxyPortHi,
		flows: make(map[flow]*rflow), back: make(map[flow]flow),
		inFlows: make(map[flow]*rflow), backIn: make(map[flow]flow),
		bypass: newPlainTable(plainMax), hookDone: make(map[flow]time.Time)}
	r.own = newOwnPorts(r.lo, r.hi)
	r.listen = func(network string, port uint16) (net.Listener, error) {
		addr := "0.0.0.0"
		if network == "tcp6" {
			addr = "[::]"
		}
		return net.Listen(network, fmt.Sprintf("%s:%d", addr, port))
	}
	r.dial = func(ctx context.Context, network string, localPort uint16, dst netip.AddrPort) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{Port: int(localPort)}}
		return d.DialContext(ctx, network, dst.String())
	}
	var err error
	if r.hook, err = redirect.NewHook(redirect.HookConfig{Policy: c.Policy, Cache: c.Engine.Cache, Log: c.Log}); err != nil {
		return nil, fmt.Errorf("tcpinc: policy: %w", err)
	}
	if r.proxy, err = redirect.NewProxy(redirect.Config{Hook: r.hook, Dialer: ownDialer{r},
		AEADs: c.Policy.AEADs, Cache: c.Engine.Cache, Log: c.Log}); err != nil {
		r.hook.Close()
		return nil, fmt.Errorf("tcpinc: policy: %w", err)
	}
	return r, nil
}

// ownDialer opens the proxy's wire legs from ports of the proxy's range,
// registered before the SYN leaves so the handle knows them as wire legs.
type ownDialer struct{ r *Redirect }

func (d ownDialer) DialContext(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	network := "tcp4"
	if dst.Addr().Is6() {
		network = "tcp6"
	}
	var lastErr error
	for range 16 {
		port, ok := d.r.own.take(d.r.port) // (portIn is taken already)
		if !ok {
			return nil, errors.New("tcpinc: every port of the proxy's range is in use")
		}
		c, err := d.r.dial(ctx, network, port, dst)
		if err == nil {
			return &ownConn{Conn: c, own: d.r.own, port: port}, nil
		}
		d.r.own.release(port)
		if !isAddrInUse(err) {
			return nil, err
		}
		lastErr = err
	}
	return nil, fmt.Errorf("tcpinc: no free port in the proxy's range: %w", lastErr)
}

func isAddrInUse(err error) bool {
	// A port in one of Windows' excluded (reserved) ranges fails with
	// WSAEACCES: another port of the range will do as well.
	return errors.Is(err, windows.WSAEADDRINUSE) || errors.Is(err, windows.WSAEACCES) || strings.Contains(err.Error(), "address already in use") ||
		strings.Contains(err.Error(), "port is in use")
}

// ownConn gives its port back a while after it is closed (its packets,
// a FIN or TIME-WAIT retransmission, may still pass).
type ownConn struct {
	net.Conn
	own  *ownPorts
	port uint16
	once sync.Once
}

// CloseWrite and SetLinger reach the socket: the proxy half-closes legs
// and resets them with SO_LINGER 0, which a wrapper must not turn into a
// full close or a FIN.
func (c *ownConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

func (c *ownConn) SetLinger(sec int) error {
	if l, ok := c.Conn.(interface{ SetLinger(int) error }); ok {
		return l.SetLinger(sec)
	}
	return errors.New("tcpinc: the proxy's socket cannot set SO_LINGER")
}

func (c *ownConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { time.AfterFunc(plainClosed, func() { c.own.release(c.port) }) })
	return err
}

// Mode is core.ModeRedirect.
func (r *Redirect) Mode() core.Mode { return core.ModeRedirect }

// Run opens the proxy's listeners and the WinDivert handle, and proxies
// new connections, outbound and inbound, until ctx ends or a part fails.
// On the way out the proxied connections are reset at both ends while
// the handle still carries their packets.
func (r *Redirect) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.closed || r.running {
		r.mu.Unlock()
		return errors.New("tcpinc: Redirect.Run called twice or after Close")
	}
	r.running = true
	ctx, cancel := context.WithCancelCause(ctx)
	r.stop = func() { cancel(nil) }
	r.done = make(chan struct{})
	r.runCtx = ctx
	pol := r.policy
	r.filtered = pol
	r.mu.Unlock()
	defer close(r.done)

	if err := r.openListeners(); err != nil {
		cancel(err)
		return err
	}
	filter, err := RedirectFilter(&pol)
	if err != nil {
		r.closeListeners()
		return err
	}
	if r.rb, err = NewRecvBuffer(r.cfg.BatchBytes); err != nil {
		r.closeListeners()
		return err
	}
	if r.sb, err = NewSendBuffer(r.cfg.BatchBytes); err != nil {
		r.rb.Close()
		r.closeListeners()
		return err
	}
	if r.wake, err = windows.CreateEvent(nil, 0, 0, nil); err != nil {
		r.rb.Close()
		r.sb.Close()
		r.closeListeners()
		return fmt.Errorf("windivert: creating an event: %w", err)
	}
	if r.h, err = r.dll.Open(filter, LayerNetwork, r.cfg.Priority, 0); err != nil {
		r.rb.Close()
		r.sb.Close()
		windows.CloseHandle(r.wake)
		r.closeListeners()
		return fmt.Errorf("opening the capture: %w", err)
	}
	for _, p := range r.cfg.queueParams() {
		if err := r.h.SetParam(p.p, p.v); err != nil {
			r.cfg.Log.Warn("tcpinc: setting a WinDivert queue limit", "param", p.p, "value", p.v, "err", err)
		}
	}
	var wg sync.WaitGroup
	for _, ln := range r.lns {
		wg.Go(func() { r.accept(ctx, ln, redirect.Outbound) })
	}
	for _, ln := range r.lnsIn {
		wg.Go(func() { r.accept(ctx, ln, redirect.Inbound) })
	}
	workerDone := make(chan error, 1)
	go func() { workerDone <- r.work() }()
	r.cfg.Log.Info("tcpinc: redirecting TCP with WinDivert", "proxy_port", r.port, "proxy_port_inbound", r.portIn, "port_range", fmt.Sprintf("%d-%d", r.lo, r.hi), "filter", filter)

	var werr error
	select {
	case <-ctx.Done():
	case werr = <-workerDone:
		cancel(werr)
	}
	// Reset every proxied connection while the handle still reflects
	// their packets (the resets to applications are reflected too), then
	// stop the worker.
	r.proxy.CloseAll()
	r.closeListeners()
	wg.Wait()
	r.prep.Wait() // ctx is done: their dials end now
	if werr == nil {
		time.Sleep(50 * time.Millisecond)
		r.quit.Store(true)
		windows.SetEvent(r.wake)
		werr = <-workerDone
	}
	r.h.Close()
	r.rb.Close()
	r.sb.Close()
	windows.CloseHandle(r.wake)
	if werr != nil {
		return werr
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

// openListeners binds the proxy's listeners, IPv4 and IPv6, for
// reflected outbound connections and for peers' connections, each on the
// first port of the range that is free.
func (r *Redirect) openListeners() error {
	var err error
	var lns []net.Listener
	if r.port, lns, err = r.listenPair(0); err != nil {
		return err
	}
	r.mu.Lock()
	r.lns = lns
	r.mu.Unlock()
	if r.portIn, lns, err = r.listenPair(r.port); err != nil {
		r.closeListeners()
		return err
	}
	r.mu.Lock()
	r.lnsIn = lns
	r.mu.Unlock()
	return nil
}

func (r *Redirect) listenPair(except uint16) (uint16, []net.Listener, error) {
	var lastErr error
	for p := r.lo; p <= r.hi && p != 0; p++ {
		if p == except {
			continue
		}
		ln4, err := r.listen("tcp4", p)
		if err != nil {
			lastErr = err
			continue
		}
		lns := []net.Listener{ln4}
		if ln6, err := r.listen("tcp6", p); err == nil {
			lns = append(lns, ln6)
		} else {
			r.cfg.Log.Debug("tcpinc: no IPv6 proxy listener on this port", "port", p, "err", err)
		}
		r.own.add(p)
		return p, lns, nil
	}
	return 0, nil, fmt.Errorf("tcpinc: no port of %d–%d free for the proxy's listeners: %w", r.lo, r.hi, lastErr)
}

func (r *Redirect) closeListeners() {
	r.mu.Lock()
	lns := append(slices.Clone(r.lns), r.lnsIn...)
	r.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
}

// accept serves one listener: each connection is a reflected or
// redirected one, whose flow the tables name.
func (r *Redirect) accept(ctx context.Context, ln net.Listener, dir redirect.Direction) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				r.cfg.Log.Error("tcpinc: proxy listener failed", "err", err)
			}
			return
		}
		local, lerr := netip.ParseAddrPort(c.LocalAddr().String())
		remote, rerr := netip.ParseAddrPort(c.RemoteAddr().String())
		var f redirect.Flow
		ok := false
		if lerr == nil && rerr == nil {
			key := flow{local: unmapAP(local), remote: unmapAP(remote)}
			r.fmu.Lock()
			if dir == redirect.Outbound {
				var app flow
				if app, ok = r.back[key]; ok {
					f = redirect.Flow{Dir: redirect.Outbound, Src: app.local, Dst: app.remote}
				}
			} else {
				var wire flow
				if wire, ok = r.backIn[key]; ok {
					f = redirect.Flow{Dir: redirect.Inbound, Src: wire.remote, Dst: wire.local}
				}
			}
			r.fmu.Unlock()
		}
		if !ok {
			r.st.NoOrigDst.Add(1)
			r.cfg.Log.Info("tcpinc: proxy connection that was not redirected; closed", "remote", c.RemoteAddr())
			c.Close()
			continue
		}
		go func() {
			if err := r.proxy.Serve(ctx, c, f); err != nil {
				r.cfg.Log.Debug("tcpinc: proxied connection ended with an error", "dir", f.Dir, "src", f.Src, "dst", f.Dst, "err", err)
			}
		}()
	}
}

func unmapAP(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// work is the handle's worker goroutine.
func (r *Redirect) work() error {
	waitSet := []windows.Handle{r.rb.Event(), r.wake}
	nextSweep := time.Now().Add(sweepInterval)
	for {
		if !r.rb.pending {
			done, err := r.h.StartRecv(r.rb)
			if err != nil {
				if errors.Is(err, ErrShutdown) && r.quit.Load() {
					return nil
				}
				return fmt.Errorf("windivert: redirect: receiving: %w", err)
			}
			if done {
				r.batch()
				continue
			}
		}
		ms := uint32(max(time.Until(nextSweep), 0)/time.Millisecond) + 1
		ev, err := windows.WaitForMultipleObjects(waitSet, false, ms)
		if err != nil {
			return fmt.Errorf("windivert: redirect: waiting: %w", err)
		}
		switch ev {
		case windows.WAIT_OBJECT_0:
			if err := r.h.FinishRecv(r.rb, false); err != nil {
				if errors.Is(err, windows.ERROR_IO_INCOMPLETE) {
					continue
				}
				if errors.Is(err, ErrShutdown) && r.quit.Load() {
					return nil
				}
				return fmt.Errorf("windivert: redirect: receiving: %w", err)
			}
			r.batch()
		case windows.WAIT_OBJECT_0 + 1:
			r.applyDecisions()
			if r.quit.Load() {
				r.h.Shutdown(ShutdownRecv)
				r.h.CancelRecv(r.rb, drainTimeout)
				return nil
			}
		case uint32(windows.WAIT_TIMEOUT):
			if time.Now().After(nextSweep) {
				r.sweep()
				nextSweep = time.Now().Add(sweepInterval)
			}
		}
	}
}

// batch handles one received batch.
func (r *Redirect) batch() {
	now := time.Now()
	n := r.rb.Len()
	r.st.Received.Add(uint64(n))
	for i := range n {
		raw, addr := r.rb.Packet(i)
		r.packet(raw, addr, now)
	}
	r.flush()
}

func (r *Redirect) packet(raw []byte, addr *Address, now time.Time) {
	pk, err := packet.Parse(raw)
	if err != nil || !pk.HasTCP() {
		r.pass(raw, addr)
		return
	}
	flags := pk.TCP().Flags()
	if !addr.Outbound() {
		dst := pk.Dst()
		switch {
		case dst.Port() == r.port || dst.Port() == r.portIn:
			// Nobody on the network may reach the proxy directly:
			// its connections come only by reflection or redirection.
			if n := r.st.Foreign.Add(1); n&(n-1) == 0 {
				r.cfg.Log.Info("tcpinc: dropped packets from the network to the proxy's port", "from", pk.Src(), "times", n)
			}
		case r.own.has(dst.Port()):
			r.hookPacket(raw, addr, flowOf(&pk, false), redirect.Inbound, now)
		default:
			r.inbound(raw, addr, flowOf(&pk, false), flags, now)
		}
		return
	}
	f := flowOf(&pk, true)
	switch f.local.Port() {
	case r.port:
		r.fromProxy(raw, addr, f, flags)
		return
	case r.portIn:
		r.fromProxyIn(raw, addr, f, flags, now)
		return
	}
	if r.own.has(f.local.Port()) {
		r.hookPacket(raw, addr, f, redirect.Outbound, now)
		return
	}
	r.fmu.Lock()
	st, ok := r.flows[f]
	var back flow
	held := false
	if ok {
		held = st.held != nil
		back = st.back
		if flags&(packet.FIN|packet.RST) != 0 && st.closing.IsZero() {
			st.closing = now
		}
	}
	r.fmu.Unlock()
	switch {
	case ok && held:
		r.st.HeldDuplicates.Add(1) // a retransmitted SYN: the held one will do
	case ok:
		r.reflect(raw, addr, back.remote, back.local, &r.st.Reflected[0])
	case r.bypass.pass(f, flags, now.Unix()):
		r.st.FastPath.Add(1)
		r.send(raw, addr)
	case flags&(packet.SYN|packet.ACK) == packet.SYN:
		r.holdSYN(raw, addr, f, now)
	default:
		// A connection older than this capture: not ours.
		r.pass(raw, addr)
	}
}

// inbound handles a peer's packet to this host (wire flow f = L:sp,
// R:rp): a new connection's SYN is held while the proxy connects to the
// local server, then redirected to the proxy's inbound listener (the
// destination port rewritten to portIn); the rest of a redirected
// connection follows it there.
func (r *Redirect) inbound(raw []byte, addr *Address, f flow, flags packet.Flags, now time.Time) {
	r.fmu.Lock()
	st, ok := r.inFlows[f]
	held := ok && st.held != nil
	if ok && flags&(packet.FIN|packet.RST) != 0 && st.closing.IsZero() {
		st.closing = now
	}
	r.fmu.Unlock()
	switch {
	case held:
		r.st.HeldDuplicates.Add(1)
	case ok:
		r.toProxyIn(raw, addr, f, now)
	case r.bypass.pass(f, flags, now.Unix()):
		r.st.FastPath.Add(1)
		r.send(raw, addr)
	case flags&(packet.SYN|packet.ACK) == packet.SYN:
		r.holdInboundSYN(raw, addr, f, now)
	default:
		r.pass(raw, addr)
	}
}

// holdInboundSYN: the hook reads the peer's ENO option first; without
// one (or when the policy says so) the connection goes to the server
// untouched. Otherwise the proxy connects to the server while the SYN
// waits, so a closed port still answers with its own reset.
func (r *Redirect) holdInboundSYN(raw []byte, addr *Address, f flow, now time.Time) {
	r.mu.Lock()
	pol := r.policy
	r.mu.Unlock()
	if !pol.Enabled || pol.Excluded(f.local, f.remote) {
		r.bypass.add(f, now.Unix())
		r.st.Released.Add(1)
		r.send(raw, addr)
		return
	}
	buf := r.scratch(len(raw))
	copy(buf, raw)
	a := *addr
	fixChecksums(buf, &a)
	r.st.HookPackets.Add(1)
	out, v := r.hook.Process(buf, redirect.Inbound, now)
	switch {
	case v.Action == redirect.Drop:
		r.st.HookDropped.Add(1)
		return
	case v.Done:
		// No ENO to answer: straight to the server, plain.
		r.bypass.add(f, now.Unix())
		r.st.Released.Add(1)
		r.send(out, &a)
		return
	}
	r.st.Held.Add(1)
	st := &rflow{held: slices.Clone(out), heldAddr: a}
	r.fmu.Lock()
	r.inFlows[f] = st
	r.fmu.Unlock()
	r.prepare(redirect.Flow{Dir: redirect.Inbound, Src: f.remote, Dst: f.local}, f, true)
}

// toProxyIn sends a redirected connection's packet on to the proxy's
// inbound listener, after the hook has read it (the peer's first ACK
// carries ENO's 45 02).
func (r *Redirect) toProxyIn(raw []byte, addr *Address, f flow, now time.Time) {
	buf := r.scratch(len(raw))
	copy(buf, raw)
	a := *addr
	fixChecksums(buf, &a)
	if _, done := r.hookDone[f]; !done {
		r.st.HookPackets.Add(1)
		out, v := r.hook.Process(buf, redirect.Inbound, now)
		if v.Done {
			r.hookDone[f] = now
		}
		if v.Action == redirect.Drop {
			r.st.HookDropped.Add(1)
			return
		}
		buf = out
	}
	if err := rewriteFlow(buf, f.remote, netip.AddrPortFrom(f.local.Addr(), r.portIn)); err != nil {
		r.st.SendErrors.Add(1)
		return
	}
	a.SetIPChecksum(true)
	a.SetTCPChecksum(true)
	r.st.Reflected[0].Add(1)
	r.send(buf, &a)
}

// fromProxyIn sends the proxy's side of a redirected inbound connection
// to the peer as the server's port, through the hook (ENO in its SYN-ACK).
func (r *Redirect) fromProxyIn(raw []byte, addr *Address, f flow, flags packet.Flags, now time.Time) {
	r.fmu.Lock()
	wire, ok := r.backIn[f]
	if ok && flags&(packet.FIN|packet.RST) != 0 {
		if st := r.inFlows[wire]; st != nil && st.closing.IsZero() {
			st.closing = now
		}
	}
	r.fmu.Unlock()
	if !ok {
		r.unknown(f)
		return
	}
	buf := r.scratch(len(raw))
	copy(buf, raw)
	a := *addr
	if err := rewriteFlow(buf, wire.local, wire.remote); err != nil {
		r.st.SendErrors.Add(1)
		return
	}
	a.SetIPChecksum(true)
	a.SetTCPChecksum(true)
	if _, done := r.hookDone[wire]; !done {
		r.st.HookPackets.Add(1)
		out, v := r.hook.Process(buf, redirect.Outbound, now)
		if v.Done {
			r.hookDone[wire] = now
		}
		if v.Action == redirect.Drop {
			r.st.HookDropped.Add(1)
			return
		}
		buf = out
	}
	r.st.Reflected[1].Add(1)
	r.send(buf, &a)
}

// holdSYN keeps an application's SYN while the proxy dials its
// destination, unless the policy leaves the connection alone.
func (r *Redirect) holdSYN(raw []byte, addr *Address, f flow, now time.Time) {
	r.mu.Lock()
	pol := r.policy
	r.mu.Unlock()
	if !pol.Enabled || pol.Excluded(f.local, f.remote) {
		r.bypass.add(f, now.Unix())
		r.st.Released.Add(1)
		r.send(raw, addr)
		return
	}
	r.st.Held.Add(1)
	st := &rflow{held: slices.Clone(raw), heldAddr: *addr}
	st.ifIdx[0], st.ifIdx[1] = addr.Interface()
	r.fmu.Lock()
	r.flows[f] = st
	r.fmu.Unlock()
	r.prepare(redirect.Flow{Dir: redirect.Outbound, Src: f.local, Dst: f.remote}, f, false)
}

// prepare runs Prepare for a held SYN and hands the decision to the
// worker.
func (r *Redirect) prepare(rf redirect.Flow, f flow, inbound bool) {
	ctx := r.runCtx
	r.prep.Add(1)
	go func() {
		defer r.prep.Done()
		d, err := r.proxy.Prepare(ctx, rf)
		if d != redirect.Redirect {
			r.cfg.Log.Debug("tcpinc: destination not connected; SYN released unredirected", "dir", rf.Dir, "src", rf.Src, "dst", rf.Dst, "decision", d, "err", err)
		}
		r.fmu.Lock()
		r.decided = append(r.decided, decision{f: f, d: d, inbound: inbound})
		r.fmu.Unlock()
		windows.SetEvent(r.wake)
	}()
}

// applyDecisions releases the held SYNs whose Prepare returned:
// reflected or redirected to the proxy, or sent on unchanged so the
// application meets the real refusal or silence.
func (r *Redirect) applyDecisions() {
	now := time.Now()
	r.fmu.Lock()
	ds := r.decided
	r.decided = nil
	type release struct {
		st *rflow
		d  decision
	}
	var rel []release
	for _, d := range ds {
		table := r.flows
		if d.inbound {
			table = r.inFlows
		}
		st, ok := table[d.f]
		if !ok || st.held == nil {
			continue
		}
		switch {
		case d.d != redirect.Redirect:
			delete(table, d.f)
		case d.inbound:
			r.backIn[flow{local: netip.AddrPortFrom(d.f.local.Addr(), r.portIn), remote: d.f.remote}] = d.f
		default:
			st.back = flow{local: netip.AddrPortFrom(d.f.local.Addr(), r.port), remote: netip.AddrPortFrom(d.f.remote.Addr(), d.f.local.Port())}
			r.back[st.back] = d.f
		}
		rel = append(rel, release{st, d})
	}
	r.fmu.Unlock()
	for _, x := range rel {
		held, addr := x.st.held, x.st.heldAddr
		x.st.held = nil
		switch {
		case x.d.d != redirect.Redirect:
			r.st.Released.Add(1)
			r.bypass.add(x.d.f, now.Unix())
			r.send(held, &addr)
		case x.d.inbound:
			r.st.Redirected.Add(1)
			if err := rewriteFlow(held, x.d.f.remote, netip.AddrPortFrom(x.d.f.local.Addr(), r.portIn)); err != nil {
				r.st.SendErrors.Add(1)
				continue
			}
			addr.SetIPChecksum(true)
			addr.SetTCPChecksum(true)
			r.st.Reflected[0].Add(1)
			r.send(held, &addr)
		default:
			r.st.Redirected.Add(1)
			r.reflect(held, &addr, x.st.back.remote, x.st.back.local, &r.st.Reflected[0])
		}
	}
	r.flush()
}

// fromProxy reflects a packet of the proxy's accepted socket back to the
// application it stands in for.
func (r *Redirect) fromProxy(raw []byte, addr *Address, f flow, flags packet.Flags) {
	r.fmu.Lock()
	app, ok := r.back[f]
	if ok && flags&(packet.FIN|packet.RST) != 0 {
		if st := r.flows[app]; st != nil && st.closing.IsZero() {
			st.closing = time.Now()
		}
	}
	r.fmu.Unlock()
	if !ok {
		r.unknown(f)
		return
	}
	r.reflect(raw, addr, app.remote, app.local, &r.st.Reflected[1])
}

// unknown drops a packet of the proxy's listeners that belongs to no
// proxied connection (one forgotten after it closed): sent on, it would
// reach the peer from the proxy's port.
func (r *Redirect) unknown(f flow) {
	if n := r.st.Unknown.Add(1); n&(n-1) == 0 {
		r.cfg.Log.Debug("tcpinc: dropped a proxy packet of no proxied connection", "local", f.local, "remote", f.remote, "times", n)
	}
}

// reflect rewrites a captured outbound packet to src → dst and injects it
// inbound on the interface it was leaving by.
func (r *Redirect) reflect(raw []byte, addr *Address, src, dst netip.AddrPort, ctr *atomic.Uint64) {
	buf := r.scratch(len(raw))
	copy(buf, raw)
	if err := rewriteFlow(buf, src, dst); err != nil {
		r.st.SendErrors.Add(1)
		return
	}
	a := *addr
	a.SetOutbound(false)
	a.SetIPChecksum(true)
	a.SetTCPChecksum(true)
	ctr.Add(1)
	r.send(buf, &a)
}

// hookPacket gives a wire leg's handshake segment to the SYN hook.
func (r *Redirect) hookPacket(raw []byte, addr *Address, f flow, dir redirect.Direction, now time.Time) {
	if _, done := r.hookDone[f]; done {
		r.send(raw, addr)
		return
	}
	r.st.HookPackets.Add(1)
	buf := r.scratch(len(raw))
	copy(buf, raw)
	a := *addr
	fixChecksums(buf, &a)
	out, v := r.hook.Process(buf, dir, now)
	if v.Done {
		r.hookDone[f] = now
	}
	switch v.Action {
	case redirect.Drop:
		r.st.HookDropped.Add(1)
	case redirect.Modified:
		a.SetIPChecksum(true)
		a.SetTCPChecksum(true)
		r.send(out, &a)
	default:
		r.send(buf, &a)
	}
}

// scratch returns a buffer of n bytes with room for the hook's options.
// It is valid until the next call: send copies what it is given.
func (r *Redirect) scratch(n int) []byte {
	if cap(r.slot) < n+headroom {
		r.slot = make([]byte, 0, max(slotSize, n+headroom))
	}
	return r.slot[:n]
}

func (r *Redirect) pass(raw []byte, addr *Address) {
	r.st.Passed.Add(1)
	r.send(raw, addr)
}

func (r *Redirect) send(pkt []byte, a *Address) {
	if !r.sb.Fits(len(pkt)) {
		r.flush()
	}
	if !r.sb.Add(pkt, a) {
		r.st.SendErrors.Add(1)
	}
}

func (r *Redirect) flush() {
	if failed, err := r.h.Send(r.sb); failed > 0 {
		if n := r.st.SendErrors.Add(uint64(failed)); n&(n-1) == 0 || n == uint64(failed) {
			r.cfg.Log.Warn("tcpinc: WinDivert did not inject packets", "err", err, "times", n)
		}
	}
}

// sweep forgets closed reflected flows and finished wire legs.
func (r *Redirect) sweep() {
	now := time.Now()
	r.bypass.expire(now.Unix())
	r.hook.Sweep(now)
	for f, t := range r.hookDone {
		if _, in := r.inFlows[f]; in {
			continue // a peer's connection: goes with its entry
		}
		if now.Sub(t) > plainIdle || !r.own.has(f.local.Port()) {
			delete(r.hookDone, f)
		}
	}
	r.fmu.Lock()
	for f, st := range r.flows {
		if !st.closing.IsZero() && now.Sub(st.closing) > plainClosed {
			delete(r.back, st.back)
			delete(r.flows, f)
		}
	}
	for f, st := range r.inFlows {
		if !st.closing.IsZero() && now.Sub(st.closing) > plainClosed {
			delete(r.backIn, flow{local: netip.AddrPortFrom(f.local.Addr(), r.portIn), remote: f.remote})
			delete(r.inFlows, f)
			delete(r.hookDone, f)
		}
	}
	r.fmu.Unlock()
}

// Close stops Run (proxied connections are reset), and erases secrets.
func (r *Redirect) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	stop, done := r.stop, r.done
	r.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	r.proxy.CloseAll()
	r.hook.Close()
	return nil
}

// Apply changes the policy for new connections (the hook's TEPs,
// resumption, on/off; exclusions for new SYNs). As in divert mode, the
// open handle's filter keeps the exclusions it was opened with.
func (r *Redirect) Apply(p core.Policy) error {
	if err := checkPolicy(&p); err != nil {
		return err
	}
	p.ExcludePorts = slices.Clone(p.ExcludePorts)
	p.ExcludeAddrs = slices.Clone(p.ExcludeAddrs)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("tcpinc: Apply after Close")
	}
	if err := r.hook.SetPolicy(p); err != nil {
		return fmt.Errorf("tcpinc: applying the policy: %w", err)
	}
	if err := r.proxy.SetAEADs(p.AEADs); err != nil {
		_ = r.hook.SetPolicy(r.policy)
		return fmt.Errorf("tcpinc: applying the policy: %w", err)
	}
	r.policy = p
	if r.running && widens(&r.filtered, &p) {
		r.cfg.Log.Warn("tcpinc: the new policy captures traffic the running WinDivert filter excludes; it is captured from the next start of the service")
	}
	return nil
}

// Policy returns the policy in force.
func (r *Redirect) Policy() core.Policy {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.policy
}

// Conns describes the proxied connections.
func (r *Redirect) Conns() []core.ConnInfo { return r.proxy.Conns() }

// Lookup describes a proxied connection by its logical 4-tuple or either
// leg's.
func (r *Redirect) Lookup(local, remote netip.AddrPort) (core.ConnInfo, bool) {
	return r.proxy.Lookup(local, remote)
}

// RedirectCounters are the redirect backend's counters.
type RedirectCounters struct {
	Proxy          redirect.Counters
	Hook           redirect.HookCounters
	Received       uint64
	Held           uint64
	HeldDuplicates uint64
	Redirected     uint64
	Released       uint64
	Reflected      [2]uint64 // to the proxy, back to the application
	Unknown        uint64
	Foreign        uint64
	HookPackets    uint64
	HookDropped    uint64
	FastPath       uint64
	Passed         uint64
	SendErrors     uint64
	NoOrigDst      uint64
}

// Snapshot returns the counters.
func (r *Redirect) Snapshot() RedirectCounters {
	s := &r.st
	return RedirectCounters{
		Proxy: r.proxy.Counters(), Hook: r.hook.Counters(),
		Received: s.Received.Load(), Held: s.Held.Load(), HeldDuplicates: s.HeldDuplicates.Load(),
		Redirected: s.Redirected.Load(), Released: s.Released.Load(),
		Reflected: [2]uint64{s.Reflected[0].Load(), s.Reflected[1].Load()},
		Unknown:   s.Unknown.Load(), Foreign: s.Foreign.Load(), HookPackets: s.HookPackets.Load(),
		HookDropped: s.HookDropped.Load(), FastPath: s.FastPath.Load(), Passed: s.Passed.Load(),
		SendErrors: s.SendErrors.Load(), NoOrigDst: s.NoOrigDst.Load(),
	}
}

// Counters are Snapshot's counters flattened for the control API.
func (r *Redirect) Counters() map[string]uint64 {
	return core.Flatten(r.Snapshot(), func(path string, i int) string {
		if path == "reflected" {
			return [2]string{"to_proxy", "to_application"}[i&1]
		}
		if path == "hook_plain_reasons" {
			return CounterIndexName("engine_plain_reasons", i)
		}
		return ""
	})
}

var _ core.Backend = (*Redirect)(nil)

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
// Only outbound connections are proxied. Connections peers open to this
// host are not captured in redirect mode and stay plain (use divert mode
// to encrypt those).
type Redirect struct {
	cfg    Config
	dll    *DLL
	hook   *redirect.Hook
	proxy  *redirect.Proxy
	own    *ownPorts
	lo, hi uint16 // the proxy's port range
	port   uint16 // the proxy listener's port, in the range

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
	lns      []net.Listener

	// The worker's state, shared with the accept and prepare goroutines
	// under fmu.
	fmu     sync.Mutex
	flows   map[flow]*rflow // applications' flows, by (L:lp, R:rp)
	back    map[flow]flow   // the proxy's accepted side (L:P, R:lp) → the application's flow
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
	f flow
	d redirect.Decision
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
		port, ok := d.r.own.take(d.r.port)
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

func (c *ownConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { time.AfterFunc(plainClosed, func() { c.own.release(c.port) }) })
	return err
}

// Mode is core.ModeRedirect.
func (r *Redirect) Mode() core.Mode { return core.ModeRedirect }

// Run opens the proxy's listeners and the WinDivert handle, and proxies
// applications' outbound connections until ctx ends or a part fails.
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
	filter, err := RedirectFilter(&pol, r.lo, r.hi)
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
		wg.Go(func() { r.accept(ctx, ln) })
	}
	workerDone := make(chan error, 1)
	go func() { workerDone <- r.work() }()
	r.cfg.Log.Info("tcpinc: redirecting outbound TCP with WinDivert", "proxy_port", r.port, "port_range", fmt.Sprintf("%d-%d", r.lo, r.hi), "filter", filter)

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

// openListeners binds the proxy's listeners (IPv4 and IPv6) to the first
// port of the range both families have free.
func (r *Redirect) openListeners() error {
	var lastErr error
	for p := r.lo; p <= r.hi && p != 0; p++ {
		ln4, err := r.listen("tcp4", p)
		if err != nil {
			lastErr = err
			continue
		}
		ln6, err := r.listen("tcp6", p)
		if err != nil {
			r.cfg.Log.Debug("tcpinc: no IPv6 proxy listener on this port", "port", p, "err", err)
		}
		r.mu.Lock()
		r.lns = []net.Listener{ln4}
		if ln6 != nil {
			r.lns = append(r.lns, ln6)
		}
		r.mu.Unlock()
		r.port = p
		r.own.add(p)
		return nil
	}
	return fmt.Errorf("tcpinc: no port of %d–%d free for the proxy's listener: %w", r.lo, r.hi, lastErr)
}

func (r *Redirect) closeListeners() {
	r.mu.Lock()
	lns := r.lns
	r.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
}

// accept serves one listener: each connection is a reflected one, whose
// application flow the reflection table names.
func (r *Redirect) accept(ctx context.Context, ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				r.cfg.Log.Error("tcpinc: proxy listener failed", "err", err)
			}
			return
		}
		local, lok := netip.ParseAddrPort(c.LocalAddr().String())
		remote, rok := netip.ParseAddrPort(c.RemoteAddr().String())
		var app flow
		var ok bool
		if lok == nil && rok == nil {
			r.fmu.Lock()
			app, ok = r.back[flow{local: unmapAP(local), remote: unmapAP(remote)}]
			r.fmu.Unlock()
		}
		if !ok {
			r.st.NoOrigDst.Add(1)
			r.cfg.Log.Info("tcpinc: proxy connection that was not reflected; closed", "remote", c.RemoteAddr())
			c.Close()
			continue
		}
		f := redirect.Flow{Dir: redirect.Outbound, Src: app.local, Dst: app.remote}
		go func() {
			if err := r.proxy.Serve(ctx, c, f); err != nil {
				r.cfg.Log.Debug("tcpinc: proxied connection ended with an error", "src", f.Src, "dst", f.Dst, "err", err)
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
		case r.own.has(dst.Port()) && dst.Port() != r.port:
			r.hookPacket(raw, addr, flowOf(&pk, false), redirect.Inbound, now)
		case dst.Port() == r.port:
			// Nobody on the network may reach the proxy directly:
			// its connections come only by reflection.
			r.st.Foreign.Add(1)
		default:
			r.pass(raw, addr)
		}
		return
	}
	f := flowOf(&pk, true)
	if f.local.Port() == r.port {
		r.fromProxy(raw, addr, f, flags)
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
	ctx := r.runCtx
	r.prep.Add(1)
	go func() {
		defer r.prep.Done()
		d, err := r.proxy.Prepare(ctx, redirect.Flow{Dir: redirect.Outbound, Src: f.local, Dst: f.remote})
		if d != redirect.Redirect {
			r.cfg.Log.Debug("tcpinc: destination not connected; SYN released unredirected", "src", f.local, "dst", f.remote, "decision", d, "err", err)
		}
		r.fmu.Lock()
		r.decided = append(r.decided, decision{f, d})
		r.fmu.Unlock()
		windows.SetEvent(r.wake)
	}()
}

// applyDecisions releases the held SYNs whose Prepare returned:
// reflected to the proxy, or sent on unchanged so the application meets
// the real refusal or silence.
func (r *Redirect) applyDecisions() {
	now := time.Now()
	r.fmu.Lock()
	ds := r.decided
	r.decided = nil
	type release struct {
		st *rflow
		d  redirect.Decision
		f  flow
	}
	var rel []release
	for _, d := range ds {
		st, ok := r.flows[d.f]
		if !ok || st.held == nil {
			continue
		}
		if d.d == redirect.Redirect {
			st.back = flow{local: netip.AddrPortFrom(d.f.local.Addr(), r.port), remote: netip.AddrPortFrom(d.f.remote.Addr(), d.f.local.Port())}
			r.back[st.back] = d.f
		} else {
			delete(r.flows, d.f)
		}
		rel = append(rel, release{st, d.d, d.f})
	}
	r.fmu.Unlock()
	for _, x := range rel {
		held, addr := x.st.held, x.st.heldAddr
		x.st.held = nil
		if x.d == redirect.Redirect {
			r.st.Redirected.Add(1)
			r.reflect(held, &addr, x.st.back.remote, x.st.back.local, &r.st.Reflected[0])
		} else {
			r.st.Released.Add(1)
			r.bypass.add(x.f, now.Unix())
			r.send(held, &addr)
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
		r.st.Unknown.Add(1)
		return
	}
	r.reflect(raw, addr, app.remote, app.local, &r.st.Reflected[1])
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

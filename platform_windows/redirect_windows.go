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
	if r.h, err = openCapture(r.dll, &r.cfg, filter); err != nil {
		r.rb.Close()
		r.sb.Close()
		windows.CloseHandle(r.wake)
		r.closeListeners()
		return fmt.Errorf("opening the capture: %w", err)
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

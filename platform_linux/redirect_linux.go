package platform_linux

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/packet"
	"tcpinc.dev/tcpinc/core/redirect"
)

// Redirect is the Linux redirect-mode backend: nftables REDIRECT to a
// local proxy (core/redirect), a gate queue that holds SYNs while the
// proxy dials, and a SYN hook queue for the wire legs' handshakes. It
// uses queues Config.Queue (gate) and Config.Queue+1 (hook).
type Redirect struct {
	cfg   Config
	marks marks
	kind  queueKind
	nft   *nftables.Conn
	ct    *ctConn
	hook  *redirect.Hook
	proxy *redirect.Proxy
	gate  *synQueue
	hookq *synQueue
	lns   [4]net.Listener // out4, out6, in4, in6 (nil if the family is missing)
	ports redirectPorts
	st    synStats

	mu      sync.Mutex
	policy  core.Policy
	held    map[redirect.Flow]struct{} // SYNs the gate holds
	rules   bool                       // the table is installed (Run, until it returns)
	owned   bool                       // this backend installed the table at some point
	running bool
	closed  bool
	ctx     context.Context
	stop    context.CancelFunc
	done    chan struct{}
	ready   chan struct{} // closed once the rules are installed and the proxy accepts
}

var (
	_ core.Backend                         = (*Redirect)(nil)
	_ interface{ Ready() <-chan struct{} } = (*Redirect)(nil) // service/daemon.Readier
)

// NewRedirect checks privileges and kernel features, probes how to
// queue, opens the queues and the proxy's listeners. Nothing is
// redirected until Run installs the rules. Config.Queues is ignored.
func NewRedirect(cfg Config) (*Redirect, error) {
	c, m, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if int(c.Queue)+1 > 0xffff {
		return nil, fmt.Errorf("tcpinc: redirect mode needs queues %d and %d; choose a lower Queue", c.Queue, int(c.Queue)+1)
	}
	r := &Redirect{cfg: c, marks: m, policy: c.Policy, held: make(map[redirect.Flow]struct{}), ready: make(chan struct{})}
	if r.nft, err = nftables.New(nftables.AsLasting()); err != nil {
		return nil, fmt.Errorf("tcpinc: nftables netlink socket: %w", err)
	}
	if r.ct, err = dialCT(); err != nil {
		r.Close()
		return nil, err
	}
	if r.kind, err = probeQueueKind(r.nft); err != nil {
		r.Close()
		return nil, err
	}
	var cache = c.Engine.Cache
	if r.hook, err = redirect.NewHook(redirect.HookConfig{Policy: c.Policy, Cache: cache, Log: c.Log}); err != nil {
		r.Close()
		return nil, fmt.Errorf("tcpinc: policy: %w", err)
	}
	if r.proxy, err = redirect.NewProxy(redirect.Config{Hook: r.hook, Dialer: markDialer{m.val(pmProxy)},
		AEADs: c.Policy.AEADs, Cache: cache, Log: c.Log}); err != nil {
		r.Close()
		return nil, fmt.Errorf("tcpinc: policy: %w", err)
	}
	if r.gate, err = openSynQueue(c.Queue, c.QueueMaxLen, c.Log, &r.st, m.mask, r.gateSYN); err != nil {
		r.Close()
		return nil, err
	}
	if r.hookq, err = openSynQueue(c.Queue+1, c.QueueMaxLen, c.Log, &r.st, m.mask, r.hookPacket); err != nil {
		r.Close()
		return nil, err
	}
	for i, spec := range [4][2]string{{"tcp4", "0.0.0.0:0"}, {"tcp6", "[::]:0"}, {"tcp4", "0.0.0.0:0"}, {"tcp6", "[::]:0"}} {
		ln, err := net.Listen(spec[0], spec[1])
		if err != nil {
			if i%2 == 0 {
				r.Close()
				return nil, fmt.Errorf("tcpinc: proxy listener: %w", err)
			}
			c.Log.Warn("tcpinc: no IPv6 proxy listener; IPv6 connections stay plain", "err", err)
			continue
		}
		r.lns[i] = ln
	}
	port := func(i int) uint16 {
		if r.lns[i] == nil {
			return 0
		}
		return uint16(r.lns[i].Addr().(*net.TCPAddr).Port)
	}
	r.ports = redirectPorts{out4: port(0), out6: port(1), in4: port(2), in6: port(3)}
	c.Log.Info("tcpinc: redirect backend ready", "queues", fmt.Sprintf("%d-%d", c.Queue, c.Queue+1), "queueing", r.kind.String(),
		"proxy_ports", fmt.Sprintf("out %d/%d in %d/%d", r.ports.out4, r.ports.out6, r.ports.in4, r.ports.in6))
	return r, nil
}

// Ready is closed once the rules are installed and the proxy's
// listeners accept, that is once connections are captured (the daemon's
// Readier: status says running only from then on).
func (r *Redirect) Ready() <-chan struct{} { return r.ready }

// Mode is core.ModeRedirect.
func (r *Redirect) Mode() core.Mode { return core.ModeRedirect }

// QueueKind says how the rules queue packets.
func (r *Redirect) QueueKind() string { return r.kind.String() }

func (r *Redirect) spec(p *core.Policy) redirectSpec {
	return redirectSpec{kind: r.kind, gate: r.cfg.Queue, hook: r.cfg.Queue + 1, marks: r.marks, enabled: p.Enabled,
		ports: r.ports, excludePort: p.ExcludePorts, excludeAddr: p.ExcludeAddrs}
}

// Run redirects the host's TCP connections through the proxy until ctx
// ends or a queue fails; it removes the rules before returning, after
// resetting every proxied connection.
func (r *Redirect) Run(ctx context.Context) (err error) {
	r.mu.Lock()
	if r.closed || r.running {
		r.mu.Unlock()
		return errors.New("tcpinc: Redirect.Run called twice or after Close")
	}
	r.running = true
	ctx, cancel := context.WithCancelCause(ctx)
	r.ctx = ctx
	r.stop = func() { cancel(nil) }
	r.done = make(chan struct{})
	r.mu.Unlock()
	defer close(r.done)
	defer cancel(nil)

	fatal := func(err error) { cancel(err) }
	for _, q := range []*synQueue{r.gate, r.hookq} {
		if err := q.start(ctx, fatal); err != nil {
			cancel(err)
			return err
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		t := time.NewTicker(sweepInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				r.hook.Sweep(now)
			}
		}
	})

	r.mu.Lock()
	err = installRedirectRules(r.nft, r.spec(&r.policy))
	r.rules = err == nil
	r.owned = r.owned || r.rules
	r.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("tcpinc: installing the nftables rules (table inet %s): %w", RedirectTableName, err)
		cancel(err)
		return err
	}
	// Accept loops only now: on every path from here the deferred
	// cleanup closes the listeners, which ends them.
	for i, ln := range r.lns {
		if ln == nil {
			continue
		}
		dir := redirect.Outbound
		if i >= 2 {
			dir = redirect.Inbound
		}
		wg.Go(func() { r.accept(ctx, ln, dir) })
	}
	r.cfg.Log.Info("tcpinc: redirecting TCP", "table", "inet "+RedirectTableName)
	close(r.ready)
	defer func() {
		// Proxied connections cannot continue without the proxy.
		r.proxy.CloseAll()
		r.mu.Lock()
		rerr := removeRedirectRules(r.nft)
		r.rules = false
		r.mu.Unlock()
		if rerr != nil {
			r.cfg.Log.Error("tcpinc: removing the nftables rules failed; remove them with: nft delete table inet "+RedirectTableName, "err", rerr)
			err = errors.Join(err, rerr)
		}
		for _, ln := range r.lns {
			if ln != nil {
				ln.Close() // ends the accept loops
			}
		}
	}()
	<-ctx.Done()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

// accept serves one listener.
func (r *Redirect) accept(ctx context.Context, ln net.Listener, dir redirect.Direction) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				r.cfg.Log.Error("tcpinc: proxy listener failed", "err", err)
			}
			return
		}
		r.st.Accepted.Add(1)
		go r.serve(ctx, c.(*net.TCPConn), dir)
	}
}

// serve recovers an accepted connection's flow as the gate and the SYN
// hook saw it (the original tuple: NAT may have changed the source port
// too, see redirect_ct_linux.go) and hands it to the proxy.
func (r *Redirect) serve(ctx context.Context, tc *net.TCPConn, dir redirect.Direction) {
	local, remote := unmap(tc.LocalAddr().(*net.TCPAddr).AddrPort()), unmap(tc.RemoteAddr().(*net.TCPAddr).AddrPort())
	src, dst, err := r.ct.originalTuple(local, remote)
	if err != nil {
		// Without conntrack's answer, SO_ORIGINAL_DST still gives the
		// destination; the source is right unless NAT changed it.
		r.st.CtFailed.Add(1)
		if n := r.st.CtFailed.Load(); n&(n-1) == 0 {
			r.cfg.Log.Warn("tcpinc: conntrack lookup of a proxied connection failed; using SO_ORIGINAL_DST", "remote", remote, "err", err, "times", n)
		}
		src = remote
		if dst, err = originalDst(tc); err != nil {
			// Not a redirected connection (the rules drop direct ones).
			r.st.NoOrigDst.Add(1)
			r.cfg.Log.Info("tcpinc: proxy connection without an original destination; closed", "remote", remote, "err", err)
			tc.Close()
			return
		}
	}
	if src != remote {
		r.st.SrcRemapped.Add(1)
	}
	f := redirect.Flow{Dir: dir, Src: src, Dst: dst}
	if err := r.proxy.Serve(ctx, tc, f); err != nil {
		r.cfg.Log.Debug("tcpinc: proxied connection ended with an error", "dir", f.Dir, "src", f.Src, "dst", f.Dst, "err", err)
	}
}

// gateSYN runs on the gate queue's reader for an application's SYN
// (output) or a peer's SYN to this host (prerouting). It holds the SYN
// while the proxy dials the destination, then releases it: marked for
// redirection if the proxy has the other leg, unmarked (and never
// queued again) otherwise, so the kernel and the network answer the
// application exactly as they would without tcpinc: a refused
// connection is refused, an unreachable one unreachable.
func (r *Redirect) gateSYN(q queued) {
	r.st.GateQueued.Add(1)
	pk, err := packet.Parse(q.buf)
	if err != nil || !pk.HasTCP() || pk.TCP().Flags()&(packet.SYN|packet.ACK) != packet.SYN {
		r.release(&q, nil)
		return
	}
	f := redirect.Flow{Dir: hookDir(&q), Src: unmap(pk.Src()), Dst: unmap(pk.Dst())}
	if r.listener(f) == nil {
		r.release(&q, nil)
		return
	}
	r.mu.Lock()
	if _, ok := r.held[f]; ok {
		r.mu.Unlock()
		// A retransmission of a SYN we hold: the first one will do.
		r.st.GateDuplicates.Add(1)
		r.gate.verdict(&q, true, 0, nil)
		return
	}
	ctx := r.ctx
	r.held[f] = struct{}{}
	r.mu.Unlock()
	var altered []byte
	if f.Dir == redirect.Inbound {
		// The peer's SYN carries its ENO option: the hook reads it now,
		// and answers in the SYN-ACK the proxy's listener sends.
		out, v := r.hook.Process(q.buf, redirect.Inbound, time.Now())
		switch {
		case v.Action == redirect.Drop:
			r.unhold(f)
			r.gate.verdict(&q, true, 0, nil)
			return
		case v.Action == redirect.Modified:
			altered = out
		}
		if v.Done {
			// No ENO to answer (the peer sent none, or policy): the
			// connection goes straight to the application, plain.
			r.unhold(f)
			r.release(&q, altered)
			return
		}
	}
	go func() {
		d, err := r.proxy.Prepare(ctx, f)
		r.unhold(f)
		if d != redirect.Redirect {
			r.cfg.Log.Debug("tcpinc: SYN released unredirected", "dir", f.Dir, "src", f.Src, "dst", f.Dst, "decision", d, "err", err)
			r.release(&q, altered)
			return
		}
		r.st.GateRedirected.Add(1)
		r.gate.verdict(&q, false, r.marks.val(pmRedirect), altered)
	}()
}

// release lets a gated SYN continue unredirected and marks its
// connection so that nothing of it is queued again.
func (r *Redirect) release(q *queued, altered []byte) {
	r.st.GateReleased.Add(1)
	r.gate.verdict(q, false, r.marks.val(pmDone), altered)
}

func (r *Redirect) unhold(f redirect.Flow) {
	r.mu.Lock()
	delete(r.held, f)
	r.mu.Unlock()
}

// listener returns the proxy listener a flow would be redirected to.
func (r *Redirect) listener(f redirect.Flow) net.Listener {
	i := 0
	if f.Dst.Addr().Is6() {
		i = 1
	}
	if f.Dir == redirect.Inbound {
		i += 2
	}
	return r.lns[i]
}

// hookPacket runs on the hook queue's reader for a wire leg's segment.
func (r *Redirect) hookPacket(q queued) {
	r.st.HookQueued.Add(1)
	out, v := r.hook.Process(q.buf, hookDir(&q), time.Now())
	var mark uint32
	if v.Done {
		mark = r.marks.val(pmDone)
	}
	switch v.Action {
	case redirect.Drop:
		r.st.HookDropped.Add(1)
		r.hookq.verdict(&q, true, 0, nil)
	case redirect.Modified:
		r.hookq.verdict(&q, false, mark, out)
	default:
		r.hookq.verdict(&q, false, mark, nil)
	}
}

func unmap(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) }

// Close ends Run, waits for it, and releases everything, making sure the
// rules are gone and every secret is erased. It is safe to call more
// than once.
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
	if r.proxy != nil {
		r.proxy.CloseAll()
	}
	r.gate.close()
	r.hookq.close()
	for _, ln := range r.lns {
		if ln != nil {
			ln.Close()
		}
	}
	if r.hook != nil {
		r.hook.Close()
	}
	if r.cfg.Engine.Cache != nil {
		r.cfg.Engine.Cache.Flush() // resumption secrets die with the service
	}
	var err error
	if r.nft != nil {
		// Run removes the table; this covers a removal that failed. A
		// backend that never installed it (its queues were taken by
		// another instance) must not delete that instance's table.
		r.mu.Lock()
		owned := r.owned
		r.mu.Unlock()
		if owned {
			if rerr := removeRedirectRules(r.nft); rerr != nil && !isPermission(rerr) {
				err = fmt.Errorf("tcpinc: removing table inet %s: %w", RedirectTableName, rerr)
			}
		}
		r.nft.CloseLasting()
	}
	r.ct.close()
	return err
}

// Apply changes the policy for new connections (on/off, exclusions,
// TEPs, AEADs, resumption, mandatory application-aware mode). The gate
// rules are replaced in one transaction; proxied connections go on.
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
	if err := r.proxy.SetAEADs(p.AEADs); err != nil {
		return fmt.Errorf("tcpinc: applying the policy: %w", err)
	}
	if err := r.hook.SetPolicy(p); err != nil {
		_ = r.proxy.SetAEADs(r.policy.AEADs)
		return fmt.Errorf("tcpinc: applying the policy: %w", err)
	}
	if r.rules {
		if err := updateRedirectRules(r.nft, r.spec(&p)); err != nil {
			_ = r.hook.SetPolicy(r.policy)
			_ = r.proxy.SetAEADs(r.policy.AEADs)
			return fmt.Errorf("tcpinc: updating the rules (table inet %s): %w", RedirectTableName, err)
		}
	}
	r.policy = p
	r.cfg.Log.Info("tcpinc: policy applied", "enabled", p.Enabled, "exclude_ports", p.ExcludePorts,
		"exclude_addrs", p.ExcludeAddrs, "resumption", p.Resumption, "aa_mandatory", p.AAMandatory)
	return nil
}

// Policy returns the policy in force.
func (r *Redirect) Policy() core.Policy {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.policy
}

// Conns describes every proxied connection.
func (r *Redirect) Conns() []core.ConnInfo { return r.proxy.Conns() }

// Lookup describes a proxied connection by its 4-tuple: the
// application's, the wire leg's, or the proxy's local leg's.
func (r *Redirect) Lookup(local, remote netip.AddrPort) (core.ConnInfo, bool) {
	return r.proxy.Lookup(local, remote)
}

// RedirectCounters are the redirect backend's counters.
type RedirectCounters struct {
	Hook           redirect.HookCounters
	Proxy          redirect.Counters
	GateQueued     uint64
	GateDuplicates uint64
	GateRedirected uint64
	GateReleased   uint64
	HookQueued     uint64
	HookDropped    uint64
	Verdicts       uint64
	VerdictErrors  uint64
	RecvENOBUFS    uint64
	Accepted       uint64
	NoOrigDst      uint64
	SrcRemapped    uint64
	CtFailed       uint64
}

// Snapshot returns the counters.
func (r *Redirect) Snapshot() RedirectCounters {
	s := &r.st
	return RedirectCounters{Hook: r.hook.Counters(), Proxy: r.proxy.Counters(),
		GateQueued: s.GateQueued.Load(), GateDuplicates: s.GateDuplicates.Load(), GateRedirected: s.GateRedirected.Load(),
		GateReleased: s.GateReleased.Load(), HookQueued: s.HookQueued.Load(), HookDropped: s.HookDropped.Load(),
		Verdicts: s.Verdicts.Load(), VerdictErrors: s.VerdictErrors.Load(), RecvENOBUFS: s.RecvENOBUFS.Load(),
		Accepted: s.Accepted.Load(), NoOrigDst: s.NoOrigDst.Load(), SrcRemapped: s.SrcRemapped.Load(), CtFailed: s.CtFailed.Load()}
}

// Counters are Snapshot's counters flattened for the control API
// ("proxy_encrypted", "hook_plain_reasons_no_eno_in_synack", "gate_released").
func (r *Redirect) Counters() map[string]uint64 {
	return core.Flatten(r.Snapshot(), func(path string, i int) string {
		if path == "hook_plain_reasons" {
			return eno.Reason(i).String()
		}
		return ""
	})
}

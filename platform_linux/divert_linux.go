package platform_linux

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/google/nftables"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/divert"
	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

// keyPoolSize is how many ephemeral keys per TEP are kept ready.
const keyPoolSize = 32

// Divert is the Linux divert-mode backend: rules, queues, engines.
type Divert struct {
	cfg   Config
	marks marks
	kind  queueKind
	nft   *nftables.Conn
	inj   *injector
	ws    []*worker
	keys  *divert.KeyPool

	mu      sync.Mutex
	policy  core.Policy   // current; Apply replaces it
	rules   bool          // the table is installed (Run, until it returns)
	tried   bool          // Run tried to install the table: only then is it ours to remove
	ready   chan struct{} // closed once the rules are installed
	running bool
	closed  bool
	stop    context.CancelFunc // ends Run
	done    chan struct{}      // closed when Run returns
}

// NewDivert checks privileges and kernel features, probes how to queue,
// binds the queues and opens the injection sockets. Nothing is captured
// until Run installs the rules.
func NewDivert(cfg Config) (*Divert, error) {
	c, m, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	d := &Divert{cfg: c, marks: m, policy: c.Policy, ready: make(chan struct{})}
	if d.cfg.Engine.Ephemerals == nil {
		// Keys generated ahead of time: a fresh key exchange costs one
		// key agreement on the packet path instead of two operations.
		teps := []tcpcrypt.TEP{tcpcrypt.TEPCurve25519}
		if n := len(c.Policy.TEPs); n > 0 {
			teps = append(teps, tcpcrypt.TEP(c.Policy.TEPs[n-1]))
		}
		d.keys = divert.NewKeyPool(keyPoolSize, teps...)
		d.cfg.Engine.Ephemerals = d.keys.Get
	}
	if d.nft, err = nftables.New(nftables.AsLasting()); err != nil {
		return nil, fmt.Errorf("tcpinc: nftables netlink socket: %w", err)
	}
	if d.kind, err = probeQueueKind(d.nft); err != nil {
		d.Close()
		return nil, err
	}
	if d.inj, err = newInjector(m.inject); err != nil {
		d.Close()
		return nil, err
	}
	for i := range c.Queues {
		w, err := newWorker(c.Queue+uint16(i), &d.cfg, m, d.inj)
		if err != nil {
			d.Close()
			return nil, err
		}
		d.ws = append(d.ws, w)
	}
	c.Log.Info("tcpinc: divert backend ready", "queues", fmt.Sprintf("%d-%d", c.Queue, int(c.Queue)+c.Queues-1), "queueing", d.kind.String())
	return d, nil
}

// Run captures the host's TCP connections until ctx ends or a queue
// fails: it binds the queues, installs the rules (replacing a stale
// table), runs the workers, and removes the rules before returning.
func (d *Divert) Run(ctx context.Context) (err error) {
	d.mu.Lock()
	if d.closed || d.running {
		d.mu.Unlock()
		return errors.New("tcpinc: Divert.Run called twice or after Close")
	}
	d.running = true
	ctx, cancel := context.WithCancelCause(ctx)
	d.stop = func() { cancel(nil) }
	d.done = make(chan struct{})
	d.mu.Unlock()
	defer close(d.done)

	fatal := func(err error) { cancel(err) }
	var wg sync.WaitGroup
	defer func() {
		cancel(nil)
		wg.Wait() // the packet loops see ctx within nfq's receive timeout
	}()
	for _, w := range d.ws {
		wg.Go(func() { w.run(ctx, fatal) })
	}
	if !d.cfg.StrictConntrack {
		restore, err := setLiberal()
		if err != nil {
			cancel(err)
			return err
		}
		defer func() {
			if rerr := restore(); rerr != nil {
				d.cfg.Log.Warn("tcpinc: restoring nf_conntrack_tcp_be_liberal", "err", rerr)
			}
		}()
	}
	d.mu.Lock()
	d.tried = true
	err = installRules(d.nft, d.ruleSpec(&d.policy))
	d.rules = err == nil
	if d.rules {
		close(d.ready)
	}
	d.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("tcpinc: installing the nftables rules (table inet %s): %w", TableName, err)
		cancel(err)
		return err
	}
	d.cfg.Log.Info("tcpinc: capturing TCP", "table", "inet "+TableName)
	defer func() {
		// Reset the connections that are encrypted first: once the rules
		// are gone their next segments would leave in plaintext.
		d.abortAll()
		// Rules first: no packet may wait in a queue nobody reads.
		d.mu.Lock()
		rerr := removeRules(d.nft)
		d.rules = false
		d.mu.Unlock()
		if rerr != nil {
			d.cfg.Log.Error("tcpinc: removing the nftables rules failed; remove them with: nft delete table inet "+TableName, "err", rerr)
			err = errors.Join(err, rerr)
		}
	}()

	<-ctx.Done()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

// abortAll resets both ends of every encrypted connection (the engines
// are safe to call from here while their workers wind down).
func (d *Divert) abortAll() {
	n := 0
	for _, w := range d.ws {
		w.mu.Lock()
		pkts := w.eng.AbortAll()
		w.mu.Unlock()
		for _, p := range pkts {
			if err := d.inj.send(p.Buf); err != nil {
				d.cfg.Log.Warn("tcpinc: sending a reset at shutdown", "err", err)
				continue
			}
			n++
		}
	}
	if n > 0 {
		d.cfg.Log.Info("tcpinc: reset encrypted connections before removing the rules", "packets", n)
	}
}

// Close ends Run, waits for it, and releases everything, making sure the
// rules are gone. It is safe to call more than once.
func (d *Divert) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	stop, done := d.stop, d.done
	d.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	var err error
	for _, w := range d.ws {
		w.close()
	}
	if d.inj != nil {
		d.inj.close()
	}
	d.keys.Close()
	d.mu.Lock()
	tried := d.tried
	d.mu.Unlock()
	if d.nft != nil {
		// Run removes the rules; this covers a Run that could not. A
		// backend that never tried to install the table leaves it alone:
		// it may be another running instance's (a second tcpincd that
		// failed to bind its queues must not uncover the first one's
		// encrypted connections).
		if !tried {
			d.nft.CloseLasting()
			return err
		}
		if rerr := removeRules(d.nft); rerr != nil && !isPermission(rerr) {
			err = fmt.Errorf("tcpinc: removing table inet %s: %w", TableName, rerr)
		}
		d.nft.CloseLasting()
	}
	return err
}

var _ core.Backend = (*Divert)(nil)

// Ready is closed once the capture rules are installed (daemon.Readier).
func (d *Divert) Ready() <-chan struct{} { return d.ready }

// Mode is core.ModeDivert.
func (d *Divert) Mode() core.Mode { return core.ModeDivert }

func (d *Divert) ruleSpec(p *core.Policy) ruleSpec {
	return ruleSpec{kind: d.kind, queue: d.cfg.Queue, queues: uint16(d.cfg.Queues), marks: d.marks,
		excludePorts: p.ExcludePorts, excludeAddrs: p.ExcludeAddrs}
}

// Apply changes the policy for new connections: the engines' (on/off,
// exclusions, TEPs, AEADs, resumption, mandatory application-aware mode)
// and, while running, the exclusion rules. The rules are replaced in one
// nftables transaction that leaves the table and its base chains in
// place, so no queued packet is dropped and no connection's marks change:
// an encrypted connection stays captured even if it is now excluded.
func (d *Divert) Apply(p core.Policy) error {
	if err := checkPolicy(&p); err != nil {
		return err
	}
	p.ExcludePorts = slices.Clone(p.ExcludePorts)
	p.ExcludeAddrs = slices.Clone(p.ExcludeAddrs)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("tcpinc: Apply after Close")
	}
	old := d.policy
	for i, w := range d.ws {
		if err := w.eng.SetPolicy(p); err != nil {
			for _, w := range d.ws[:i] {
				_ = w.eng.SetPolicy(old) // it was accepted before
			}
			return fmt.Errorf("tcpinc: applying the policy: %w", err)
		}
	}
	if d.rules {
		if err := updateRules(d.nft, d.ruleSpec(&p)); err != nil {
			for _, w := range d.ws {
				_ = w.eng.SetPolicy(old)
			}
			return fmt.Errorf("tcpinc: updating the exclusion rules (table inet %s): %w", TableName, err)
		}
	}
	d.policy = p
	d.cfg.Log.Info("tcpinc: policy applied", "enabled", p.Enabled, "exclude_ports", p.ExcludePorts,
		"exclude_addrs", p.ExcludeAddrs, "resumption", p.Resumption, "aa_mandatory", p.AAMandatory)
	return nil
}

// Policy returns the policy in force.
func (d *Divert) Policy() core.Policy {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.policy
}

// Conns describes every connection the engines track (none while Run is
// not running).
func (d *Divert) Conns() []divert.ConnInfo {
	var all []divert.ConnInfo
	for _, w := range d.ws {
		var part []divert.ConnInfo
		if w.do(func(e *divert.Engine) { part = e.Conns(nil) }) {
			all = append(all, part...)
		}
	}
	return all
}

// Counters are the engines' counters summed over the queues, and the
// backend's own.
type Counters struct {
	Engine        divert.Counters
	Queued        uint64 // packets the kernel queued to us
	Verdicts      uint64
	VerdictErrors uint64
	Injected      [2]uint64 // engine packets sent, by divert.Direction
	InjectErrors  uint64
	RecvENOBUFS   uint64 // times the kernel dropped queued packets for lack of socket buffer
	RecvBad       uint64 // queue messages that did not parse
	Batches       uint64 // receives that returned packets (Queued/Batches: mean batch)
	GSO           uint64 // GSO/GRO super-packets queued whole
	CsumFixed     uint64 // partial checksums completed after a rewrite
	DropTruncated uint64 // packets too long for the queue's copy (dropped)
	MarkedPlain   uint64 // connections marked never to be queued again
	MarkedCapture uint64 // SYNs marked: queue every packet of the connection
	// DropUnknownCaptured: packets of captured connections no engine
	// knows (encrypted before a restart), dropped rather than sent in
	// clear.
	DropUnknownCaptured uint64
}

// Lookup describes the connection between local and remote, if an
// engine tracks it.
func (d *Divert) Lookup(local, remote netip.AddrPort) (divert.ConnInfo, bool) {
	for _, w := range d.ws {
		var ci divert.ConnInfo
		var ok bool
		if w.do(func(e *divert.Engine) { ci, ok = e.Lookup(local, remote) }) && ok {
			return ci, true
		}
	}
	return divert.ConnInfo{}, false
}

// Counters are Snapshot's counters flattened for the control API
// ("engine_conns_encrypted", "recv_enobufs", "injected_outbound").
func (d *Divert) Counters() map[string]uint64 {
	return core.Flatten(d.Snapshot(), CounterIndexName)
}

// CounterIndexName names the elements of the counter arrays of Counters
// for core.Flatten.
func CounterIndexName(path string, i int) string {
	switch path {
	case "engine_packets", "injected":
		return divert.Direction(i).String()
	case "engine_plain_reasons":
		return eno.Reason(i).String()
	}
	return ""
}

// Snapshot returns the counters.
func (d *Divert) Snapshot() Counters {
	var c Counters
	for _, w := range d.ws {
		c.Engine.Add(w.counters())
		s := &w.stats
		c.Queued += s.Queued.Load()
		c.Verdicts += s.Verdicts.Load()
		c.VerdictErrors += s.VerdictErrors.Load()
		c.Injected[0] += s.Injected[0].Load()
		c.Injected[1] += s.Injected[1].Load()
		c.InjectErrors += s.InjectErrors.Load()
		c.RecvENOBUFS += s.RecvENOBUFS.Load()
		c.RecvBad += s.RecvBad.Load()
		c.Batches += s.Batches.Load()
		c.GSO += s.GSO.Load()
		c.CsumFixed += s.CsumFixed.Load()
		c.DropTruncated += s.DropTruncated.Load()
		c.MarkedPlain += s.MarkedPlain.Load()
		c.MarkedCapture += s.MarkedCapture.Load()
		c.DropUnknownCaptured += s.DropUnknownCaptured.Load()
	}
	return c
}

// QueueKind says how the rules queue packets: "nft queue" or
// "xt NFQUEUE (nft_compat)".
func (d *Divert) QueueKind() string { return d.kind.String() }

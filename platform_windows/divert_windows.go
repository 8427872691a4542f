package platform_windows

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"sync"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/divert"
	"tcpinc.dev/tcpinc/core/eno"
)

// Divert is the Windows divert-mode backend: WinDivert handles at the
// NETWORK layer, one engine per handle.
type Divert struct {
	cfg Config
	dll *DLL
	ws  []*worker

	mu       sync.Mutex
	policy   core.Policy   // current; Apply replaces it
	gens     []core.Policy // the policies the open handles were opened for (see WidenFilter)
	running  bool
	stopping bool // Run is releasing the capture: no more handles
	closed   bool
	stop     context.CancelFunc
	done     chan struct{}
	wg       sync.WaitGroup // worker goroutines
	fail     func(error)    // ends Run with an error
}

var _ core.Backend = (*Divert)(nil)

// NewDivert loads WinDivert.dll and checks that the driver loads (an
// empty "false" handle: Administrator rights, driver file next to the
// DLL, signature, no incompatible driver already loaded), then prepares
// one engine per worker. Nothing is captured until Run.
func NewDivert(cfg Config) (*Divert, error) {
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
	d := &Divert{cfg: c, dll: dll, policy: c.Policy}
	c.Log.Info("tcpinc: WinDivert ready", "dll", dll.Path(), "workers", c.Workers)
	return d, nil
}

// loadConfigured loads the DLL the configuration names.
func loadConfigured(c *Config) (*DLL, error) {
	if runtime.GOARCH != "amd64" && c.DLLPath == "" {
		return nil, fmt.Errorf("windivert: WinDivert 2.2 has no signed driver for %s Windows; capture is unavailable on this machine (tcpinc needs x64 Windows)", runtime.GOARCH)
	}
	path := c.DLLPath
	if path == "" {
		var err error
		if path, err = DefaultDLLPath(); err != nil {
			return nil, err
		}
	}
	return LoadDLL(path)
}

// openCapture opens a network-layer handle with filter at the
// configured priority and sets its queue limits; a limit the driver
// refuses is logged and the handle used with the driver's own.
func openCapture(dll *DLL, c *Config, filter string) (*Handle, error) {
	h, err := dll.Open(filter, LayerNetwork, c.Priority, 0)
	if err != nil {
		return nil, err
	}
	for _, qp := range c.queueParams() {
		if err := h.SetParam(qp.p, qp.v); err != nil {
			c.Log.Warn("tcpinc: setting a WinDivert queue limit", "param", qp.p, "value", qp.v, "err", err)
		}
	}
	return h, nil
}

// probeDriver opens and closes a handle that captures nothing, which
// installs and starts the driver, and checks its version.
func probeDriver(dll *DLL, c *Config) error {
	h, err := dll.Open("false", LayerNetwork, 0, 0)
	if err != nil {
		return err
	}
	defer h.Close()
	major, minor, err := h.Version()
	if err != nil {
		return err
	}
	if msg := versionProblem(major, minor); msg != "" {
		if major != 2 {
			return errors.New(msg)
		}
		c.Log.Warn(msg)
	}
	return nil
}

// newEngine makes a worker's engine with policy p.
func (d *Divert) newEngine(p *core.Policy, onEvent func(divert.Event)) (*divert.Engine, error) {
	ec := d.cfg.Engine
	ec.OnEvent = onEvent
	if ec.Log == nil {
		ec.Log = d.cfg.Log
	}
	eng, err := divert.New(ec)
	if err != nil {
		return nil, fmt.Errorf("tcpinc: engine: %w", err)
	}
	if err := eng.SetPolicy(*p); err != nil {
		eng.Close()
		return nil, fmt.Errorf("tcpinc: engine policy: %w", err)
	}
	return eng, nil
}

// Mode is core.ModeDivert.
func (d *Divert) Mode() core.Mode { return core.ModeDivert }

// Run opens the workers' handles (from then on the host's TCP packets
// pass through tcpinc), runs them until ctx ends or one fails, and then
// resets the encrypted connections and releases the capture.
func (d *Divert) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.closed || d.running {
		d.mu.Unlock()
		return errors.New("tcpinc: Divert.Run called twice or after Close")
	}
	d.running = true
	ctx, cancel := context.WithCancelCause(ctx)
	d.stop = func() { cancel(nil) }
	d.fail = func(err error) { cancel(err) }
	d.done = make(chan struct{})
	pol := d.policy
	d.gens = []core.Policy{pol}
	d.mu.Unlock()
	defer close(d.done)

	ws, err := d.openWorkers(&pol)
	if err != nil {
		cancel(err)
		return err
	}
	d.mu.Lock()
	d.ws = ws
	for _, w := range ws {
		d.start(w)
	}
	d.mu.Unlock()
	d.cfg.Log.Info("tcpinc: capturing TCP with WinDivert", "workers", len(ws), "filter", ws[0].h.Filter())
	<-ctx.Done()
	d.mu.Lock()
	d.stopping = true
	ws = d.ws // with the handles Apply added
	d.mu.Unlock()
	for _, w := range ws {
		w.requestStop()
	}
	d.wg.Wait()
	for _, w := range ws {
		if cerr := w.close(); cerr != nil {
			d.cfg.Log.Warn("tcpinc: closing a WinDivert handle", "err", cerr)
		}
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

// start runs a worker's goroutine; d.mu is held.
func (d *Divert) start(w *worker) {
	fail := d.fail
	d.wg.Go(func() {
		if err := w.run(); err != nil {
			fail(err)
		}
	})
}

// openWorker opens one handle with filter and its worker, engine policy
// p; d.mu need not be held.
func (d *Divert) openWorker(id int, filter string, p *core.Policy) (*worker, error) {
	var w *worker
	eng, err := d.newEngine(p, func(ev divert.Event) { w.onEvent(ev) })
	if err != nil {
		return nil, err
	}
	h, err := openCapture(d.dll, &d.cfg, filter)
	if err != nil {
		eng.Close()
		return nil, fmt.Errorf("opening the capture of worker %d: %w", id, err)
	}
	if w, err = newWorker(id, h, &d.cfg, eng); err != nil {
		h.Close()
		eng.Close()
		return nil, err
	}
	return w, nil
}

// openWorkers opens one handle per worker, each with its share of the
// connections.
func (d *Divert) openWorkers(pol *core.Policy) ([]*worker, error) {
	var ws []*worker
	for i := range d.cfg.Workers {
		filter, err := DivertFilter(pol, i, d.cfg.Workers)
		if err == nil {
			var w *worker
			if w, err = d.openWorker(i, filter, pol); err == nil {
				ws = append(ws, w)
				continue
			}
		}
		for _, w := range ws {
			w.close()
			w.eng.Close()
		}
		return nil, err
	}
	return ws, nil
}

// Close ends Run, waits for it (encrypted connections are reset, the
// handles closed) and erases every secret. It is idempotent.
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
	d.mu.Lock()
	ws := d.ws
	d.mu.Unlock()
	for _, w := range ws {
		w.eng.Close()
	}
	return nil
}

func (d *Divert) workers() []*worker {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ws
}

// Conns describes every connection the engines track.
func (d *Divert) Conns() []core.ConnInfo {
	var all []core.ConnInfo
	for _, w := range d.workers() {
		all = w.eng.Conns(all)
	}
	return all
}

// Lookup describes the connection between local and remote, if an
// engine tracks it.
func (d *Divert) Lookup(local, remote netip.AddrPort) (core.ConnInfo, bool) {
	for _, w := range d.workers() {
		if ci, ok := w.eng.Lookup(local, remote); ok {
			return ci, true
		}
	}
	return core.ConnInfo{}, false
}

// Counters are the engines' counters summed over the workers, and the
// workers' own, flattened for the control API.
func (d *Divert) Counters() map[string]uint64 {
	return core.Flatten(d.Snapshot(), CounterIndexName)
}

// Counters of the divert backend.
type Counters struct {
	Engine        divert.Counters
	Received      uint64
	Batches       uint64
	FastPath      uint64
	Reinjected    uint64
	Dropped       uint64
	Injected      [2]uint64 // by divert.Direction
	SendErrors    uint64
	RecvErrors    uint64
	BadBatches    uint64
	ChecksumFixed uint64
	NoInterface   uint64
	PlainFlows    uint64
	PlainFull     uint64
	Adopted       uint64
	DrainDropped  uint64
}

// Snapshot returns the counters.
func (d *Divert) Snapshot() Counters {
	var c Counters
	for _, w := range d.workers() {
		c.Engine.Add(w.counters())
		s := &w.stats
		c.Received += s.Received.Load()
		c.Batches += s.Batches.Load()
		c.FastPath += s.FastPath.Load()
		c.Reinjected += s.Reinjected.Load()
		c.Dropped += s.Dropped.Load()
		c.Injected[0] += s.Injected[0].Load()
		c.Injected[1] += s.Injected[1].Load()
		c.SendErrors += s.SendErrors.Load()
		c.RecvErrors += s.RecvErrors.Load()
		c.BadBatches += s.BadBatches.Load()
		c.ChecksumFixed += s.ChecksumFixed.Load()
		c.NoInterface += s.NoInterface.Load()
		c.PlainFlows += s.PlainFlows.Load()
		c.PlainFull += s.PlainFull.Load()
		c.Adopted += s.Adopted.Load()
		c.DrainDropped += s.DrainDropped.Load()
	}
	return c
}

// CounterIndexName names the elements of the counter arrays for
// core.Flatten.
func CounterIndexName(path string, i int) string {
	switch path {
	case "engine_packets", "injected":
		return divert.Direction(i).String()
	case "engine_plain_reasons":
		return eno.Reason(i).String()
	}
	return ""
}

// Apply changes the policy for new connections. The engines take all of
// it at once: a newly excluded connection is still captured but left
// plain (and then takes the fast path); an encrypted connection on a
// newly excluded port keeps its keys. An open handle's filter cannot
// change, so traffic the new policy captures and the open handles do not
// (an exclusion removed) gets a handle of its own (WidenFilter).
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
	rollback := func(ws []*worker) {
		for _, w := range ws {
			_ = w.eng.SetPolicy(old) // it was accepted before
		}
	}
	for i, w := range d.ws {
		if err := w.eng.SetPolicy(p); err != nil {
			rollback(d.ws[:i])
			return fmt.Errorf("tcpinc: applying the policy: %w", err)
		}
	}
	if d.running && !d.stopping {
		filter, err := WidenFilter(&p, d.gens)
		if err == nil && filter != "" {
			var w *worker
			if w, err = d.openWorker(len(d.ws), filter, &p); err == nil {
				d.ws = append(d.ws, w)
				d.gens = append(d.gens, p)
				d.start(w)
				d.cfg.Log.Info("tcpinc: capturing what the new policy no longer excludes", "worker", w.id, "filter", filter)
			}
		}
		if err != nil {
			rollback(d.ws)
			return fmt.Errorf("tcpinc: applying the policy: %w", err)
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

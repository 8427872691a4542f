package platform_windows

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
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
	policy   core.Policy // current; Apply replaces it
	filtered core.Policy // the policy whose exclusions the open filters hold
	running  bool
	closed   bool
	stop     context.CancelFunc
	done     chan struct{}
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

// newEngine makes a worker's engine with the current policy.
func (d *Divert) newEngine(onEvent func(divert.Event)) (*divert.Engine, error) {
	ec := d.cfg.Engine
	ec.OnEvent = onEvent
	if ec.Log == nil {
		ec.Log = d.cfg.Log
	}
	eng, err := divert.New(ec)
	if err != nil {
		return nil, fmt.Errorf("tcpinc: engine: %w", err)
	}
	if err := eng.SetPolicy(d.policy); err != nil {
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
	d.done = make(chan struct{})
	pol := d.policy
	d.filtered = pol
	d.mu.Unlock()
	defer close(d.done)

	ws, err := d.openWorkers(&pol)
	if err != nil {
		cancel(err)
		return err
	}
	d.mu.Lock()
	d.ws = ws
	d.mu.Unlock()

	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			if err := w.run(); err != nil {
				cancel(err)
			}
		})
	}
	d.cfg.Log.Info("tcpinc: capturing TCP with WinDivert", "workers", len(ws), "filter", ws[0].h.Filter())
	<-ctx.Done()
	for _, w := range ws {
		w.requestStop()
	}
	wg.Wait()
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

// openWorkers opens one handle per worker, each with its share of the
// connections, and sets its queue limits.
func (d *Divert) openWorkers(pol *core.Policy) ([]*worker, error) {
	var ws []*worker
	fail := func(err error) ([]*worker, error) {
		for _, w := range ws {
			w.close()
			w.eng.Close()
		}
		return nil, err
	}
	for i := range d.cfg.Workers {
		filter, err := DivertFilter(pol, i, d.cfg.Workers)
		if err != nil {
			return fail(err)
		}
		var w *worker
		eng, err := d.newEngine(func(ev divert.Event) { w.onEvent(ev) })
		if err != nil {
			return fail(err)
		}
		h, err := d.dll.Open(filter, LayerNetwork, d.cfg.Priority, 0)
		if err != nil {
			eng.Close()
			return fail(fmt.Errorf("opening the capture of worker %d: %w", i, err))
		}
		for _, p := range d.cfg.queueParams() {
			if err := h.SetParam(p.p, p.v); err != nil {
				d.cfg.Log.Warn("tcpinc: setting a WinDivert queue limit", "param", p.p, "value", p.v, "err", err)
			}
		}
		if w, err = newWorker(i, h, &d.cfg, eng); err != nil {
			h.Close()
			eng.Close()
			return fail(err)
		}
		ws = append(ws, w)
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
		addCounters(&c.Engine, w.counters())
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

// addCounters adds every uint64 (and array of uint64) field of src to dst.
func addCounters(dst *divert.Counters, src divert.Counters) {
	dv, sv := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src)
	for i := range dv.NumField() {
		df, sf := dv.Field(i), sv.Field(i)
		switch df.Kind() {
		case reflect.Uint64:
			df.SetUint(df.Uint() + sf.Uint())
		case reflect.Array:
			for j := range df.Len() {
				if df.Index(j).Kind() == reflect.Uint64 {
					df.Index(j).SetUint(df.Index(j).Uint() + sf.Index(j).Uint())
				}
			}
		}
	}
}

// Apply changes the policy for new connections. The engines take all of
// it at once. The open handles' filters cannot change (WinDivert has no
// such call), so they keep the exclusions they were opened with: a newly
// excluded connection is still captured but left plain by the engine (and
// then takes the fast path); an encrypted connection on a newly excluded
// port keeps its keys. Traffic that an exclusion removed at Run stays
// uncaptured until the next Run, which the log says.
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
				_ = w.eng.SetPolicy(old)
			}
			return fmt.Errorf("tcpinc: applying the policy: %w", err)
		}
	}
	d.policy = p
	if d.running && widens(&d.filtered, &p) {
		d.cfg.Log.Warn("tcpinc: the new policy captures traffic the running WinDivert filter excludes; it is captured from the next start of the service",
			"filter_exclude_ports", d.filtered.ExcludePorts, "filter_exclude_addrs", d.filtered.ExcludeAddrs)
	}
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

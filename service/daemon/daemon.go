// Package daemon is tcpincd's main loop, independent of the platform: it
// owns the configuration, drives one capture backend (core.Backend)
// built by the platform code, serves the control socket and the optional
// metrics endpoint, and applies 'tcpinc up/down/reload' to the backend
// without touching encrypted connections.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/service/config"
	"tcpinc.dev/tcpinc/service/control"
	"tcpinc.dev/tcpinc/service/version"
)

// NewBackendFunc builds the platform's capture backend for cfg; its
// initial policy is policy.
type NewBackendFunc func(cfg *config.Config, policy core.Policy, log *slog.Logger) (core.Backend, error)

// Options configure a Daemon.
type Options struct {
	// ConfigPath is the file Reload reads again; "" is the default path
	// (whose absence means the defaults).
	ConfigPath string
	// Config is the configuration loaded at start, Found whether it came
	// from a file.
	Config config.Config
	Found  bool
	// NewBackend builds the capture backend.
	NewBackend NewBackendFunc
	// Log receives the daemon's logs. Level, if set, is the level of
	// Log's handler: Reload changes it when log.level changes.
	Log   *slog.Logger
	Level *slog.LevelVar
	// StayUp keeps the daemon up, serving the control socket, when
	// capture cannot start or its backend fails, instead of returning
	// the error from Run: for a service whose manager would otherwise
	// restart it in a loop, or whose installer rolls back a service that
	// does not start (the Windows SCM and Windows Installer). Status
	// then reports CaptureError. See Run for when capture is retried.
	StayUp bool
	// RetryMin and RetryMax bound the back-off of the automatic retries
	// after a running backend failed (StayUp only); 0 means 5 s and
	// 5 min.
	RetryMin, RetryMax time.Duration
}

// Daemon is a running tcpincd.
type Daemon struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex // guards cfg, enabled, found, gen, captureErr and changes of backend
	cfg     config.Config
	found   bool
	enabled bool   // effective Enabled: the config's, or tcpinc up/down
	gen     uint64 // counts changes of cfg and enabled
	// captureErr says why capture is unavailable (StayUp), "" while
	// it runs or starts.
	captureErr string
	retry      chan struct{} // a request to try capturing again (StayUp)

	backend atomic.Pointer[backendBox]
	ctl     atomic.Pointer[control.Listener]
	running atomic.Bool
	since   atomic.Int64 // unix nanoseconds when capture started

	reloads, reloadErrors, toggles, metricsScrapes atomic.Uint64
}

type backendBox struct{ b core.Backend }

// Readier is an optional interface of a core.Backend: Ready is closed
// once the backend captures (its rules are installed). Status reports
// running only from then on; without it, from the start of Run.
type Readier interface {
	Ready() <-chan struct{}
}

// New checks opts and returns a daemon that is not running yet.
func New(opts Options) (*Daemon, error) {
	if opts.NewBackend == nil {
		return nil, errors.New("daemon: no backend constructor")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 5 * time.Second
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(5*time.Minute, opts.RetryMin)
	}
	d := &Daemon{opts: opts, log: opts.Log, cfg: opts.Config, found: opts.Found, enabled: opts.Config.Enabled,
		retry: make(chan struct{}, 1)}
	return d, nil
}

// policyLocked is the policy for the current configuration and toggle.
func (d *Daemon) policyLocked() core.Policy {
	p := d.cfg.Policy()
	p.Enabled = d.enabled
	return p
}

// Run listens on the control socket, starts the backend and captures
// until ctx ends. On return the backend is closed (encrypted connections
// are reset, rules removed) and the socket gone.
//
// When the backend cannot be built or its Run fails, Run returns that
// error, unless Options.StayUp is set. Then the daemon stays up without
// capture: it keeps serving the control socket, Status reports the
// reason as CaptureError, and the log says it once (and again only when
// the reason changes). Capture is tried again on 'tcpinc reload' and
// 'tcpinc up'. A backend that had been capturing and then failed is
// also retried by itself, after RetryMin, doubling up to RetryMax, until
// it captures again: that failure may pass. A backend that never started
// (no driver, driver blocked, no arm64 driver, no privilege) is not
// retried by itself: that needs someone to change something, and an
// attempt every few minutes would only fill the log.
func (d *Daemon) Run(ctx context.Context) error {
	d.mu.Lock()
	cfg := d.cfg
	enabled := d.enabled
	d.mu.Unlock()

	// The control socket first: if another tcpincd runs, fail before
	// touching the packet filter.
	ln, err := control.Listen(cfg.Control.Socket, control.Access{AdminGroup: cfg.Control.Group, Private: cfg.Control.Private})
	if err != nil {
		return err
	}
	ln.Log = d.log
	d.ctl.Store(ln)
	var mln net.Listener
	if cfg.MetricsListen != "" {
		mln, err = net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics endpoint %s: %w (change or clear metrics.listen)", cfg.MetricsListen, err)
		}
	}

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	srvCtx, stopSrv := context.WithCancel(context.Background())
	defer stopSrv()

	var wg sync.WaitGroup
	var srvErr error
	wg.Go(func() {
		if err := control.Serve(srvCtx, ln, d); err != nil {
			d.log.Error("control socket failed; stopping", "err", err)
			srvErr = err
			cancelRun()
		}
	})
	var hs *http.Server
	if mln != nil {
		hs = &http.Server{Handler: d.metricsMux(), ReadHeaderTimeout: 5 * time.Second}
		wg.Go(func() {
			if err := hs.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("metrics endpoint failed", "err", err)
			}
		})
	}

	d.log.Info("tcpincd starting", "version", version.String(), "mode", cfg.Mode, "enabled", enabled,
		"control", cfg.Control.Socket, "config", d.configName(), "metrics", cfg.MetricsListen)
	runErr := d.captureLoop(runCtx)
	if ctx.Err() != nil {
		d.log.Info("tcpincd stopping")
	}

	stopSrv()
	if hs != nil {
		shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		hs.Shutdown(shutCtx)
		cancel()
	}
	wg.Wait()
	if err := errors.Join(runErr, srvErr); err != nil {
		return err
	}
	d.log.Info("tcpincd stopped; capture rules removed")
	return nil
}

// captureLoop captures until ctx ends. Without StayUp it returns the
// first failure; with it, it reports failures and retries (see Run).
func (d *Daemon) captureLoop(ctx context.Context) error {
	wait := d.opts.RetryMin
	auto := false // retry by itself: a running backend failed
	for {
		ran, err := d.captureOnce(ctx)
		if ctx.Err() != nil {
			return err // from Close
		}
		if err == nil {
			err = errors.New("the capture backend stopped on its own")
		}
		if !d.opts.StayUp {
			if ran {
				d.log.Error("capture backend failed", "err", err)
			}
			return err
		}
		if ran {
			auto, wait = true, d.opts.RetryMin
		}
		d.setCaptureError(err, auto, wait)
		var timer <-chan time.Time
		var t *time.Timer
		if auto {
			t = time.NewTimer(wait)
			timer = t.C
			wait = min(2*wait, d.opts.RetryMax)
		}
		select {
		case <-ctx.Done():
		case <-d.retry:
			d.log.Info("trying to start capture again")
		case <-timer:
			d.log.Debug("trying to start capture again (automatic retry)")
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// captureOnce builds a backend and runs it until ctx ends or it fails,
// then closes it. ran reports whether it got as far as capturing.
func (d *Daemon) captureOnce(ctx context.Context) (ran bool, err error) {
	d.mu.Lock()
	cfg := d.cfg
	policy := d.policyLocked()
	gen := d.gen
	d.mu.Unlock()

	b, err := d.opts.NewBackend(&cfg, policy, d.log)
	if err != nil {
		return false, fmt.Errorf("starting the %s capture backend: %w", cfg.Mode, err)
	}
	d.mu.Lock()
	d.backend.Store(&backendBox{b})
	// Reload or tcpinc up/down while the backend was being built.
	if d.gen != gen {
		if err := b.Apply(d.policyLocked()); err != nil {
			d.log.Warn("applying the policy changed during start", "err", err)
		}
	}
	d.mu.Unlock()

	// Running means capturing: a backend that can say when its rules
	// are in (Ready) sets it then, others as Run starts. Only then is
	// capture available again.
	var readied atomic.Bool
	ready := func() {
		d.since.Store(time.Now().UnixNano())
		d.running.Store(true)
		readied.Store(true)
		d.mu.Lock()
		hadErr := d.captureErr != ""
		d.captureErr = ""
		d.mu.Unlock()
		if hadErr {
			d.log.Info("capture available again", "mode", b.Mode())
		}
	}
	runDone, readyExit := make(chan struct{}), make(chan struct{})
	if r, ok := b.(Readier); ok {
		go func() {
			defer close(readyExit)
			select {
			case <-r.Ready():
				ready()
			case <-runDone:
			}
		}()
	} else {
		close(readyExit)
		ready()
	}
	runErr := b.Run(ctx)
	close(runDone)
	<-readyExit
	d.running.Store(false)
	// No Apply may reach the backend once it is being closed.
	d.mu.Lock()
	d.backend.Store(nil)
	d.mu.Unlock()
	closeErr := b.Close()
	if runErr != nil {
		runErr = fmt.Errorf("the %s capture backend failed: %w", b.Mode(), runErr)
	}
	return readied.Load(), errors.Join(runErr, closeErr)
}

// setCaptureError records why capture is unavailable, and logs it when
// the reason is new.
func (d *Daemon) setCaptureError(err error, auto bool, wait time.Duration) {
	reason := err.Error()
	d.mu.Lock()
	same := d.captureErr == reason
	d.captureErr = reason
	d.mu.Unlock()
	if same {
		d.log.Debug("capture still unavailable", "reason", reason)
		return
	}
	hint := "tcpincd keeps running without capture; fix the cause, then run 'tcpinc reload' or restart the service"
	if auto {
		hint = fmt.Sprintf("tcpincd keeps running without capture and tries again in %v (or on 'tcpinc reload')", wait)
	}
	d.log.Error("capture unavailable: "+reason, "hint", hint)
}

// retryCaptureLocked asks the capture loop to try again, if capture is
// unavailable. Called with d.mu held.
func (d *Daemon) retryCaptureLocked() {
	if d.captureErr == "" {
		return
	}
	select {
	case d.retry <- struct{}{}:
	default:
	}
}

func (d *Daemon) configName() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.configNameLocked()
}

func (d *Daemon) configNameLocked() string {
	if !d.found {
		return ""
	}
	if d.opts.ConfigPath != "" {
		return d.opts.ConfigPath
	}
	return config.DefaultPath
}

// be returns the backend, or an error while there is none.
func (d *Daemon) be() (core.Backend, error) {
	box := d.backend.Load()
	if box == nil {
		d.mu.Lock()
		reason := d.captureErr
		d.mu.Unlock()
		if reason != "" {
			return nil, errors.New("capture unavailable: " + reason)
		}
		return nil, errors.New("tcpincd is starting; try again in a moment")
	}
	return box.b, nil
}

// applyLocked gives the backend, if there is one, the policy for the
// current configuration and toggle. Called with d.mu held.
func (d *Daemon) applyLocked() error {
	box := d.backend.Load()
	if box == nil {
		return nil // the next backend is built with it
	}
	return box.b.Apply(d.policyLocked())
}

// SetEnabled is tcpinc up / tcpinc down: new connections are (or are
// not) offered encryption; existing ones keep their state, so encrypted
// connections stay encrypted and keep working after tcpinc down.
//
// While capture is unavailable the state is kept for when it starts,
// and tcpinc up tries to start it again.
func (d *Daemon) SetEnabled(on bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	prev := d.enabled
	d.enabled = on
	if err := d.applyLocked(); err != nil {
		d.enabled = prev
		return fmt.Errorf("applying the policy: %w", err)
	}
	d.gen++
	if on {
		d.retryCaptureLocked()
	}
	d.toggles.Add(1)
	d.log.Info("encryption of new connections "+map[bool]string{true: "enabled", false: "disabled"}[on], "was", prev)
	return nil
}

// Reload reads the configuration file again and applies what can change
// at run time (policy keys, log level) without touching established
// connections. The enabled state set by tcpinc up/down is kept unless
// the file's enabled value changed. A file with errors changes nothing.
// While capture is unavailable, a reload also tries to start it again.
func (d *Daemon) Reload() (control.ReloadReply, error) {
	next, found, err := config.Load(d.opts.ConfigPath)
	if err != nil {
		d.reloadErrors.Add(1)
		d.log.Warn("reload failed; keeping the configuration in effect", "err", err)
		return control.ReloadReply{}, fmt.Errorf("reload: %w; the configuration in effect is unchanged", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	live, restart := config.Diff(d.cfg, next)
	// Keys that need a restart keep their running values, so that
	// status tells the truth.
	next.Mode = d.cfg.Mode
	next.Control = d.cfg.Control
	next.Queue, next.Queues = d.cfg.Queue, d.cfg.Queues
	next.MetricsListen = d.cfg.MetricsListen

	prevCfg, prevEnabled, prevFound := d.cfg, d.enabled, d.found
	d.cfg, d.found = next, found
	if next.Enabled != prevCfg.Enabled {
		d.enabled = next.Enabled
	}
	if err := d.applyLocked(); err != nil {
		d.cfg, d.enabled, d.found = prevCfg, prevEnabled, prevFound
		d.reloadErrors.Add(1)
		return control.ReloadReply{}, fmt.Errorf("reload: applying the policy: %w; the configuration in effect is unchanged", err)
	}
	d.gen++
	d.retryCaptureLocked()
	if d.opts.Level != nil {
		d.opts.Level.Set(next.LogLevel)
	}
	d.reloads.Add(1)
	if live == nil {
		live = []string{}
	}
	d.log.Info("configuration reloaded", "config", d.configNameLocked(), "applied", live, "need_restart", restart)
	return control.ReloadReply{Config: d.configNameLocked(), Applied: live, NeedRestart: restart}, nil
}

// Status answers tcpinc status.
func (d *Daemon) Status() (control.StatusReply, error) {
	d.mu.Lock()
	st := control.StatusReply{Version: version.String(), Mode: d.cfg.Mode, Enabled: d.enabled, Config: d.configNameLocked(),
		CaptureError: d.captureErr}
	d.mu.Unlock()
	st.Running = d.running.Load()
	if st.Running {
		st.Since = time.Unix(0, d.since.Load()).UTC().Format(time.RFC3339)
	}
	b, err := d.be()
	if err != nil {
		st.Counters = d.ownCounters()
		return st, nil
	}
	st.Mode = string(b.Mode())
	for _, ci := range b.Conns() {
		st.Conns++
		switch ci.State {
		case "encrypted":
			st.Encrypted++
		case "plain":
			st.Plain++
		}
	}
	st.Counters, _ = d.Counters()
	return st, nil
}

// Conns answers tcpinc conns.
func (d *Daemon) Conns() ([]control.ConnJSON, error) {
	b, err := d.be()
	if err != nil {
		return nil, err
	}
	cis := b.Conns()
	out := make([]control.ConnJSON, 0, len(cis))
	for _, ci := range cis {
		out = append(out, control.FromConnInfo(ci))
	}
	return out, nil
}

// ownCounters are the daemon's own counters and its control socket's.
func (d *Daemon) ownCounters() map[string]uint64 {
	m := map[string]uint64{
		"service_reloads":        d.reloads.Load(),
		"service_reload_errors":  d.reloadErrors.Load(),
		"service_toggles":        d.toggles.Load(),
		"service_metrics_scrape": d.metricsScrapes.Load(),
	}
	if ln := d.ctl.Load(); ln != nil {
		st := ln.Stats()
		m["service_control_conns"] = st.Conns
		m["service_control_requests"] = st.Requests
		m["service_control_bad_requests"] = st.BadRequests
		m["service_control_refused"] = st.Refused
		m["service_control_failed"] = st.Failed
		m["service_control_unidentified"] = st.Unidentified
	}
	return m
}

// Counters answers tcpinc status --json's counters: the backend's and
// the daemon's own (service_*).
func (d *Daemon) Counters() (map[string]uint64, error) {
	m := d.ownCounters()
	if b, err := d.be(); err == nil {
		for k, v := range b.Counters() {
			m[k] = v
		}
	}
	return m, nil
}

// Lookup answers the tcpinc API's per-connection questions.
func (d *Daemon) Lookup(p control.LookupParams) (control.LookupReply, error) {
	local, err := netip.ParseAddrPort(p.Local)
	if err != nil {
		return control.LookupReply{}, fmt.Errorf("local address %q: %w", p.Local, err)
	}
	remote, err := netip.ParseAddrPort(p.Remote)
	if err != nil {
		return control.LookupReply{}, fmt.Errorf("remote address %q: %w", p.Remote, err)
	}
	b, err := d.be()
	if err != nil {
		return control.LookupReply{}, err
	}
	d.mu.Lock()
	aa := d.cfg.AAMandatory
	d.mu.Unlock()
	ci, ok := b.Lookup(canon(local), canon(remote))
	return LookupAnswer(local, remote, ci, ok, aa), nil
}

// canon unmaps IPv4-mapped IPv6 addresses, as the backends key them.
func canon(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
}

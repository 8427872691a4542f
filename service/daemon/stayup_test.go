package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/service/config"
	"tcpinc.dev/tcpinc/service/control"
)

// syncBuffer is a log sink the daemon's goroutines may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// stayUp runs a daemon with StayUp whose backend constructor is newB.
type stayUpHarness struct {
	d      *Daemon
	cl     *control.Client
	log    *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

func startStayUp(t *testing.T, retryMin time.Duration, newB NewBackendFunc) *stayUpHarness {
	t.Helper()
	cfg := config.Default()
	cfg.Control.Socket = filepath.Join(shortDir(t), "c.sock")
	h := &stayUpHarness{log: &syncBuffer{}, done: make(chan error, 1)}
	var err error
	h.d, err = New(Options{Config: cfg, StayUp: true, RetryMin: retryMin, RetryMax: 4 * retryMin,
		Log: slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug})), NewBackend: newB})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.d.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if h.cl, err = control.Dial(cfg.Control.Socket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not start: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Cleanup(func() {
		h.cl.Close()
		cancel()
		select {
		case err := <-h.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return")
		}
	})
	return h
}

// waitStatus polls the status until ok accepts it.
func (h *stayUpHarness) waitStatus(t *testing.T, what string, ok func(*control.StatusReply) bool) *control.StatusReply {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := h.cl.Status()
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStayUpWhenCaptureCannotStart(t *testing.T) {
	var calls atomic.Int32
	var broken atomic.Bool
	broken.Store(true)
	fb := &fakeBackend{conns: testConns()}
	h := startStayUp(t, time.Millisecond, func(c *config.Config, p core.Policy, _ *slog.Logger) (core.Backend, error) {
		calls.Add(1)
		if broken.Load() {
			return nil, errors.New("WinDivert has no signed arm64 driver")
		}
		fb.mu.Lock()
		fb.policies = append(fb.policies, p)
		fb.mu.Unlock()
		return fb, nil
	})
	st := h.waitStatus(t, "capture error reported", func(st *control.StatusReply) bool { return st.CaptureError != "" })
	if st.Running || !strings.Contains(st.CaptureError, "WinDivert has no signed arm64 driver") || !st.Enabled {
		t.Errorf("status without capture: %+v", st)
	}
	// Questions about connections say why there is no answer.
	if _, err := h.cl.Conns(); err == nil || !strings.Contains(err.Error(), "capture unavailable: ") {
		t.Errorf("conns without capture: %v", err)
	}
	if _, err := h.cl.Lookup(addrA, addrB); err == nil || !strings.Contains(err.Error(), "capture unavailable: ") {
		t.Errorf("lookup without capture: %v", err)
	}
	if m, _ := h.cl.Metrics(); !strings.Contains(m, "tcpinc_capture_unavailable 1\n") || !strings.Contains(m, "tcpinc_up 0\n") {
		t.Errorf("metrics without capture:\n%s", m)
	}
	// A start failure is not retried by itself.
	time.Sleep(50 * time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Errorf("backend built %d times without a reload; want once", n)
	}
	// tcpinc down is kept for later; a reload that fails the same way
	// logs nothing new.
	if err := h.cl.SetEnabled(false); err != nil {
		t.Fatalf("down without capture: %v", err)
	}
	if _, err := h.cl.Reload(); err != nil {
		t.Fatalf("reload without capture: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("backend built %d times after a reload; want twice", n)
	}
	h.waitStatus(t, "still unavailable", func(st *control.StatusReply) bool { return st.CaptureError != "" && !st.Running })
	if n := strings.Count(h.log.String(), "capture unavailable: "); n != 1 {
		t.Errorf("the reason was logged %d times; want once:\n%s", n, h.log)
	}
	// Fixed: tcpinc up starts capture, with the state set meanwhile.
	broken.Store(false)
	if err := h.cl.SetEnabled(true); err != nil {
		t.Fatal(err)
	}
	st = h.waitStatus(t, "capture after up", func(st *control.StatusReply) bool { return st.Running })
	if st.CaptureError != "" || !st.Enabled || st.Conns != 3 {
		t.Errorf("status with capture: %+v", st)
	}
	if p := fb.lastPolicy(); !p.Enabled {
		t.Errorf("backend built with %+v, want enabled", p)
	}
	if !strings.Contains(h.log.String(), "capture available again") {
		t.Errorf("no log of the recovery:\n%s", h.log)
	}
	if m, _ := h.cl.Metrics(); !strings.Contains(m, "tcpinc_capture_unavailable 0\n") || !strings.Contains(m, "tcpinc_up 1\n") {
		t.Errorf("metrics with capture:\n%s", m)
	}
}

// failingBackend captures, then fails after a while (once).
type failingBackend struct {
	fakeBackend
	failAfter time.Duration
}

func (f *failingBackend) Run(ctx context.Context) error {
	if f.failAfter > 0 {
		select {
		case <-time.After(f.failAfter):
			return errors.New("the driver went away")
		case <-ctx.Done():
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

func TestStayUpRetriesAfterRunFailure(t *testing.T) {
	var calls atomic.Int32
	var closed atomic.Int32
	h := startStayUp(t, 20*time.Millisecond, func(c *config.Config, p core.Policy, _ *slog.Logger) (core.Backend, error) {
		n := calls.Add(1)
		switch n {
		case 1: // captures, then fails
			return &closeCounter{Backend: &failingBackend{failAfter: 30 * time.Millisecond}, n: &closed}, nil
		case 2: // the first retry cannot start
			return nil, errors.New("driver not there yet")
		}
		return &closeCounter{Backend: &failingBackend{}, n: &closed}, nil
	})
	h.waitStatus(t, "capture again after the automatic retries", func(st *control.StatusReply) bool {
		return st.Running && calls.Load() == 3
	})
	if closed.Load() != 1 {
		t.Errorf("failed backend closed %d times, want 1", closed.Load())
	}
	log := h.log.String()
	for _, want := range []string{"capture unavailable: the divert capture backend failed: the driver went away", "tries again in 20ms",
		"capture unavailable: starting the auto capture backend: driver not there yet", "tries again in 40ms", "capture available again"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

type closeCounter struct {
	core.Backend
	n *atomic.Int32
}

func (c *closeCounter) Close() error { c.n.Add(1); return c.Backend.Close() }

// Without StayUp a backend that cannot start ends Run, as before: the
// foreground tcpincd exits non-zero (TestBackendFailureStops covers the
// rest).
func TestNoStayUpReturnsStartError(t *testing.T) {
	cfg := config.Default()
	cfg.Control.Socket = filepath.Join(shortDir(t), "c.sock")
	d, _ := New(Options{Config: cfg, RetryMin: time.Millisecond, NewBackend: func(*config.Config, core.Policy, *slog.Logger) (core.Backend, error) {
		return nil, errors.New("no driver")
	}})
	done := make(chan error, 1)
	go func() { done <- d.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no driver") {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run without StayUp kept running after the backend could not start")
	}
}

// A backend that builds but fails in Run before it captures (say, the
// driver refuses the first handle) is a start failure: reported once,
// not retried by itself, and never reported as available.
func TestStayUpRunFailsBeforeReady(t *testing.T) {
	var calls atomic.Int32
	h := startStayUp(t, time.Millisecond, func(*config.Config, core.Policy, *slog.Logger) (core.Backend, error) {
		calls.Add(1)
		return &readyBackend{fakeBackend: fakeBackend{runErr: errors.New("handle refused")}, ready: make(chan struct{})}, nil
	})
	h.waitStatus(t, "capture error reported", func(st *control.StatusReply) bool { return st.CaptureError != "" })
	for i := range 2 {
		if _, err := h.cl.Reload(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for calls.Load() < int32(i+2) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	time.Sleep(30 * time.Millisecond)
	if n := calls.Load(); n != 3 {
		t.Errorf("backend built %d times; want 3 (start and two reloads, no automatic retry)", n)
	}
	st, _ := h.cl.Status()
	if st.Running || !strings.Contains(st.CaptureError, "the divert capture backend failed: handle refused") {
		t.Errorf("status %+v", st)
	}
	log := h.log.String()
	if n := strings.Count(log, "capture unavailable: "); n != 1 || strings.Contains(log, "available again") {
		t.Errorf("reason logged %d times (want 1), or reported available:\n%s", n, log)
	}
}

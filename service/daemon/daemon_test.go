package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
	"tcpinc.dev/tcpinc/service/config"
	"tcpinc.dev/tcpinc/service/control"
)

// fakeBackend records what the daemon does to it.
type fakeBackend struct {
	mu       sync.Mutex
	policies []core.Policy
	conns    []core.ConnInfo
	closed   int
	applyErr error
	runErr   error
}

func (f *fakeBackend) Mode() core.Mode { return core.ModeDivert }
func (f *fakeBackend) Run(ctx context.Context) error {
	if f.runErr != nil {
		return f.runErr
	}
	<-ctx.Done()
	return nil
}
func (f *fakeBackend) Close() error { f.mu.Lock(); f.closed++; f.mu.Unlock(); return nil }
func (f *fakeBackend) Conns() []core.ConnInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.conns)
}
func (f *fakeBackend) Lookup(l, r netip.AddrPort) (core.ConnInfo, bool) {
	for _, c := range f.Conns() {
		if c.Local == l && c.Remote == r {
			return c, true
		}
	}
	return core.ConnInfo{}, false
}
func (f *fakeBackend) Counters() map[string]uint64 {
	return map[string]uint64{"engine_conns_encrypted": 1, "engine_packets_inbound": 7}
}
func (f *fakeBackend) Apply(p core.Policy) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.applyErr != nil {
		return f.applyErr
	}
	f.policies = append(f.policies, p)
	return nil
}
func (f *fakeBackend) lastPolicy() core.Policy {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.policies[len(f.policies)-1]
}

var (
	addrA = netip.MustParseAddrPort("10.0.0.1:40000")
	addrB = netip.MustParseAddrPort("10.0.0.2:80")
	sid   = []byte{0x23, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}
)

func testConns() []core.ConnInfo {
	return []core.ConnInfo{
		{Mode: core.ModeDivert, Local: addrA, Remote: addrB, State: "encrypted", Role: eno.RoleA,
			TEP: eno.TEPTcpcryptCurve25519, NegTEP: byte(eno.TEPTcpcryptCurve25519), AEAD: tcpcrypt.AES128GCM,
			SessionID: sid, SelfGOpt: 0, PeerGOpt: eno.GlobalB, BytesOut: 10, BytesIn: 20},
		{Mode: core.ModeDivert, Local: addrA, Remote: netip.MustParseAddrPort("10.0.0.3:22"), State: "plain", PlainReason: eno.Reason(1)},
		{Mode: core.ModeDivert, Local: addrA, Remote: netip.MustParseAddrPort("10.0.0.4:443"), State: "negotiating"},
	}
}

func shortDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "tcis")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type harness struct {
	d       *Daemon
	fb      *fakeBackend
	cfgPath string
	sock    string
	cl      *control.Client
	done    chan error
	cancel  context.CancelFunc
	level   *slog.LevelVar
}

func start(t *testing.T, file string) *harness {
	t.Helper()
	dir := shortDir(t)
	h := &harness{fb: &fakeBackend{conns: testConns()}, cfgPath: filepath.Join(dir, "tcpincd.toml"), sock: filepath.Join(dir, "c.sock"), level: new(slog.LevelVar)}
	file = strings.ReplaceAll(file, "SOCK", h.sock)
	if err := os.WriteFile(h.cfgPath, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, found, err := config.Load(h.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var gotPolicy core.Policy
	h.d, err = New(Options{ConfigPath: h.cfgPath, Config: cfg, Found: found, Level: h.level,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		NewBackend: func(c *config.Config, p core.Policy, log *slog.Logger) (core.Backend, error) {
			gotPolicy = p
			h.fb.policies = append(h.fb.policies, p)
			return h.fb, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.d.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.cl, err = control.Dial(h.sock)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for !h.d.running.Load() {
		time.Sleep(time.Millisecond)
	}
	_ = gotPolicy
	t.Cleanup(func() { h.stop(t) })
	return h
}

func (h *harness) stop(t *testing.T) {
	if h.cancel == nil {
		return
	}
	h.cl.Close()
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestStatusConnsCountersMetrics(t *testing.T) {
	metrics := freePort(t)
	h := start(t, "[control]\nsocket = \"SOCK\"\n[metrics]\nlisten = \""+metrics+"\"\n")
	st, err := h.cl.Status()
	if err != nil {
		t.Fatal(err)
	}
	if !st.Running || !st.Enabled || st.Mode != "divert" || st.Conns != 3 || st.Encrypted != 1 || st.Plain != 1 ||
		st.Counters["engine_packets_inbound"] != 7 || st.Config != h.cfgPath || st.Since == "" {
		t.Errorf("status %+v", st)
	}
	cs, err := h.cl.Conns()
	if err != nil || len(cs) != 3 || cs[0].SessionID != "23"+"0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20" || cs[0].Mode != "divert" {
		t.Errorf("conns %+v %v", cs, err)
	}
	m, err := h.cl.Counters()
	if err != nil || m["engine_conns_encrypted"] != 1 || m["service_reloads"] != 0 || m["service_control_requests"] < 3 || m["service_control_conns"] < 1 {
		t.Errorf("counters %v %v", m, err)
	}
	text, err := h.cl.Metrics()
	for _, want := range []string{"tcpinc_up 1\n", "tcpinc_enabled 1\n", `tcpinc_connections{state="encrypted"} 1`, "tcpinc_engine_packets_inbound 7\n", "# TYPE tcpinc_connections gauge"} {
		if err != nil || !strings.Contains(text, want) {
			t.Errorf("metrics lack %q (%v):\n%s", want, err, text)
		}
	}
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") || !strings.Contains(string(body), "tcpinc_up 1") {
		t.Errorf("GET /metrics: %d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	v, err := h.cl.Version()
	if err != nil || v.Protocol != control.ProtocolVersion || v.Version == "" {
		t.Errorf("version %+v %v", v, err)
	}
}

func TestLookup(t *testing.T) {
	h := start(t, "aa_mandatory = false\n[control]\nsocket = \"SOCK\"\n")
	r, err := h.cl.Lookup(addrA, addrB)
	if err != nil {
		t.Fatal(err)
	}
	want := control.LookupReply{Local: addrA.String(), Remote: addrB.String(), Tracked: true, Mode: "divert", State: "encrypted",
		ENOEnabled: true, SessionID: "230102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
		Role: "A", RoleBit: 0, NegTEP: 0x23, TEP: "TCPCRYPT_ECDHE_Curve25519", SelfGOpt: 0, PeerGOpt: 1,
		SelfName: "00230102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
		PeerName: "01230102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
		AEAD:     "AEAD_AES_128_GCM", AEADID: 1}
	if *r != want {
		t.Errorf("lookup\n%+v\nwant\n%+v", *r, want)
	}
	// IPv4-mapped addresses find the same connection.
	mapped := netip.AddrPortFrom(netip.AddrFrom16(addrA.Addr().As16()), addrA.Port())
	if r, err := h.cl.Lookup(mapped, addrB); err != nil || r.SessionID != want.SessionID {
		t.Errorf("mapped lookup %+v %v", r, err)
	}
	for _, tc := range []struct {
		remote     string
		errno      string
		state, why string
	}{
		{"10.0.0.3:22", control.ErrnoInval, "plain", "not in effect"},
		{"10.0.0.4:443", control.ErrnoNotConn, "negotiating", "still being negotiated"},
		{"10.0.0.9:1", control.ErrnoInval, "untracked", "does not track"},
	} {
		r, err := h.cl.Lookup(addrA, netip.MustParseAddrPort(tc.remote))
		if err != nil || r.Errno != tc.errno || r.State != tc.state || !strings.Contains(r.Reason, tc.why) ||
			r.ENOEnabled || r.SessionID != "" || r.SelfName != "" || r.Role != "" {
			t.Errorf("%s: %+v %v", tc.remote, r, err)
		}
	}
}

func TestUpDownReload(t *testing.T) {
	h := start(t, "exclude_ports = [22]\n[control]\nsocket = \"SOCK\"\n")
	if p := h.fb.lastPolicy(); !p.Enabled || !slices.Equal(p.ExcludePorts, []uint16{22}) {
		t.Fatalf("initial policy %+v", p)
	}
	if err := h.cl.SetEnabled(false); err != nil {
		t.Fatal(err)
	}
	if p := h.fb.lastPolicy(); p.Enabled || !slices.Equal(p.ExcludePorts, []uint16{22}) {
		t.Errorf("after down: %+v", p)
	}
	if st, _ := h.cl.Status(); st.Enabled {
		t.Error("status still enabled after down")
	}
	// Reload with other policy keys keeps tcpinc down in effect.
	os.WriteFile(h.cfgPath, []byte("exclude_ports = [22, 53]\nmode = \"redirect\"\n[log]\nlevel = \"debug\"\n[control]\nsocket = \""+h.sock+"\"\n"), 0o644)
	r, err := h.cl.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Applied, []string{"exclude_ports", "log.level"}) || !slices.Equal(r.NeedRestart, []string{"mode"}) || r.Config != h.cfgPath {
		t.Errorf("reload reply %+v", r)
	}
	if p := h.fb.lastPolicy(); p.Enabled || !slices.Equal(p.ExcludePorts, []uint16{22, 53}) {
		t.Errorf("after reload: %+v", p)
	}
	if h.level.Level() != slog.LevelDebug {
		t.Errorf("log level %v after reload", h.level.Level())
	}
	if st, _ := h.cl.Status(); st.Mode != "divert" {
		t.Errorf("mode %q after reload; a restart-only key must keep its running value", st.Mode)
	}
	// A file whose enabled value changed wins over the toggle.
	os.WriteFile(h.cfgPath, []byte("enabled = false\n[control]\nsocket = \""+h.sock+"\"\n"), 0o644)
	h.cl.SetEnabled(true)
	if _, err := h.cl.Reload(); err != nil {
		t.Fatal(err)
	}
	if p := h.fb.lastPolicy(); p.Enabled {
		t.Errorf("enabled = false in the file did not take effect: %+v", p)
	}
	// A broken file changes nothing.
	n := len(h.fb.policies)
	os.WriteFile(h.cfgPath, []byte("enabled = maybe\n"), 0o644)
	if _, err := h.cl.Reload(); err == nil || !strings.Contains(err.Error(), "unchanged") {
		t.Errorf("reload of a broken file: %v", err)
	}
	if len(h.fb.policies) != n {
		t.Error("a broken file was applied")
	}
	// A backend that refuses the policy leaves the state as it was.
	h.fb.mu.Lock()
	h.fb.applyErr = errors.New("no")
	h.fb.mu.Unlock()
	if err := h.cl.SetEnabled(true); err == nil {
		t.Error("SetEnabled: no error from a refusing backend")
	}
	if st, _ := h.cl.Status(); st.Enabled {
		t.Error("enabled although the backend refused")
	}
	c, _ := h.cl.Counters()
	if c["service_reloads"] != 2 || c["service_reload_errors"] != 1 || c["service_toggles"] != 2 {
		t.Errorf("counters %v", c)
	}
	h.stop(t)
	if h.fb.closed == 0 {
		t.Error("backend not closed")
	}
	if _, err := os.Lstat(h.sock); !errors.Is(err, os.ErrNotExist) {
		t.Error("socket left behind")
	}
}

func TestBackendFailureStops(t *testing.T) {
	dir := shortDir(t)
	cfg := config.Default()
	cfg.Control.Socket = filepath.Join(dir, "c.sock")
	fb := &fakeBackend{runErr: errors.New("queue vanished")}
	d, _ := New(Options{Config: cfg, NewBackend: func(*config.Config, core.Policy, *slog.Logger) (core.Backend, error) { return fb, nil }})
	err := d.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "queue vanished") || fb.closed == 0 {
		t.Errorf("Run: %v, closed %d", err, fb.closed)
	}
	// A constructor error is reported and leaves no socket behind.
	d, _ = New(Options{Config: cfg, NewBackend: func(*config.Config, core.Policy, *slog.Logger) (core.Backend, error) {
		return nil, errors.New("no NFQUEUE")
	}})
	if err := d.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "no NFQUEUE") {
		t.Errorf("Run: %v", err)
	}
	if _, err := os.Lstat(cfg.Control.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Error("socket left behind")
	}
}

// readyBackend says when its rules are in.
type readyBackend struct {
	fakeBackend
	ready chan struct{}
}

func (r *readyBackend) Ready() <-chan struct{} { return r.ready }

func TestRunningOnlyWhenReady(t *testing.T) {
	dir := shortDir(t)
	cfg := config.Default()
	cfg.Control.Socket = filepath.Join(dir, "c.sock")
	rb := &readyBackend{ready: make(chan struct{})}
	d, _ := New(Options{Config: cfg, NewBackend: func(*config.Config, core.Policy, *slog.Logger) (core.Backend, error) { return rb, nil }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var cl *control.Client
	for {
		var err error
		if cl, err = control.Dial(cfg.Control.Socket); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	defer cl.Close()
	if st, _ := cl.Status(); st.Running {
		t.Error("running before the backend is ready")
	}
	close(rb.ready)
	deadline := time.Now().Add(5 * time.Second)
	for st, _ := cl.Status(); !st.Running; st, _ = cl.Status() {
		if time.Now().After(deadline) {
			t.Fatal("not running after ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

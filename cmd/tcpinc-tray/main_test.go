package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/cmd/tcpinc-tray/internal/fakectl"
	"tcpinc.dev/tcpinc/cmd/tcpinc-tray/internal/tray"
	"tcpinc.dev/tcpinc/service/cli"
	"tcpinc.dev/tcpinc/service/control"
	"tcpinc.dev/tcpinc/service/control/controltest"
)

func TestParseArgs(t *testing.T) {
	t.Setenv("TCPINC_CONTROL", "")
	o, err := parseArgs(nil, io.Discard)
	if err != nil || o.control != control.DefaultPath || o.interval != 3*time.Second {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	o, err = parseArgs([]string{"--control", "/tmp/x.sock", "--interval", "10s"}, io.Discard)
	if err != nil || o.control != "/tmp/x.sock" || o.interval != 10*time.Second {
		t.Errorf("flags: %+v, %v", o, err)
	}
	t.Setenv("TCPINC_CONTROL", "/env.sock")
	if o, _ := parseArgs(nil, io.Discard); o.control != "/env.sock" {
		t.Errorf("TCPINC_CONTROL ignored: %q", o.control)
	}

	var out bytes.Buffer
	_, err = parseArgs([]string{"--help"}, &out)
	if !errors.Is(err, flag.ErrHelp) || exitCode(err, io.Discard) != cli.ExitOK {
		t.Errorf("--help: %v", err)
	}
	for _, want := range []string{"Usage: tcpinc-tray", "--control path", "--interval", "green shield"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if _, err := parseArgs([]string{"--version"}, &out); exitCode(err, io.Discard) != cli.ExitOK || !strings.HasPrefix(out.String(), "tcpinc-tray ") {
		t.Errorf("--version: %v, %q", err, out.String())
	}
	for _, args := range [][]string{{"--bogus"}, {"extra"}, {"--interval", "1ms"}, {"--interval", "soon"}} {
		var stderr bytes.Buffer
		_, err := parseArgs(args, io.Discard)
		if code := exitCode(err, &stderr); code != cli.ExitUsage || !strings.Contains(stderr.String(), "--help") {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr.String())
		}
	}
	if exitCode(nil, io.Discard) != -1 {
		t.Error("no error should mean go on")
	}
}

type recUI struct {
	mu sync.Mutex
	v  tray.View
}

func (u *recUI) Render(v tray.View) { u.mu.Lock(); u.v = v; u.mu.Unlock() }
func (u *recUI) view() tray.View    { u.mu.Lock(); defer u.mu.Unlock(); return u.v }

// realTray serves a fake tcpincd in state (with enc encrypted and plain
// plain connections) on a fresh Unix socket, and makes a controller that
// reaches it through the real control client; the test's cleanup closes
// the controller, then stops the fake. The fake listens on AF_UNIX, so
// the test is skipped on Windows.
func realTray(t *testing.T, state string, enc, plain int) (path string, d *fakectl.Daemon, stop func(), ui *recUI, c *tray.Controller) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the fake server's AF_UNIX socket is exercised on Unix")
	}
	path = controltest.SockPath(t)
	d, err := fakectl.New(state, enc, plain)
	if err != nil {
		t.Fatal(err)
	}
	stop = controltest.Serve(t, path, d)
	ui = &recUI{}
	c = tray.NewController(dialer(path), ui, path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { c.Close() })
	return path, d, stop, ui, c
}

// TestRealClient drives the controller through the real control client
// and server: status fields, toggling, refusal and a daemon restart.
func TestRealClient(t *testing.T) {
	path, d, stop, ui, c := realTray(t, "encrypted", 3, 2)

	c.Poll()
	v := ui.view()
	if v.State != tray.StateEncrypted || v.CountsLine != "Encrypted: 3   Plain: 2" || v.Details[0] != "tcpincd version: 0.1.0-fake" {
		t.Fatalf("first view: %+v", v)
	}
	c.Toggle()
	if v := ui.view(); v.State != tray.StateOff {
		t.Fatalf("after toggle: state %v, notice %q", v.State, v.Notice)
	}
	c.Toggle()
	if v := ui.view(); v.State != tray.StateEncrypted {
		t.Fatalf("after second toggle: state %v, notice %q", v.State, v.Notice)
	}

	d.DenyToggle()
	c.Toggle()
	v = ui.view()
	if v.State != tray.StateEncrypted || !strings.Contains(v.Notice, "permission denied") {
		t.Fatalf("refused toggle: state %v, notice %q", v.State, v.Notice)
	}

	// tcpincd stops, then comes back.
	stop()
	c.Poll()
	if v := ui.view(); v.State != tray.StateError || v.StatusLine != "tcpincd is not running" {
		t.Fatalf("daemon stopped: %+v", v)
	}
	d2, _ := fakectl.New("on", 0, 1)
	controltest.Serve(t, path, d2)
	c.Poll()
	if v := ui.view(); v.State != tray.StateOn || v.CountsLine != "Encrypted: 0   Plain: 1" {
		t.Fatalf("daemon back: %+v", v)
	}
}

// TestRealClientCaptureUnavailable: a tcpincd that runs without capture
// (a Windows service without its driver) sends capture_error in its
// status; the tray gets it through the real client and shows the reason.
func TestRealClientCaptureUnavailable(t *testing.T) {
	_, _, _, ui, c := realTray(t, "unavailable", 0, 0)
	c.Poll()
	v := ui.view()
	if v.State != tray.StateError || v.StatusLine != "Capture unavailable" || v.Notice != fakectl.CaptureError ||
		v.Tooltip != "tcpinc: capture unavailable\n"+fakectl.CaptureError || !v.ToggleEnabled {
		t.Fatalf("view: %+v", v)
	}
}

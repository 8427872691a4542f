package tray

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"tcpinc.dev/tcpinc/cmd/tcpinc-tray/icons"
	"tcpinc.dev/tcpinc/service/control"
)

// fakeDaemon stands in for tcpincd. It is shared by every connection the
// fake dialer hands out, like a real daemon is.
type fakeDaemon struct {
	mu      sync.Mutex
	st      Status
	down    bool  // not running: Dial fails with UnreachableError
	setErr  error // SetEnabled's refusal (permission), if any
	dials   int
	closes  int
	sets    []bool
	restart bool // connections dialled before a restart break
	gen     int
}

type fakeConn struct {
	f   *fakeDaemon
	gen int
}

func (f *fakeDaemon) dial() (Daemon, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dials++
	if f.down {
		return nil, &control.UnreachableError{Path: "/run/test.sock", Err: errors.New("connection refused")}
	}
	return &fakeConn{f: f, gen: f.gen}, nil
}

func (c *fakeConn) Status() (Status, error) {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.f.down || c.gen != c.f.gen {
		return Status{}, errors.New("reading tcpincd's status reply: EOF")
	}
	return c.f.st, nil
}

func (c *fakeConn) SetEnabled(on bool) error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.f.down || c.gen != c.f.gen {
		return errors.New("sending set-enabled request to tcpincd: broken pipe")
	}
	c.f.sets = append(c.f.sets, on)
	if c.f.setErr != nil {
		return c.f.setErr
	}
	c.f.st.Enabled = on
	return nil
}

func (c *fakeConn) Close() error {
	c.f.mu.Lock()
	c.f.closes++
	c.f.mu.Unlock()
	return nil
}

type fakeUI struct {
	mu    sync.Mutex
	views []View
}

func (u *fakeUI) Render(v View) {
	u.mu.Lock()
	u.views = append(u.views, v)
	u.mu.Unlock()
}

func (u *fakeUI) last(t *testing.T) View {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.views) == 0 {
		t.Fatal("nothing rendered")
	}
	return u.views[len(u.views)-1]
}

func newTest(f *fakeDaemon) (*Controller, *fakeUI) {
	ui := &fakeUI{}
	c := NewController(f.dial, ui, "/run/test.sock", slog.New(slog.NewTextHandler(io.Discard, nil)))
	return c, ui
}

var running = Status{Version: "0.1.0", Mode: "divert", Running: true, Enabled: true}

func TestComputeStates(t *testing.T) {
	enc := running
	enc.Encrypted, enc.Plain, enc.Conns = 3, 5, 9
	one := running
	one.Encrypted, one.Plain, one.Conns = 1, 1, 2
	on := running
	on.Plain, on.Conns = 2, 2
	off := running
	off.Enabled, off.Plain, off.Conns = false, 4, 4
	stopped := running
	stopped.Running = false
	// A service that stays up without capture (daemon StayUp).
	const reason = "starting the auto capture backend: WinDivert has no signed arm64 driver"
	noCapture := Status{Version: "0.1.0", Mode: "auto", Enabled: true, CaptureError: reason}
	noCaptureOff := noCapture
	noCaptureOff.Enabled = false
	for _, tc := range []struct {
		name    string
		st      Status
		err     error
		state   State
		icon    icons.Name
		status  string
		counts  string
		toggle  string
		canTog  bool
		title   string
		tooltip string
		notice  string
	}{
		{"encrypted", enc, nil, StateEncrypted, icons.Encrypted, "Encrypting: 3 encrypted connections", "Encrypted: 3   Plain: 5", "Turn encryption off", true, "3", "tcpinc: 3 encrypted connections, 5 plain", ""},
		{"one", one, nil, StateEncrypted, icons.Encrypted, "Encrypting: 1 encrypted connection", "Encrypted: 1   Plain: 1", "Turn encryption off", true, "1", "tcpinc: 1 encrypted connection, 1 plain", ""},
		{"on", on, nil, StateOn, icons.On, "On, no encrypted connections", "Encrypted: 0   Plain: 2", "Turn encryption off", true, "", "tcpinc: on, no encrypted connections (2 plain)", ""},
		{"off", off, nil, StateOff, icons.Off, "Encryption is off", "Encrypted: 0   Plain: 4", "Turn encryption on", true, "", "tcpinc: encryption is off", ""},
		{"not capturing", stopped, nil, StateError, icons.Error, "On, but not capturing packets", "Encrypted: 0   Plain: 0", "Turn encryption off", true, "", "tcpinc: on, but tcpincd is not capturing packets", "tcpincd is not capturing: see its log"},
		{"capture unavailable", noCapture, nil, StateError, icons.Error, "Capture unavailable", "Encrypted: 0   Plain: 0", "Turn encryption off", true, "", "tcpinc: capture unavailable\n" + reason, reason},
		{"capture unavailable, off", noCaptureOff, nil, StateError, icons.Error, "Capture unavailable", "Encrypted: 0   Plain: 0", "Turn encryption on", true, "", "tcpinc: capture unavailable\n" + reason, reason},
		{"unreachable", Status{}, &control.UnreachableError{Path: "/x", Err: errors.New("refused")}, StateError, icons.Error, "tcpincd is not running", "Encrypted: ?   Plain: ?", "Turn encryption on/off", false, "", "", "Start the tcpincd service; this icon reconnects by itself"},
		{"permission", Status{}, &control.Error{Code: control.CodePermission, Msg: "permission denied on /run/tcpinc/tcpincd.sock: run as root, or as a member of the socket's group"}, StateError, icons.Error, "No permission to ask tcpincd", "Encrypted: ?   Plain: ?", "Turn encryption on/off", false, "", "", "permission denied on /run/tcpinc/tcpincd.sock: run as root, or as a member of the socket's group"},
		{"os permission", Status{}, fmt.Errorf("connecting to tcpincd: %w", fs.ErrPermission), StateError, icons.Error, "No permission to ask tcpincd", "Encrypted: ?   Plain: ?", "Turn encryption on/off", false, "", "", "connecting to tcpincd: permission denied"},
		{"other", Status{}, errors.New("malformed status reply from tcpincd: unexpected EOF"), StateError, icons.Error, "Cannot get tcpincd's status", "Encrypted: ?   Plain: ?", "Turn encryption on/off", false, "", "", "malformed status reply from tcpincd: unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Compute(tc.st, tc.err, "", "/run/test.sock")
			if v.State != tc.state || v.Icon != tc.icon {
				t.Errorf("state %v icon %v, want %v %v", v.State, v.Icon, tc.state, tc.icon)
			}
			if v.StatusLine != tc.status {
				t.Errorf("status line %q, want %q", v.StatusLine, tc.status)
			}
			if v.CountsLine != tc.counts {
				t.Errorf("counts line %q, want %q", v.CountsLine, tc.counts)
			}
			if v.ToggleLabel != tc.toggle || v.ToggleEnabled != tc.canTog {
				t.Errorf("toggle %q enabled %v, want %q %v", v.ToggleLabel, v.ToggleEnabled, tc.toggle, tc.canTog)
			}
			if v.Title != tc.title {
				t.Errorf("title %q, want %q", v.Title, tc.title)
			}
			if tc.tooltip != "" && v.Tooltip != tc.tooltip {
				t.Errorf("tooltip %q, want %q", v.Tooltip, tc.tooltip)
			}
			if tc.err != nil && !strings.Contains(v.Tooltip, tc.status) {
				t.Errorf("error tooltip %q does not say %q", v.Tooltip, tc.status)
			}
			if v.Notice != tc.notice {
				t.Errorf("notice %q, want %q", v.Notice, tc.notice)
			}
			if v.Details[DetailLines-1] != "Control socket: /run/test.sock" {
				t.Errorf("details end with %q", v.Details[DetailLines-1])
			}
		})
	}
}

// A capture error too long for the tooltip and the menu is cut to fit
// both, keeping its start, and its first line only.
func TestComputeLongCaptureError(t *testing.T) {
	reason := "opening the WinDivert driver: " + strings.Repeat("the driver could not be loaded ", 10) + "\nsecond line"
	v := Compute(Status{Enabled: true, CaptureError: reason}, nil, "", "/s")
	if v.State != StateError {
		t.Fatalf("state %v", v.State)
	}
	if n := len(utf16.Encode([]rune(v.Tooltip))); n != MaxTooltip || !strings.HasPrefix(v.Tooltip, "tcpinc: capture unavailable\nopening the WinDivert driver: ") || !strings.HasSuffix(v.Tooltip, "…") {
		t.Errorf("tooltip of %d units: %q", n, v.Tooltip)
	}
	if v.NoticeLines[0] != "opening the WinDivert driver: the driver could not" || v.NoticeLines[2] == "" || !strings.HasSuffix(v.Notice, "…") {
		t.Errorf("notice %q in lines %q", v.Notice, v.NoticeLines)
	}
	if strings.Contains(v.Tooltip+v.Notice, "second line") {
		t.Errorf("second line shown: %q / %q", v.Tooltip, v.Notice)
	}
	// The outcome of an action takes the notice; the tooltip keeps the reason.
	v = Compute(Status{Enabled: true, CaptureError: "no driver"}, nil, "Could not turn encryption off: x", "/s")
	if v.Notice != "Could not turn encryption off: x" || v.Tooltip != "tcpinc: capture unavailable\nno driver" {
		t.Errorf("notice %q tooltip %q", v.Notice, v.Tooltip)
	}
}

func TestTooltipFitsWindows(t *testing.T) {
	for _, err := range []error{
		errors.New(strings.Repeat("x", 300)),
		errors.New(strings.Repeat("é", 300)),
		errors.New(strings.Repeat("🔒", 300)), // two UTF-16 units each
		errors.New("connecting to tcpincd at Z:\\tmp\\tcit\\w.sock: dial unix Z:\\tmp\\tcit\\w.sock: socket: winapi error #10047"),
	} {
		v := Compute(Status{}, err, "", "/s")
		if n := len(utf16.Encode([]rune(v.Tooltip))); n > MaxTooltip {
			t.Errorf("tooltip of %d UTF-16 units: %q", n, v.Tooltip)
		}
		if !utf8.ValidString(v.Tooltip) {
			t.Errorf("tooltip is not valid UTF-8: %q", v.Tooltip)
		}
	}
	short := "tcpinc: x"
	if got := clipUTF16(short, MaxTooltip); got != short {
		t.Errorf("clipUTF16 changed a short string: %q", got)
	}
	exact := strings.Repeat("a", MaxTooltip)
	if got := clipUTF16(exact, MaxTooltip); got != exact {
		t.Errorf("clipUTF16 cut a string of exactly the limit")
	}
}

func TestComputeDetails(t *testing.T) {
	st := running
	st.Conns = 7
	v := Compute(st, nil, "", "/s")
	want := [DetailLines]string{"tcpincd version: 0.1.0", "Capture mode: divert", "Connections tracked: 7", "Control socket: /s"}
	if v.Details != want {
		t.Errorf("details %q, want %q", v.Details, want)
	}
}

func TestComputeClipsLongErrors(t *testing.T) {
	long := strings.Repeat("x", 500) + "\nsecond line"
	v := Compute(Status{}, errors.New(long), "", "/s")
	if n := len([]rune(v.Notice)); n != NoticeLines*NoticeWidth || !strings.HasSuffix(v.Notice, "…") {
		t.Errorf("notice is %d runes: %q", n, v.Notice)
	}
	if strings.Contains(v.Tooltip, "second line") {
		t.Errorf("tooltip keeps the second line: %q", v.Tooltip)
	}
}

func TestWrap(t *testing.T) {
	w := strings.Repeat("w", NoticeWidth)
	for _, tc := range []struct {
		in   string
		want [NoticeLines]string
	}{
		{"", [NoticeLines]string{}},
		{"short notice", [NoticeLines]string{"short notice"}},
		{"  spaced \t out  ", [NoticeLines]string{"spaced out"}},
		{w + " x", [NoticeLines]string{w, "x"}},
		{w + "yy z", [NoticeLines]string{w, "yy z"}},
		{w + w + w + w, [NoticeLines]string{w, w, w}},
		{"a " + w + " b", [NoticeLines]string{"a", w, "b"}},
		{
			"Could not turn encryption off: tcpincd: permission denied: disable changes tcpincd's state; run as root or as a member of group tcpinc",
			[NoticeLines]string{
				"Could not turn encryption off: tcpincd: permission",
				"denied: disable changes tcpincd's state; run as root",
				"or as a member of group tcpinc",
			},
		},
	} {
		got := wrap(tc.in)
		if got != tc.want {
			t.Errorf("wrap(%q) = %q, want %q", tc.in, got, tc.want)
		}
		for _, l := range got {
			if n := len([]rune(l)); n > NoticeWidth {
				t.Errorf("wrap(%q): line of %d runes", tc.in, n)
			}
		}
	}
}

func TestPollFollowsDaemon(t *testing.T) {
	f := &fakeDaemon{st: running}
	c, ui := newTest(f)
	c.Poll()
	if v := ui.last(t); v.State != StateOn {
		t.Fatalf("state %v, want on", v.State)
	}
	f.mu.Lock()
	f.st.Encrypted, f.st.Plain = 2, 1
	f.mu.Unlock()
	c.Poll()
	if v := ui.last(t); v.State != StateEncrypted || v.CountsLine != "Encrypted: 2   Plain: 1" {
		t.Fatalf("view %+v, want encrypted 2/1", v)
	}
	if f.dials != 1 {
		t.Errorf("dialled %d times for two polls; the connection should be kept", f.dials)
	}
}

func TestReconnectAfterRestart(t *testing.T) {
	f := &fakeDaemon{st: running}
	c, ui := newTest(f)
	c.Poll()
	// Daemon stops: the old connection breaks and dialling fails.
	f.mu.Lock()
	f.down = true
	f.mu.Unlock()
	c.Poll()
	if v := ui.last(t); v.State != StateError || v.StatusLine != "tcpincd is not running" {
		t.Fatalf("view %+v, want not running", v)
	}
	c.Poll()
	if v := ui.last(t); v.State != StateError {
		t.Fatalf("state %v while down", v.State)
	}
	// Daemon comes back as a new process.
	f.mu.Lock()
	f.down = false
	f.gen++
	f.st.Encrypted = 1
	f.mu.Unlock()
	c.Poll()
	if v := ui.last(t); v.State != StateEncrypted {
		t.Fatalf("state %v after restart, want encrypted", v.State)
	}
	if f.closes < 1 {
		t.Errorf("broken connection was never closed")
	}
}

func TestRestartBetweenPollsIsInvisible(t *testing.T) {
	// tcpincd restarted between two polls: the kept connection is dead
	// but a new one works. The tray should not flash the error icon.
	f := &fakeDaemon{st: running}
	c, ui := newTest(f)
	c.Poll()
	f.mu.Lock()
	f.gen++
	f.mu.Unlock()
	c.Poll()
	if v := ui.last(t); v.State != StateOn {
		t.Fatalf("state %v after a quick restart, want on", v.State)
	}
	if f.dials != 2 {
		t.Errorf("dials %d, want 2", f.dials)
	}
}

// tcpincd runs without capture, then captures after a reload: the tray
// shows the reason, then on, without reconnecting. Turning encryption on
// is allowed while capture is unavailable (tcpincd retries on it).
func TestPollCaptureUnavailable(t *testing.T) {
	st := running
	st.Running, st.Enabled, st.CaptureError = false, false, "starting the divert capture backend: no nf_tables"
	f := &fakeDaemon{st: st}
	c, ui := newTest(f)
	c.Poll()
	v := ui.last(t)
	if v.State != StateError || v.StatusLine != "Capture unavailable" || v.NoticeLines[0] != "starting the divert capture backend: no nf_tables" {
		t.Fatalf("view %+v", v)
	}
	if !v.ToggleEnabled || v.ToggleLabel != "Turn encryption on" {
		t.Fatalf("toggle %q enabled %v", v.ToggleLabel, v.ToggleEnabled)
	}
	c.Toggle()
	if fmt.Sprint(f.sets) != "[true]" {
		t.Errorf("SetEnabled calls %v, want [true]", f.sets)
	}
	if v := ui.last(t); v.State != StateError || v.ToggleLabel != "Turn encryption off" {
		t.Errorf("still without capture after turning on: %+v", v)
	}
	f.mu.Lock()
	f.st.Running, f.st.CaptureError = true, ""
	f.mu.Unlock()
	c.Poll()
	if v := ui.last(t); v.State != StateOn || v.Notice != "" {
		t.Errorf("capturing again: %+v", v)
	}
	if f.dials != 1 {
		t.Errorf("dialled %d times; a daemon without capture still answers", f.dials)
	}
}

func TestToggle(t *testing.T) {
	f := &fakeDaemon{st: running}
	c, ui := newTest(f)
	c.Poll()
	c.Toggle()
	if v := ui.last(t); v.State != StateOff || v.ToggleLabel != "Turn encryption on" || v.Notice != "" {
		t.Fatalf("after turning off: %+v", v)
	}
	c.Toggle()
	if v := ui.last(t); v.State != StateOn || v.ToggleLabel != "Turn encryption off" {
		t.Fatalf("after turning on: %+v", v)
	}
	if fmt.Sprint(f.sets) != "[false true]" {
		t.Errorf("SetEnabled calls %v, want [false true]", f.sets)
	}
}

func TestTogglePermissionDenied(t *testing.T) {
	f := &fakeDaemon{st: running, setErr: &control.Error{Code: control.CodePermission, Msg: "tcpincd: permission denied: disable changes tcpincd's state; run as root or as a member of group tcpinc"}}
	c, ui := newTest(f)
	now := time.Unix(1000, 0)
	c.Now = func() time.Time { return now }
	c.Poll()
	c.Toggle()
	v := ui.last(t)
	if v.State != StateOn {
		t.Errorf("state %v after a refused toggle, want on (unchanged)", v.State)
	}
	if !strings.HasPrefix(v.Notice, "Could not turn encryption off: tcpincd: permission denied") || v.NoticeLines[2] != "or as a member of group tcpinc" {
		t.Errorf("notice %q (lines %q) does not show the daemon's refusal", v.Notice, v.NoticeLines)
	}
	// The notice survives the next polls for a while, then goes.
	now = now.Add(NoticeTTL / 2)
	c.Poll()
	if ui.last(t).Notice == "" {
		t.Error("notice gone after half its lifetime")
	}
	now = now.Add(NoticeTTL)
	c.Poll()
	if n := ui.last(t).Notice; n != "" {
		t.Errorf("notice %q still shown after its lifetime", n)
	}
}

func TestToggleWhileUnreachable(t *testing.T) {
	f := &fakeDaemon{st: running, down: true}
	c, ui := newTest(f)
	c.Poll()
	c.Toggle()
	if len(f.sets) != 0 {
		t.Errorf("SetEnabled called while tcpincd is unreachable")
	}
	v := ui.last(t)
	if v.State != StateError || v.Notice != "tcpincd cannot be reached; nothing was changed" {
		t.Errorf("view %+v", v)
	}
	// Toggle before the first poll does not guess a direction either.
	f2 := &fakeDaemon{st: running}
	c2, _ := newTest(f2)
	c2.Toggle()
	if len(f2.sets) != 0 {
		t.Errorf("SetEnabled called before any status was known")
	}
}

func TestToggleConnectionLost(t *testing.T) {
	// The daemon went away between the poll and the click.
	f := &fakeDaemon{st: running}
	c, ui := newTest(f)
	c.Poll()
	f.mu.Lock()
	f.down = true
	f.mu.Unlock()
	c.Toggle()
	v := ui.last(t)
	if v.State != StateError || !strings.HasPrefix(v.Notice, "Could not turn encryption off:") {
		t.Errorf("view %+v", v)
	}
}

func TestOpenFailureShown(t *testing.T) {
	f := &fakeDaemon{st: running}
	c, ui := newTest(f)
	c.Poll()
	c.OpenStatus = func() error { return errors.New("no terminal emulator found") }
	c.Open()
	if n := ui.last(t).Notice; n != "Could not open a terminal: no terminal emulator found" {
		t.Errorf("notice %q", n)
	}
	opened := false
	c.OpenStatus = func() error { opened = true; return nil }
	c.Open()
	if !opened {
		t.Error("OpenStatus not called")
	}
}

func TestRun(t *testing.T) {
	f := &fakeDaemon{st: running}
	ui := &fakeUI{}
	c := NewController(f.dial, ui, "/s", slog.New(slog.NewTextHandler(io.Discard, nil)))
	toggle := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		c.Run(ctx, time.Hour, Actions{Toggle: toggle})
		close(done)
	}()
	toggle <- struct{}{} // accepted only once Run's loop is running
	toggle <- struct{}{} // and this only after the first toggle is done
	cancel()
	<-done
	if fmt.Sprint(f.sets) != "[false true]" {
		t.Errorf("SetEnabled calls %v", f.sets)
	}
	if f.closes != f.dials {
		t.Errorf("%d connections dialled, %d closed", f.dials, f.closes)
	}
	ui.mu.Lock()
	n := len(ui.views)
	ui.mu.Unlock()
	if n < 3 {
		t.Errorf("%d renders, want at least the first poll and one per toggle", n)
	}
}

func TestFindTcpinc(t *testing.T) {
	p, err := FindTcpinc(func(string) (string, error) { return "/usr/bin/tcpinc", nil })
	if err != nil || p == "" {
		t.Errorf("FindTcpinc = %q, %v", p, err)
	}
	_, err = FindTcpinc(func(string) (string, error) { return "", errors.New("not found") })
	// Beside the test binary there is no tcpinc, so this must fail.
	if err == nil {
		t.Error("FindTcpinc found tcpinc where there is none")
	}
}

func TestLatch(t *testing.T) {
	in := make(chan struct{})
	out := Latch(in)
	// Sends that nobody would take without the latch (systray's
	// non-blocking send) are kept, coalesced into one.
	for range 3 {
		select {
		case in <- struct{}{}:
		case <-time.After(5 * time.Second):
			t.Fatal("latch does not receive")
		}
	}
	select {
	case <-out:
	case <-time.After(5 * time.Second):
		t.Fatal("click lost")
	}
	select {
	case <-out:
		t.Fatal("three clicks while busy gave more than one action")
	case <-time.After(50 * time.Millisecond):
	}
	close(in)
	if _, ok := <-out; ok {
		t.Error("out not closed after in")
	}
}

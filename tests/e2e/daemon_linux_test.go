//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// daemon is tcpincd running in a namespace with its own control socket.
type daemon struct {
	n    *node
	mode string
	sock string
	p    *proc
}

// startDaemon runs 'tcpincd run --mode mode' in n and waits until it
// captures. A mode the binary turns down as not implemented skips the
// test.
func startDaemon(t *testing.T, n *node, mode string) *daemon {
	t.Helper()
	requireMode(t, mode)
	d := &daemon{n: n, mode: mode, sock: filepath.Join(scratch(t), "ctl.sock")}
	d.launch(t)
	t.Cleanup(func() {
		if t.Failed() && !d.p.exited() {
			d.dump(t)
		}
	})
	return d
}

func (d *daemon) launch(t *testing.T) {
	t.Helper()
	args := []string{env.tcpincd, "run", "--mode", d.mode, "--control", d.sock}
	if env.config != "" {
		args = append(args, "--config", env.config)
	}
	d.p = d.n.start("tcpincd-"+d.mode, args...)
	var last string
	ok := waitFor(20*time.Second, func() bool {
		if d.p.exited() {
			return true
		}
		out, err := exec.Command(env.tcpinc, "--control", d.sock, "status", "--json").Output()
		if err != nil {
			return false
		}
		var st status
		if json.Unmarshal(out, &st) != nil {
			last = string(out)
			return false
		}
		return st.Running
	})
	if d.p.exited() {
		out := d.p.output()
		if strings.Contains(out, "not implemented") {
			t.Skipf("tcpincd --mode %s: %s", d.mode, strings.TrimSpace(tail(out, 500)))
		}
		t.Fatalf("tcpincd --mode %s in %s exited (%v) before it was running:\n%s", d.mode, d.n.name, d.p.err, tail(out, 4000))
	}
	if !ok {
		t.Fatalf("tcpincd --mode %s in %s not running after 20 s (last status %q); log:\n%s", d.mode, d.n.name, last, tail(d.p.output(), 4000))
	}
	// "running" can come before the backend's rules are in (it is set
	// as the backend's Run starts, unless the backend says when it is
	// ready); both backends log the table once it is installed.
	if !waitFor(5*time.Second, func() bool { return strings.Contains(d.p.output(), `table="inet tcpinc`) }) {
		t.Logf("tcpincd --mode %s in %s: no log line naming its nftables table 5 s after it said it was running; going on", d.mode, d.n.name)
	}
}

// dump logs the daemon's non-zero counters and the end of its log, to
// explain a failure.
func (d *daemon) dump(t *testing.T) {
	var nz []string
	if out, err := d.query("status", "--json"); err == nil {
		var st status
		if json.Unmarshal(out, &st) == nil {
			for k, v := range st.Counters {
				if v != 0 {
					nz = append(nz, fmt.Sprintf("%s=%d", k, v))
				}
			}
		}
	}
	slices.Sort(nz)
	t.Logf("tcpincd --mode %s in %s: counters %s\nlog:\n%s", d.mode, d.n.name, strings.Join(nz, " "), tail(d.p.output(), 3000))
}

// status is what the tests read of 'tcpinc status --json'.
type status struct {
	Mode     string            `json:"mode"`
	Running  bool              `json:"running"`
	Counters map[string]uint64 `json:"counters"`
	Conns    int               `json:"conns"`
}

// conn is what the tests read of one entry of 'tcpinc conns --json'.
type conn struct {
	Local       string `json:"local"`
	Remote      string `json:"remote"`
	State       string `json:"state"`
	Role        string `json:"role"`
	TEP         string `json:"tep"`
	AEAD        string `json:"aead"`
	SessionID   string `json:"session_id"`
	Resumed     bool   `json:"resumed"`
	BytesOut    uint64 `json:"bytes_out"`
	BytesIn     uint64 `json:"bytes_in"`
	PlainReason string `json:"plain_reason"`
}

func (c conn) hasPort(port int) bool {
	p := ":" + strconv.Itoa(port)
	return strings.HasSuffix(c.Local, p) || strings.HasSuffix(c.Remote, p)
}

func (d *daemon) query(args ...string) ([]byte, error) {
	cmd := exec.Command(env.tcpinc, append([]string{"--control", d.sock}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return out, fmt.Errorf("tcpinc %s: %v: %s", strings.Join(args, " "), err, ee.Stderr)
		}
		return out, fmt.Errorf("tcpinc %s: %v", strings.Join(args, " "), err)
	}
	return out, nil
}

func (d *daemon) status(t *testing.T) status {
	t.Helper()
	out, err := d.query("status", "--json")
	if err != nil {
		t.Fatalf("%s: %v", d.n.name, err)
	}
	var st status
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("%s: tcpinc status --json: %v\n%s", d.n.name, err, out)
	}
	return st
}

func (d *daemon) conns() ([]conn, error) {
	out, err := d.query("conns", "--json")
	if err != nil {
		return nil, err
	}
	var cs []conn
	if err := json.Unmarshal(out, &cs); err != nil {
		return nil, fmt.Errorf("tcpinc conns --json: %v\n%s", err, out)
	}
	return cs, nil
}

// stop sends SIGTERM and checks a clean exit that leaves no nftables
// table behind.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	if t.Failed() {
		d.dump(t)
	}
	if err := d.p.stop(15 * time.Second); err != nil {
		t.Errorf("tcpincd in %s: clean stop failed: %v; log:\n%s", d.n.name, err, tail(d.p.output(), 3000))
	}
	if tables := d.n.nftTables(); tables != "" {
		t.Errorf("tcpincd in %s stopped but nftables still has:\n%s", d.n.name, tables)
	}
}

// sigkill kills tcpincd the hard way: no cleanup of rules or sockets.
func (d *daemon) sigkill() {
	d.p.cmd.Process.Signal(syscall.SIGKILL)
	<-d.p.done
}

// counter reads one counter: the sum of those named name or ending in
// "_"+name (the backends prefix their engines' counters), 0 if none.
func (st status) counter(name string) uint64 {
	var n uint64
	for k, v := range st.Counters {
		if k == name || strings.HasSuffix(k, "_"+name) {
			n += v
		}
	}
	return n
}

// sessions watches both daemons' connection tables while a transfer
// runs, collecting the connections to or from port that have a session
// ID.
type sessions struct {
	client, server *daemon
	port           int

	mu   sync.Mutex
	c, s map[string]conn // by session ID
	// byTuple is every connection on port each side listed, by
	// "local remote", as last seen (for error messages).
	byTuple [2]map[string]conn
	errs    []string
	stop    chan struct{}
	done    chan struct{}
}

func watch(client, server *daemon, port int) *sessions {
	w := &sessions{client: client, server: server, port: port,
		c: map[string]conn{}, s: map[string]conn{}, stop: make(chan struct{}), done: make(chan struct{}),
		byTuple: [2]map[string]conn{{}, {}}}
	go func() {
		defer close(w.done)
		for {
			w.poll()
			select {
			case <-w.stop:
				w.poll() // divert keeps closed connections for a while
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *sessions) poll() {
	for i, x := range []struct {
		d *daemon
		m map[string]conn
	}{{w.client, w.c}, {w.server, w.s}} {
		if x.d == nil {
			continue
		}
		cs, err := x.d.conns()
		w.mu.Lock()
		if err != nil && len(w.errs) < 3 {
			w.errs = append(w.errs, err.Error())
		}
		for _, c := range cs {
			if !c.hasPort(w.port) {
				continue
			}
			w.byTuple[i][c.Local+" "+c.Remote] = c
			if c.SessionID != "" {
				x.m[c.SessionID] = c
			}
		}
		w.mu.Unlock()
	}
}

// finish stops watching.
func (w *sessions) finish() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// requireEncrypted checks that the same session ID was seen at both
// ends, in opposite roles, and that no connection both ends listed under
// the same 4-tuple has a session ID the other end never had. (A session seen at one end
// only proves nothing: redirect mode forgets a connection as soon as it
// closes, so a poll can miss it at one end.)
func (w *sessions) requireEncrypted(t *testing.T) {
	t.Helper()
	w.finish()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.c) == 0 {
		t.Errorf("the client's tcpincd reported no connection with a session ID on port %d (query errors: %v); it listed %+v", w.port, w.errs, w.byTuple[0])
		return
	}
	matched := 0
	for id, cc := range w.c {
		if sc, ok := w.s[id]; ok {
			matched++
			if cc.Role == sc.Role {
				t.Errorf("session %s has role %q at both ends", id, cc.Role)
			}
		}
		// A 4-tuple can be reused by a later connection (and redirect
		// mode's two ends list different tuples, so theirs coincide only
		// by chance): a different session ID under the same tuple is an
		// error only if the client never had that session at all.
		if sc, ok := w.byTuple[1][cc.Remote+" "+cc.Local]; ok && sc.SessionID != "" && sc.SessionID != id && w.c[sc.SessionID].SessionID == "" {
			t.Errorf("connection %s -> %s: session ID %s at the client, %s at the server", cc.Local, cc.Remote, id, sc.SessionID)
		}
	}
	if matched == 0 {
		t.Errorf("no session ID seen at both ends: client %v, server %v", keys(w.c), keys(w.s))
		return
	}
	t.Logf("%d session IDs equal at both ends (%d seen at the client; e.g. %s)", matched, len(w.c), first(w.c))
}

// requirePlain checks that no connection on port got a session ID.
func (w *sessions) requirePlain(t *testing.T) {
	t.Helper()
	w.finish()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.c)+len(w.s) != 0 {
		t.Errorf("expected plain TCP on port %d, but tcpincd reports sessions: client %v, server %v", w.port, keys(w.c), keys(w.s))
	}
}

func first(m map[string]conn) string {
	for k := range m {
		return k
	}
	return ""
}

func keys(m map[string]conn) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

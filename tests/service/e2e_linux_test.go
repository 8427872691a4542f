package service

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/platform_linux"
)

// Addresses inside the namespaces the test creates.
const (
	addrA = "10.233.7.1"
	addrB = "10.233.7.2"
	port  = "7007"
)

// TestMain runs the test binary as the echo server or client helper
// when asked to (inside a namespace, via ip netns exec).
func TestMain(m *testing.M) {
	switch os.Getenv("TCIS_HELPER") {
	case "server":
		echoServer()
		return
	case "client":
		echoClient()
		return
	}
	os.Exit(m.Run())
}

// echoServer echoes lines on addrB:port until killed.
func echoServer() {
	ln, err := net.Listen("tcp", net.JoinHostPort(addrB, port))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("listening")
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

// echoClient connects to the server, prints "conn LOCAL REMOTE PID FD",
// then for each line on stdin sends it and prints the echo.
func echoClient() {
	c, err := net.Dial("tcp", net.JoinHostPort(addrB, port))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	f, err := c.(*net.TCPConn).File()
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Printf("conn %s %s %d %d\n", c.LocalAddr(), c.RemoteAddr(), os.Getpid(), f.Fd())
	in := bufio.NewScanner(os.Stdin)
	r := bufio.NewReader(c)
	for in.Scan() {
		if _, err := c.Write([]byte(in.Text() + "\n")); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := r.ReadString('\n')
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Print("echo ", line)
	}
}

type env struct {
	t         *testing.T
	dir       string
	mode      string
	tcpincd   string
	tcpinc    string
	nsA, nsB  string
	sockA     string
	sockB     string
	processes []*exec.Cmd
}

func setup(t *testing.T, mode string) *env {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test creates network namespaces and runs tcpincd in them")
	}
	for _, tool := range []string{"ip", "nft", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian packages iproute2, nftables, util-linux)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "tcis-e2e")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // nobody runs tcpinc from here
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &env{t: t, dir: dir, mode: mode, tcpincd: filepath.Join(dir, "tcpincd"), tcpinc: filepath.Join(dir, "tcpinc")}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	build := exec.Command(gobin, "build", "-o", dir+"/", "tcpinc.dev/tcpinc/cmd/tcpincd", "tcpinc.dev/tcpinc/cmd/tcpinc")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building tcpincd and tcpinc: %v\n%s", err, out)
	}

	id := os.Getpid()
	e.nsA, e.nsB = fmt.Sprintf("tcis-a-%d", id), fmt.Sprintf("tcis-b-%d", id)
	linkA, linkB := fmt.Sprintf("tcisa%d", id%10000000), fmt.Sprintf("tcisb%d", id%10000000)
	for _, ns := range []string{e.nsA, e.nsB} {
		e.must("ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	// The link is made inside namespace A, so nothing appears in the
	// host's namespace even if the test dies here.
	e.must("ip", "-n", e.nsA, "link", "add", linkA, "type", "veth", "peer", "name", linkB, "netns", e.nsB)
	for _, s := range []struct{ ns, link, addr string }{{e.nsA, linkA, addrA}, {e.nsB, linkB, addrB}} {
		e.must("ip", "-n", s.ns, "link", "set", "lo", "up")
		e.must("ip", "-n", s.ns, "addr", "add", s.addr+"/24", "dev", s.link)
		e.must("ip", "-n", s.ns, "link", "set", s.link, "up")
	}
	t.Cleanup(e.stopAll)

	e.sockA, e.sockB = filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	e.startDaemon(e.nsA, e.sockA, "a")
	e.startDaemon(e.nsB, e.sockB, "b")
	return e
}

func (e *env) must(name string, args ...string) string {
	e.t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (e *env) stopAll() {
	for i := len(e.processes) - 1; i >= 0; i-- {
		p := e.processes[i]
		if p.Process == nil {
			continue
		}
		p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.Process.Kill()
			<-done
		}
	}
	e.processes = nil
}

// startDaemon runs tcpincd in ns with a configuration file naming its
// control socket, and waits until it captures.
func (e *env) startDaemon(ns, sock, name string) {
	e.t.Helper()
	cfg := filepath.Join(e.dir, name+".toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("mode = %q\n[control]\nsocket = %q\n[log]\nlevel = \"debug\"\n", e.mode, sock)), 0o644)
	logf, _ := os.Create(filepath.Join(e.dir, name+".log"))
	cmd := exec.Command("ip", "netns", "exec", ns, e.tcpincd, "run", "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.processes = append(e.processes, cmd)
	e.t.Cleanup(func() {
		if e.t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			e.t.Logf("tcpincd %s log:\n%s", name, tail(string(b), 60))
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st struct{ Running bool }
		out, err := exec.Command(e.tcpinc, "--control", sock, "status", "--json").Output()
		// Running means Run was called; the rules are in once the
		// table exists (the backend installs it in one transaction).
		if err == nil && json.Unmarshal(out, &st) == nil && st.Running &&
			exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "inet", e.table()).Run() == nil {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			e.t.Fatalf("tcpincd %s did not start: %v\n%s", name, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// table is the nftables table of the capture mode.
func (e *env) table() string {
	if e.mode == "redirect" {
		return platform_linux.RedirectTableName
	}
	return platform_linux.TableName
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// helper runs the test binary as a helper in ns.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	mu    sync.Mutex
}

func (e *env) helper(ns, role string) *helper {
	e.t.Helper()
	self, _ := os.Executable()
	cmd := exec.Command("ip", "netns", "exec", ns, self)
	cmd.Env = append(os.Environ(), "TCIS_HELPER="+role)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.processes = append(e.processes, cmd)
	return &helper{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
}

func (h *helper) line(t *testing.T) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		if h.out.Scan() {
			got <- h.out.Text()
		} else {
			got <- "error: helper exited"
		}
	}()
	select {
	case l := <-got:
		if strings.HasPrefix(l, "error") {
			t.Fatalf("helper: %s", l)
		}
		return l
	case <-time.After(15 * time.Second):
		t.Fatal("helper did not answer")
	}
	return ""
}

// client is one connection from A to B.
type client struct {
	h             *helper
	local, remote string
	pid, fd       string
}

func (e *env) connect(t *testing.T) *client {
	t.Helper()
	h := e.helper(e.nsA, "client")
	f := strings.Fields(h.line(t))
	if len(f) != 5 || f[0] != "conn" {
		t.Fatalf("client said %q", f)
	}
	return &client{h: h, local: f[1], remote: f[2], pid: f[3], fd: f[4]}
}

// echo sends a line over the connection and checks it comes back.
func (c *client) echo(t *testing.T, msg string) {
	t.Helper()
	fmt.Fprintln(c.h.stdin, msg)
	if got := c.h.line(t); got != "echo "+msg {
		t.Fatalf("echo: got %q, want %q", got, "echo "+msg)
	}
}

type conn struct {
	Local, Remote string
	State         string
	SessionID     string `json:"session_id"`
	BytesOut      uint64 `json:"bytes_out"`
	PlainReason   string `json:"plain_reason"`
}

// conns is tcpinc conns --json of the daemon at sock, run inside ns (as
// tcpinc users would).
func (e *env) conns(t *testing.T, ns, sock string) []conn {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, e.tcpinc, "--control", sock, "conns", "--json").Output()
	if err != nil {
		t.Fatalf("tcpinc conns --json: %v", err)
	}
	var cs []conn
	if err := json.Unmarshal(out, &cs); err != nil {
		t.Fatalf("tcpinc conns --json: %v\n%s", err, out)
	}
	return cs
}

// find returns the connection between local and remote.
func (e *env) find(t *testing.T, ns, sock, local, remote string) (conn, bool) {
	t.Helper()
	for _, c := range e.conns(t, ns, sock) {
		if c.Local == local && c.Remote == remote {
			return c, true
		}
	}
	return conn{}, false
}

// waitState waits until both ends show the connection in state want
// (encrypted: with the same session ID). B's side is found by its
// addresses in divert mode; in redirect mode A's proxy opens the wire
// connection from another port, so B's side is found by session ID.
func (e *env) waitState(t *testing.T, c *client, want string) (a, b conn) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var okA, okB bool
		a, okA = e.find(t, e.nsA, e.sockA, c.local, c.remote)
		if e.mode == "redirect" && okA && a.SessionID != "" {
			b, okB = e.findSession(t, e.nsB, e.sockB, a.SessionID)
		} else {
			b, okB = e.find(t, e.nsB, e.sockB, c.remote, c.local)
		}
		if okA && okB && a.State == want && b.State == want {
			return a, b
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection %s -> %s: A %+v (found %v), B %+v (found %v); want both %s", c.local, c.remote, a, okA, b, okB, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// findSession returns the connection with session ID sid.
func (e *env) findSession(t *testing.T, ns, sock, sid string) (conn, bool) {
	t.Helper()
	for _, c := range e.conns(t, ns, sock) {
		if c.SessionID == sid {
			return c, true
		}
	}
	return conn{}, false
}

// encrypted counts the encrypted connections at one end.
func (e *env) encrypted(t *testing.T, ns, sock string) int {
	n := 0
	for _, c := range e.conns(t, ns, sock) {
		if c.State == "encrypted" {
			n++
		}
	}
	return n
}

// tcpinc runs the CLI in ns against sock, as root or as nobody.
func (e *env) cli(ns, sock string, nobody bool, args ...string) (int, string) {
	argv := []string{"netns", "exec", ns}
	if nobody {
		argv = append(argv, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
	}
	argv = append(argv, e.tcpinc, "--control", sock)
	argv = append(argv, args...)
	out, err := exec.Command("ip", argv...).CombinedOutput()
	rc := 0
	if ee, ok := err.(*exec.ExitError); ok {
		rc = ee.ExitCode()
	} else if err != nil {
		rc = -1
	}
	return rc, string(out)
}

func TestServiceEndToEnd(t *testing.T) {
	for _, mode := range []string{"divert", "redirect"} {
		t.Run(mode, func(t *testing.T) { testService(t, mode) })
	}
}

func testService(t *testing.T, mode string) {
	e := setup(t, mode)
	srv := e.helper(e.nsB, "server")
	if l := srv.line(t); l != "listening" {
		t.Fatalf("server: %q", l)
	}

	// 1. A live connection shows the same session ID on both ends.
	c1 := e.connect(t)
	c1.echo(t, "hello")
	a, b := e.waitState(t, c1, "encrypted")
	if a.SessionID == "" || a.SessionID != b.SessionID {
		t.Fatalf("session IDs differ: A %q, B %q", a.SessionID, b.SessionID)
	}
	t.Logf("c1 %s -> %s encrypted, session ID %s on both ends", c1.local, c1.remote, a.SessionID)
	// sessid by addresses and by pid/fd agrees, and works for nobody.
	for _, args := range [][]string{{"sessid", c1.local, c1.remote}, {"sessid", "--pid", c1.pid, "--fd", c1.fd}} {
		rc, out := e.cli(e.nsA, e.sockA, false, args...)
		if rc != 0 || strings.TrimSpace(out) != a.SessionID {
			t.Errorf("tcpinc %s: rc %d, %q; want %s", strings.Join(args, " "), rc, out, a.SessionID)
		}
	}
	// B asks with its own view of the connection, as an application there would.
	rc, out := e.cli(e.nsB, e.sockB, true, "sessid", "--json", b.Local, b.Remote)
	var lr struct {
		SessionID  string `json:"session_id"`
		Role       string
		ENOEnabled bool `json:"eno_enabled"`
	}
	if rc != 0 || json.Unmarshal([]byte(out), &lr) != nil || lr.SessionID != a.SessionID || lr.Role != "B" || !lr.ENOEnabled {
		t.Errorf("tcpinc sessid --json as nobody on B: rc %d\n%s", rc, out)
	}

	// 2. A user who is not root cannot toggle, but can read.
	rc, out = e.cli(e.nsA, e.sockA, true, "down")
	if rc != 4 || !strings.Contains(out, "permission denied") || !strings.Contains(out, "run as root") {
		t.Errorf("tcpinc down as nobody: rc %d, %q; want exit 4 and permission denied", rc, out)
	}
	rc, out = e.cli(e.nsA, e.sockA, true, "status")
	if rc != 0 || !strings.Contains(out, "encryption:  on") {
		t.Errorf("tcpinc status as nobody: rc %d\n%s", rc, out)
	}
	rc, out = e.cli(e.nsA, e.sockA, true, "reload")
	if rc != 4 {
		t.Errorf("tcpinc reload as nobody: rc %d, %q", rc, out)
	}

	// 3. tcpinc down: new connections are plain; c1 keeps working,
	// encrypted.
	if rc, out := e.cli(e.nsA, e.sockA, false, "down"); rc != 0 {
		t.Fatalf("tcpinc down: rc %d, %s", rc, out)
	}
	if rc, out := e.cli(e.nsA, e.sockA, false, "status"); rc != 0 || !strings.Contains(out, "encryption:  off") {
		t.Errorf("status after down: rc %d\n%s", rc, out)
	}
	c2 := e.connect(t)
	c2.echo(t, "plain after down")
	// Only c1 is encrypted at B; in divert mode B tracks c2 as plain (A
	// sent no ENO option).
	if n := e.encrypted(t, e.nsB, e.sockB); n != 1 {
		t.Errorf("after tcpinc down and a new connection, B has %d encrypted connections, want 1 (c1)", n)
	}
	if e.mode == "divert" {
		if b2, ok := e.find(t, e.nsB, e.sockB, c2.remote, c2.local); !ok || b2.State != "plain" {
			t.Errorf("a connection opened after tcpinc down: B has %+v (found %v), want plain", b2, ok)
		} else {
			t.Logf("c2 %s -> %s after down: plain on B (%s)", c2.local, c2.remote, b2.PlainReason)
		}
	}
	if a2, ok := e.find(t, e.nsA, e.sockA, c2.local, c2.remote); ok && a2.State == "encrypted" {
		t.Errorf("a connection opened after tcpinc down is encrypted on A: %+v", a2)
	}
	if rc, _ := e.cli(e.nsA, e.sockA, false, "sessid", c2.local, c2.remote); rc != 5 {
		t.Errorf("tcpinc sessid of the plain connection: rc %d, want 5", rc)
	}
	before := a.BytesOut
	c1.echo(t, "still encrypted after down")
	a, b = e.waitState(t, c1, "encrypted")
	if a.SessionID != b.SessionID || a.BytesOut <= before {
		t.Errorf("c1 after down: A %+v, B %+v (bytes out before %d)", a, b, before)
	}

	// 4. tcpinc up: new connections are encrypted again.
	if rc, out := e.cli(e.nsA, e.sockA, false, "up"); rc != 0 {
		t.Fatalf("tcpinc up: rc %d, %s", rc, out)
	}
	c3 := e.connect(t)
	c3.echo(t, "encrypted after up")
	a3, b3 := e.waitState(t, c3, "encrypted")
	if a3.SessionID == "" || a3.SessionID != b3.SessionID || a3.SessionID == a.SessionID {
		t.Errorf("c3: A %+v, B %+v", a3, b3)
	}
	c2.echo(t, "plain one still works")

	// 5. A reload that excludes the server's port leaves new connections
	// plain and keeps the encrypted ones encrypted and working.
	cfgA := filepath.Join(e.dir, "a.toml")
	os.WriteFile(cfgA, []byte(fmt.Sprintf("mode = %q\nexclude_ports = [%s]\n[control]\nsocket = %q\n[log]\nlevel = \"debug\"\n", e.mode, port, e.sockA)), 0o644)
	if rc, out := e.cli(e.nsA, e.sockA, false, "reload"); rc != 0 || !strings.Contains(out, "applied: exclude_ports") {
		t.Errorf("tcpinc reload: rc %d, %s", rc, out)
	}
	c4 := e.connect(t)
	c4.echo(t, "excluded")
	if n := e.encrypted(t, e.nsB, e.sockB); n != 2 {
		t.Errorf("after excluding the port, B has %d encrypted connections, want 2 (c1, c3)", n)
	}
	if a4, ok := e.find(t, e.nsA, e.sockA, c4.local, c4.remote); ok && a4.State == "encrypted" {
		t.Errorf("a connection to an excluded port is encrypted at A: %+v", a4)
	}
	before = a.BytesOut
	c1.echo(t, "after reload")
	a, b = e.waitState(t, c1, "encrypted")
	if a.SessionID != b.SessionID || a.BytesOut <= before {
		t.Errorf("c1 after reload: A %+v, B %+v", a, b)
	}
	c3.echo(t, "c3 after reload")

	// SIGHUP reloads too (tcpincd is the process ip netns exec became).
	e.processes[0].Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, out := e.cli(e.nsA, e.sockA, false, "status", "--json")
		var st struct{ Counters map[string]uint64 }
		if json.Unmarshal([]byte(out), &st) == nil && st.Counters["service_reloads"] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c1.echo(t, "after SIGHUP")
	if rc, out := e.cli(e.nsA, e.sockA, true, "metrics"); rc != 0 || !strings.Contains(out, `tcpinc_connections{state="encrypted"}`) {
		t.Errorf("tcpinc metrics: rc %d\n%s", rc, out)
	}

}

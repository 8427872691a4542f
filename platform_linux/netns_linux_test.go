package platform_linux

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests run everything that captures packets inside network
// namespaces they create (names and links prefixed "tcip"), never in the
// host's own namespace: rules installed there would capture the host's
// traffic. Addresses are 10.231.1.0/24 and fd00:231::/64, inside the
// namespaces only.

const (
	addrA4 = "10.231.1.1"
	addrB4 = "10.231.1.2"
	addrA6 = "fd00:231::1"
	addrB6 = "fd00:231::2"
)

func requireNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test creates network namespaces and nftables rules inside them")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian packages iproute2, nftables)", tool)
		}
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		t.Skip("needs network namespaces (CONFIG_NET_NS)")
	}
}

// pair is two namespaces joined by a veth pair.
type pair struct {
	a, b   string // namespace names
	la, lb string // link names
}

var nsSeq struct {
	sync.Mutex
	n int
}

func newPair(t *testing.T) *pair {
	t.Helper()
	nsSeq.Lock()
	nsSeq.n++
	n := nsSeq.n
	nsSeq.Unlock()
	id := fmt.Sprintf("%d-%d", os.Getpid(), n)
	p := &pair{a: "tcip-a-" + id, b: "tcip-b-" + id,
		la: fmt.Sprintf("tcipa%d", os.Getpid()%100000*100+n%100), lb: fmt.Sprintf("tcipb%d", os.Getpid()%100000*100+n%100)}
	for _, ns := range []string{p.a, p.b} {
		mustRun(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { run("ip", "netns", "del", ns) })
	}
	// Links are created inside namespace a, so a failed run leaves
	// nothing in the host's namespace; deleting the namespaces deletes
	// them.
	mustRun(t, "ip", "-n", p.a, "link", "add", p.la, "type", "veth", "peer", "name", p.lb, "netns", p.b)
	setup := func(ns, link, a4, a6 string) {
		mustRun(t, "ip", "-n", ns, "link", "set", "lo", "up")
		mustRun(t, "ip", "-n", ns, "addr", "add", a4+"/24", "dev", link)
		mustRun(t, "ip", "-n", ns, "addr", "add", a6+"/64", "dev", link, "nodad")
		mustRun(t, "ip", "-n", ns, "link", "set", link, "up")
	}
	setup(p.a, p.la, addrA4, addrA6)
	setup(p.b, p.lb, addrB4, addrB6)
	// Static neighbours: a fresh link may lose the first IPv6 neighbour
	// solicitation, which costs a 1 s retry in the middle of a timing.
	neigh := func(ns, link, peerNS, peerLink string, addrs ...string) {
		f := strings.Fields(mustRun(t, "ip", "-n", peerNS, "-br", "link", "show", peerLink))
		if len(f) < 3 {
			t.Fatalf("cannot read the MAC address of %s", peerLink)
		}
		for _, a := range addrs {
			mustRun(t, "ip", "-n", ns, "neigh", "replace", a, "lladdr", f[2], "dev", link, "nud", "permanent")
		}
	}
	neigh(p.a, p.la, p.b, p.lb, addrB4, addrB6)
	neigh(p.b, p.lb, p.a, p.la, addrA4, addrA6)
	return p
}

func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := run(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// child is a helper process running in a namespace.
type child struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *strings.Builder
	mu     sync.Mutex
	exited chan struct{}
	err    error
}

// spawn runs this test binary's TestHelperProcess in namespace ns.
func spawn(t *testing.T, ns, mode string, args ...string) *child {
	t.Helper()
	argv := append([]string{"netns", "exec", ns, os.Args[0], "-test.run=^TestHelperProcess$", "--", mode}, args...)
	return start(t, mode+"@"+ns, exec.Command("ip", argv...), "TCPINC_TEST_HELPER=1")
}

func start(t *testing.T, name string, cmd *exec.Cmd, env ...string) *child {
	t.Helper()
	c := &child{t: t, name: name, cmd: cmd, lines: make(chan string, 1024), stderr: &strings.Builder{}, exited: make(chan struct{})}
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			c.mu.Lock()
			c.stderr.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
		}
	}()
	go func() {
		wg.Wait()
		c.err = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() { c.kill() })
	return c
}

// line waits for the next stdout line.
func (c *child) line(timeout time.Duration) string {
	c.t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			<-c.exited
			c.t.Fatalf("%s exited (%v) before printing a line; stderr:\n%s", c.name, c.err, c.log())
		}
		return l
	case <-time.After(timeout):
		c.t.Fatalf("%s printed nothing for %v; stderr:\n%s", c.name, timeout, c.log())
	}
	return ""
}

// expect waits for a line starting with prefix and returns the rest.
func (c *child) expect(prefix string, timeout time.Duration) string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		l := c.line(time.Until(deadline))
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			return strings.TrimSpace(rest)
		}
	}
}

func (c *child) send(cmd string) {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		c.t.Fatalf("%s: writing %q: %v", c.name, cmd, err)
	}
}

func (c *child) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

// stop closes stdin (helpers exit on EOF) and waits; it kills after a
// grace period.
func (c *child) stop(grace time.Duration) error {
	c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(grace):
		c.kill()
		return fmt.Errorf("%s did not exit within %v; killed", c.name, grace)
	}
	return c.err
}

func (c *child) kill() {
	select {
	case <-c.exited:
		return
	default:
	}
	c.stdin.Close()
	if c.cmd.Process != nil {
		c.cmd.Process.Kill()
	}
	<-c.exited
}

//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// node is one network namespace of a test.
type node struct {
	t    *testing.T
	name string // namespace name
	role string // client, server, router
	dir  string // scratch directory for its logs
}

// newNode creates namespace tcie-<name>-<role>-<pid> with lo up and
// deletes it when the test ends.
func newNode(t *testing.T, name, role string) *node {
	t.Helper()
	n := &node{t: t, name: fmt.Sprintf("tcie-%s-%s-%d", name, role, os.Getpid()), role: role, dir: t.TempDir()}
	exec.Command("ip", "netns", "del", n.name).Run() // a leftover of this pid
	mustRun(t, "ip", "netns", "add", n.name)
	t.Cleanup(func() {
		// Processes still inside would keep the namespace alive.
		if out, err := exec.Command("ip", "netns", "pids", n.name).Output(); err == nil && len(out) > 0 {
			for p := range strings.FieldsSeq(string(out)) {
				var pid int
				if _, err := fmt.Sscan(p, &pid); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			t.Logf("deleting namespace %s: %v %s", n.name, err, out)
		}
	})
	n.must("ip", "link", "set", "lo", "up")
	return n
}

// cmd is a command run inside the namespace.
func (n *node) cmd(args ...string) *exec.Cmd {
	c := exec.Command("ip", append([]string{"netns", "exec", n.name}, args...)...)
	// If the test binary dies, so does everything it started.
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return c
}

func (n *node) run(args ...string) (string, error) {
	out, err := n.cmd(args...).CombinedOutput()
	return string(out), err
}

func (n *node) must(args ...string) string {
	n.t.Helper()
	out, err := n.run(args...)
	if err != nil {
		n.t.Fatalf("in %s: %s: %v\n%s", n.name, strings.Join(args, " "), err, out)
	}
	return out
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// link joins a and b with a veth pair named la (in a) and lb (in b). The
// pair is created inside a, so nothing ever appears in the host's
// namespace.
func link(t *testing.T, a *node, la string, b *node, lb string) {
	t.Helper()
	a.must("ip", "link", "add", la, "type", "veth", "peer", "name", lb, "netns", b.name)
	a.must("ip", "link", "set", la, "up")
	b.must("ip", "link", "set", lb, "up")
}

func addr(n *node, dev string, addrs ...string) {
	n.t.Helper()
	for _, a := range addrs {
		args := []string{"ip", "addr", "add", a, "dev", dev}
		if strings.Contains(a, ":") {
			args = append(args, "nodad")
		}
		n.must(args...)
	}
}

// topo is a client and a server, joined directly or through a router.
type topo struct {
	client, server, router *node
	// The links a capture can watch: clientLink in client, serverLink
	// in server.
	clientLink, serverLink string
	// The server's addresses as the client reaches them.
	server4, server6 string
	// The router's links (routed topologies only).
	routerClientLink, routerServerLink string
}

const (
	linkC  = "tcie-c"  // client's end
	linkS  = "tcie-s"  // server's end
	linkRC = "tcie-rc" // router's end towards the client
	linkRS = "tcie-rs" // router's end towards the server
)

// newDirect: client 10.231.60.1 / fd00:231:60::1 <-veth-> server
// 10.231.60.2 / fd00:231:60::2.
func newDirect(t *testing.T, name string) *topo {
	t.Helper()
	c, s := newNode(t, name, "c"), newNode(t, name, "s")
	link(t, c, linkC, s, linkS)
	addr(c, linkC, "10.231.60.1/24", "fd00:231:60::1/64")
	addr(s, linkS, "10.231.60.2/24", "fd00:231:60::2/64")
	return &topo{client: c, server: s, clientLink: linkC, serverLink: linkS,
		server4: "10.231.60.2", server6: "fd00:231:60::2"}
}

// newRouted: client 10.231.61.1 <-> router (10.231.61.254 |
// 10.231.62.254) <-> server 10.231.62.2, with the IPv6 equivalents in
// fd00:231:61::/64 and fd00:231:62::/64. The router forwards.
func newRouted(t *testing.T, name string) *topo {
	t.Helper()
	c, r, s := newNode(t, name, "c"), newNode(t, name, "r"), newNode(t, name, "s")
	link(t, c, linkC, r, linkRC)
	link(t, r, linkRS, s, linkS)
	addr(c, linkC, "10.231.61.1/24", "fd00:231:61::1/64")
	addr(r, linkRC, "10.231.61.254/24", "fd00:231:61::fe/64")
	addr(r, linkRS, "10.231.62.254/24", "fd00:231:62::fe/64")
	addr(s, linkS, "10.231.62.2/24", "fd00:231:62::2/64")
	c.must("ip", "route", "add", "default", "via", "10.231.61.254")
	c.must("ip", "-6", "route", "add", "default", "via", "fd00:231:61::fe")
	s.must("ip", "route", "add", "default", "via", "10.231.62.254")
	s.must("ip", "-6", "route", "add", "default", "via", "fd00:231:62::fe")
	r.must("sysctl", "-qw", "net.ipv4.ip_forward=1")
	r.must("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	return &topo{client: c, server: s, router: r, clientLink: linkC, serverLink: linkS,
		server4: "10.231.62.2", server6: "fd00:231:62::2",
		routerClientLink: linkRC, routerServerLink: linkRS}
}

// proc is a program running in a namespace, its output going to a file.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// start runs args in the namespace. When the test ends the program gets
// SIGTERM, then SIGKILL if it is still there 5 s later.
func (n *node) start(name string, args ...string) *proc {
	n.t.Helper()
	p := &proc{t: n.t, name: name + "@" + n.name, cmd: n.cmd(args...), done: make(chan struct{})}
	f, err := os.CreateTemp(n.dir, name+"-*.log")
	if err != nil {
		n.t.Fatal(err)
	}
	p.log = f.Name()
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		n.t.Fatalf("starting %s: %v", p.name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	n.t.Cleanup(func() { p.stop(5 * time.Second) })
	return p
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the program to exit by itself, at most d.
func (p *proc) wait(d time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not finish within %v (killed); output:\n%s", p.name, d, tail(p.output(), 3000))
	}
}

// stop sends SIGTERM and waits for the exit; SIGKILL after grace.
func (p *proc) stop(grace time.Duration) error {
	if p.exited() {
		return p.err
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s ignored SIGTERM for %v (killed)", p.name, grace)
	}
}

func (p *proc) kill() {
	if !p.exited() {
		p.cmd.Process.Kill()
	}
	<-p.done
}

// waitFor polls cond every 50 ms for at most d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitListening waits until something listens on TCP port in n.
func (n *node) waitListening(p *proc, port int) {
	n.t.Helper()
	ok := waitFor(15*time.Second, func() bool {
		if p != nil && p.exited() {
			return false
		}
		out, _ := n.run("ss", "-Htln", fmt.Sprintf("sport = :%d", port))
		return strings.Contains(out, "LISTEN")
	})
	if !ok {
		msg := ""
		if p != nil {
			msg = fmt.Sprintf("; %s (exited %v) said:\n%s", p.name, p.exited(), tail(p.output(), 3000))
		}
		n.t.Fatalf("nothing listens on port %d in %s after 15 s%s", port, n.name, msg)
	}
}

// nftTables lists the nftables tables of the namespace, sorted.
func (n *node) nftTables() string {
	n.t.Helper()
	return strings.TrimSpace(n.must("nft", "list", "tables"))
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// scratch is a short directory for Unix sockets (their paths are limited
// to 107 bytes, too short for some t.TempDir names).
func scratch(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "tcie")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

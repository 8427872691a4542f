package platform_linux

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"tcpinc.dev/tcpinc/core"
)

// The redirect-mode tests use their own namespaces (prefix "tcir") and
// helper entry point; the transfer helpers (server, client) and the
// divert backend helper are shared with the divert tests.

func newRPair(t *testing.T) *pair {
	t.Helper()
	nsSeq.Lock()
	nsSeq.n++
	n := nsSeq.n
	nsSeq.Unlock()
	id := fmt.Sprintf("%d-%d", os.Getpid(), n)
	p := &pair{a: "tcir-a-" + id, b: "tcir-b-" + id,
		la: fmt.Sprintf("tcira%d", os.Getpid()%100000*100+n%100), lb: fmt.Sprintf("tcirb%d", os.Getpid()%100000*100+n%100)}
	for _, ns := range []string{p.a, p.b} {
		mustRun(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { run("ip", "netns", "del", ns) })
	}
	mustRun(t, "ip", "-n", p.a, "link", "add", p.la, "type", "veth", "peer", "name", p.lb, "netns", p.b)
	for _, s := range []struct{ ns, link, a4, a6, peerNS, peerLink, p4, p6 string }{
		{p.a, p.la, addrA4, addrA6, p.b, p.lb, addrB4, addrB6},
		{p.b, p.lb, addrB4, addrB6, p.a, p.la, addrA4, addrA6},
	} {
		mustRun(t, "ip", "-n", s.ns, "link", "set", "lo", "up")
		mustRun(t, "ip", "-n", s.ns, "addr", "add", s.a4+"/24", "dev", s.link)
		mustRun(t, "ip", "-n", s.ns, "addr", "add", s.a6+"/64", "dev", s.link, "nodad")
		mustRun(t, "ip", "-n", s.ns, "link", "set", s.link, "up")
	}
	for _, s := range []struct{ ns, link, peerNS, peerLink, p4, p6 string }{
		{p.a, p.la, p.b, p.lb, addrB4, addrB6},
		{p.b, p.lb, p.a, p.la, addrA4, addrA6},
	} {
		f := strings.Fields(mustRun(t, "ip", "-n", s.peerNS, "-br", "link", "show", s.peerLink))
		if len(f) < 3 {
			t.Fatalf("cannot read the MAC address of %s", s.peerLink)
		}
		for _, a := range []string{s.p4, s.p6} {
			mustRun(t, "ip", "-n", s.ns, "neigh", "replace", a, "lladdr", f[2], "dev", s.link, "nud", "permanent")
		}
	}
	return p
}

// rconnJSON is what the tests compare of a proxied connection.
type rconnJSON struct {
	Local, Remote, State, SessionID string
	Resumed                         bool
	BytesIn, BytesOut               uint64
}

// helperRedirect runs the redirect backend: "rbackend <queue>
// [exclude-port...]". With TCPINC_TEST_CPUPROFILE set it writes a CPU
// profile there (suffixed with the pid). It
// prints READY once the rules are in place and answers "conns" and
// "counters" on stdin; EOF stops it.
func helperRedirect(args []string) error {
	q, _ := strconv.Atoi(args[0])
	cfg := Config{Queue: uint16(q), Policy: core.DefaultPolicy(),
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, a := range args[1:] {
		p, _ := strconv.Atoi(a)
		cfg.Policy.ExcludePorts = append(cfg.Policy.ExcludePorts, uint16(p))
	}
	if prof := os.Getenv("TCPINC_TEST_CPUPROFILE"); prof != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", prof, os.Getpid()))
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	r, err := NewRedirect(cfg)
	if err != nil {
		return err
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()
	// Ready (the daemon's Readier) says when capture is on: the table
	// must be there by then.
	select {
	case <-r.Ready():
	case err := <-runErr:
		return fmt.Errorf("Run: %v", err)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("Ready not closed within 10 s")
	}
	nft, err := nftables.New()
	if err != nil {
		return err
	}
	if _, err := nft.ListTableOfFamily(RedirectTableName, nftables.TableFamilyINet); err != nil {
		return fmt.Errorf("Ready closed before table inet %s was installed: %v", RedirectTableName, err)
	}
	fmt.Println("READY", r.QueueKind())
	cmds := make(chan string)
	go func() {
		defer close(cmds)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- sc.Text()
		}
	}()
	for {
		select {
		case err := <-runErr:
			return fmt.Errorf("Run returned early: %v", err)
		case cmd, ok := <-cmds:
			if !ok {
				cancel()
				if err := <-runErr; err != nil {
					return err
				}
				if err := r.Close(); err != nil {
					return err
				}
				fmt.Println("BYE")
				return nil
			}
			if js, ok := strings.CutPrefix(cmd, "apply "); ok {
				var pol core.Policy
				err := json.Unmarshal([]byte(js), &pol)
				if err == nil {
					err = r.Apply(pol)
				}
				fmt.Println("APPLIED", err)
				continue
			}
			switch cmd {
			case "conns":
				var out []rconnJSON
				for _, c := range r.Conns() {
					out = append(out, rconnJSON{Local: c.Local.String(), Remote: c.Remote.String(), State: c.State,
						SessionID: hex.EncodeToString(c.SessionID), Resumed: c.Resumed, BytesIn: c.BytesIn, BytesOut: c.BytesOut})
				}
				b, _ := json.Marshal(out)
				fmt.Println("CONNS", string(b))
			case "counters":
				b, _ := json.Marshal(r.Snapshot())
				fmt.Println("COUNTERS", string(b))
			}
		}
	}
}

func startRedirect(t *testing.T, ns string, exclude ...string) *child {
	t.Helper()
	b := spawn(t, ns, "rbackend", append([]string{"0"}, exclude...)...)
	kind := b.expect("READY", 10*time.Second)
	t.Logf("redirect backend in %s ready, queueing with %s", ns, kind)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("redirect backend in %s logged:\n%s", ns, b.log())
		}
	})
	return b
}

func startDivertR(t *testing.T, ns string) *child {
	t.Helper()
	b := spawn(t, ns, "backend", "0", "1")
	b.expect("READY", 10*time.Second)
	return b
}

func (c *child) rconns(t *testing.T) []rconnJSON { t.Helper(); return ask[[]rconnJSON](t, c, "conns") }

func (c *child) rcounters(t *testing.T) RedirectCounters {
	t.Helper()
	return ask[RedirectCounters](t, c, "counters")
}

func stopRedirect(t *testing.T, b *child, ns string) {
	t.Helper()
	stopHelperBackend(t, b, ns, "redirect backend", RedirectTableName)
}

// findLocal finds the connection whose local end is local (and whose
// remote end is remote, unless remote is empty).
func findR(cs []rconnJSON, local, remote string) (rconnJSON, bool) {
	for _, c := range cs {
		if c.Local == local && (remote == "" || c.Remote == remote) {
			return c, true
		}
	}
	return rconnJSON{}, false
}

// transfer runs one client → server transfer and returns the client's
// local address and the seconds it took; the client stays connected
// until stopped.
func transfer(t *testing.T, cliNS, srvNS, srvAddr string, send, reply int) (cli, srv *child, local string, secs float64) {
	t.Helper()
	srv = spawn(t, srvNS, "server", srvAddr)
	srv.expect("LISTENING", 5*time.Second)
	cli = spawn(t, cliNS, "client", srvAddr, itoa(send), itoa(reply))
	local, secs = splitDone(cli.expect("DONE", 60*time.Second))
	return cli, srv, local, secs
}

// TestRedirectEncrypted: redirect backends on both ends, IPv4 and IPv6;
// the data arrives intact both ways, the wire shows no plaintext, both
// ends report the same session ID.
func TestRedirectEncrypted(t *testing.T) {
	requireNetns(t)
	for _, tc := range []struct{ name, server string }{{"ipv4", addrB4}, {"ipv6", addrB6}} {
		t.Run(tc.name, func(t *testing.T) {
			p := newRPair(t)
			wire := startCapture(t, p.a, p.la)
			ba, bb := startRedirect(t, p.a), startRedirect(t, p.b)
			srvAddr := net.JoinHostPort(tc.server, "7101")
			const send, reply = 4 << 20, 1 << 20
			cli, srv, local, secs := transfer(t, p.a, p.b, srvAddr, send, reply)
			t.Logf("%s: %d bytes out and %d back in %.3f s", tc.name, send, reply, secs)
			ca, okA := findR(ba.rconns(t), local, srvAddr)
			cb, okB := findR(bb.rconns(t), srvAddr, "")
			switch {
			case !okA || !okB:
				t.Errorf("connection %s → %s not tracked: client side %v, server side %v", local, srvAddr, okA, okB)
			case ca.State != "encrypted" || cb.State != "encrypted":
				t.Errorf("states: client %q, server %q; want encrypted", ca.State, cb.State)
			case ca.SessionID == "" || ca.SessionID != cb.SessionID:
				t.Errorf("session IDs differ: client %s, server %s", ca.SessionID, cb.SessionID)
			default:
				t.Logf("session ID on both ends: %s", ca.SessionID)
			}
			cli.stop(5 * time.Second)
			srv.stop(5 * time.Second)
			pcap := wire.bytes(t)
			if len(pcap) < send {
				t.Errorf("the capture holds %d bytes, less than the transfer: capture broken?", len(pcap))
			}
			if i := bytes.Index(pcap, []byte(marker)); i >= 0 {
				t.Errorf("plaintext on the wire at capture offset %d", i)
			}
			t.Logf("client side counters: %+v", ba.rcounters(t))
			stopRedirect(t, ba, p.a)
			stopRedirect(t, bb, p.b)
		})
	}
}

// TestRedirectPlainPeer: the server side runs nothing; the connection is
// proxied plain and works.
func TestRedirectPlainPeer(t *testing.T) {
	requireNetns(t)
	p := newRPair(t)
	ba := startRedirect(t, p.a)
	srvAddr := net.JoinHostPort(addrB4, "7102")
	cli, srv, local, _ := transfer(t, p.a, p.b, srvAddr, 2<<20, 256<<10)
	c, ok := findR(ba.rconns(t), local, srvAddr)
	if !ok || c.State != "plain" {
		t.Errorf("client side: %+v (tracked %v), want state plain", c, ok)
	}
	cli.stop(5 * time.Second)
	srv.stop(5 * time.Second)
	stopRedirect(t, ba, p.a)
}

// TestRedirectRefused: a connection to a closed port fails with
// "connection refused", as without tcpinc, whether the server side runs
// a backend or not; so does one to an address nobody answers for, with
// a timeout.
func TestRedirectRefused(t *testing.T) {
	requireNetns(t)
	for _, tc := range []struct {
		name   string
		server bool
		addr   string
	}{{"peer-with-backend", true, addrB4}, {"peer-without", false, addrB4}, {"ipv6", true, addrB6}} {
		t.Run(tc.name, func(t *testing.T) {
			p := newRPair(t)
			ba := startRedirect(t, p.a)
			var bb *child
			if tc.server {
				bb = startRedirect(t, p.b)
			}
			start := time.Now()
			cli := spawn(t, p.a, "client", net.JoinHostPort(tc.addr, "7199"), "10", "10")
			msg := cli.expect("ERROR", 10*time.Second)
			if !strings.Contains(msg, "connection refused") {
				t.Errorf("client: %q, want connection refused", msg)
			}
			t.Logf("refused after %v: %s", time.Since(start).Round(time.Millisecond), msg)
			ctr := ba.rcounters(t)
			if ctr.Proxy.Refused != 1 || ctr.GateReleased != 1 {
				t.Errorf("client side: refused %d, released %d; want 1, 1", ctr.Proxy.Refused, ctr.GateReleased)
			}
			stopRedirect(t, ba, p.a)
			if bb != nil {
				stopRedirect(t, bb, p.b)
			}
		})
	}
}

// TestRedirectDivertInterop: redirect mode on one end, divert mode on the
// other, in both directions: the same protocol on the wire.
func TestRedirectDivertInterop(t *testing.T) {
	requireNetns(t)
	for _, tc := range []struct {
		name            string
		clientRedirects bool
	}{{"redirect-client", true}, {"redirect-server", false}} {
		t.Run(tc.name, func(t *testing.T) {
			p := newRPair(t)
			wire := startCapture(t, p.a, p.la)
			var ba, bb *child
			if tc.clientRedirects {
				ba, bb = startRedirect(t, p.a), startDivertR(t, p.b)
			} else {
				ba, bb = startDivertR(t, p.a), startRedirect(t, p.b)
			}
			srvAddr := net.JoinHostPort(addrB4, "7103")
			cli, srv, local, _ := transfer(t, p.a, p.b, srvAddr, 2<<20, 512<<10)
			var ids [2]string
			if tc.clientRedirects {
				c, _ := findR(ba.rconns(t), local, srvAddr)
				var d connJSON
				for _, x := range bb.conns(t) {
					if x.Local == srvAddr {
						d = x
					}
				}
				ids = [2]string{c.SessionID, d.SessionID}
			} else {
				c, _ := find(ba.conns(t), local, srvAddr)
				d, _ := findR(bb.rconns(t), srvAddr, "")
				ids = [2]string{c.SessionID, d.SessionID}
			}
			if ids[0] == "" || ids[0] != ids[1] {
				t.Errorf("session IDs: client %q, server %q; want equal, non-empty", ids[0], ids[1])
			}
			cli.stop(5 * time.Second)
			srv.stop(5 * time.Second)
			if bytes.Contains(wire.bytes(t), []byte(marker)) {
				t.Error("plaintext on the wire")
			}
			if tc.clientRedirects {
				stopRedirect(t, ba, p.a)
				stopBackend(t, bb, p.b)
			} else {
				stopBackend(t, ba, p.a)
				stopRedirect(t, bb, p.b)
			}
		})
	}
}

// TestRedirectThroughput measures a 100 MiB transfer through redirect
// mode against plain TCP on the same link, in the same run: three rounds
// each, alternating, best of each (the machine is shared). The plain
// transfers use a port the backends exclude. It reports; it asserts
// nothing about speed.
func TestRedirectThroughput(t *testing.T) {
	requireNetns(t)
	if testing.Short() {
		t.Skip("-short: no 100 MiB transfers")
	}
	if raceEnabled {
		t.Skip("the race detector makes throughput figures meaningless")
	}
	const size = 100 << 20
	p := newRPair(t)
	ba, bb := startRedirect(t, p.a, "7110"), startRedirect(t, p.b, "7110")
	redAddr, plainAddr := net.JoinHostPort(addrB4, "7104"), net.JoinHostPort(addrB4, "7110")
	for _, a := range []string{redAddr, plainAddr} {
		sink := spawn(t, p.b, "sink", a)
		sink.expect("LISTENING", 5*time.Second)
	}
	measure := func(addr string) float64 {
		src := spawn(t, p.a, "source", addr, itoa(size))
		_, secs := splitDone(src.expect("DONE", 120*time.Second))
		src.stop(5 * time.Second)
		return secs
	}
	plain, red := math.Inf(1), math.Inf(1)
	for range 3 {
		plain = min(plain, measure(plainAddr))
		red = min(red, measure(redAddr))
	}
	ctr := ba.rcounters(t)
	if ctr.Proxy.Encrypted != 3 || ctr.Proxy.BytesOut != 3*size {
		t.Errorf("the redirected transfers were not all encrypted: %+v", ctr.Proxy)
	}
	mib := float64(size) / (1 << 20)
	t.Logf("100 MiB, best of 3: plain %.3f s (%.0f MiB/s), redirect %.3f s (%.0f MiB/s): redirect/plain = %.2f",
		plain, mib/plain, red, mib/red, plain/red)
	stopRedirect(t, ba, p.a)
	stopRedirect(t, bb, p.b)
}

// TestRedirectHalfCloseReset: a client's half-close reaches the server
// as EOF while the reply still comes back; a server's reset reaches the
// client as a reset, not an EOF.
func TestRedirectHalfCloseReset(t *testing.T) {
	requireNetns(t)
	p := newRPair(t)
	ba, bb := startRedirect(t, p.a), startRedirect(t, p.b)
	srvAddr := net.JoinHostPort(addrB4, "7105")
	srv := spawn(t, p.b, "halfclose", "server", srvAddr)
	srv.expect("LISTENING", 5*time.Second)
	cli := spawn(t, p.a, "halfclose", "client", srvAddr, itoa(300000))
	cli.expect("DONE", 20*time.Second)
	srv.expect("SERVED", 5*time.Second)

	srvAddr = net.JoinHostPort(addrB4, "7106")
	srv = spawn(t, p.b, "reset", "server", srvAddr)
	srv.expect("LISTENING", 5*time.Second)
	cli = spawn(t, p.a, "reset", "client", srvAddr)
	if msg := cli.expect("READERR", 15*time.Second); !strings.Contains(msg, "connection reset") {
		t.Errorf("client read after the server's reset: %q, want connection reset", msg)
	}
	if n := ba.rcounters(t).Proxy.Encrypted; n != 2 {
		t.Errorf("%d connections encrypted, want 2", n)
	}
	stopRedirect(t, ba, p.a)
	stopRedirect(t, bb, p.b)
}

// TestRedirectResumption: a second connection to the same peer resumes
// the first one's session (no Init1/Init2), with equal session IDs.
func TestRedirectResumption(t *testing.T) {
	requireNetns(t)
	p := newRPair(t)
	ba, bb := startRedirect(t, p.a), startRedirect(t, p.b)
	srvAddr := net.JoinHostPort(addrB4, "7107")
	srv := spawn(t, p.b, "server", srvAddr)
	srv.expect("LISTENING", 5*time.Second)
	for i := range 2 {
		cli := spawn(t, p.a, "client", srvAddr, itoa(100000), itoa(1000))
		local, _ := splitDone(cli.expect("DONE", 20*time.Second))
		ca, okA := findR(ba.rconns(t), local, srvAddr)
		var cb rconnJSON
		okB := false
		for _, c := range bb.rconns(t) {
			if c.Local == srvAddr && c.SessionID == ca.SessionID {
				cb, okB = c, true
			}
		}
		if !okA || !okB || ca.State != "encrypted" || ca.Resumed != (i == 1) || cb.Resumed != (i == 1) {
			t.Errorf("connection %d: client %+v (%v), server %+v (%v); want encrypted, resumed %v, same session ID", i, ca, okA, cb, okB, i == 1)
		}
		cli.stop(5 * time.Second)
	}
	srv.stop(5 * time.Second)
	if n := bb.rcounters(t).Proxy.Resumed; n != 1 {
		t.Errorf("server side resumed %d connections, want 1", n)
	}
	stopRedirect(t, ba, p.a)
	stopRedirect(t, bb, p.b)
}

// TestRedirectUnreachable: a destination that never answers stays
// unanswered for the application: its connect times out, it is not
// accepted and then closed.
func TestRedirectUnreachable(t *testing.T) {
	requireNetns(t)
	p := newRPair(t)
	ba := startRedirect(t, p.a)
	mustRun(t, "ip", "netns", "exec", p.b, "nft", "add table inet tcirblackhole { chain in { type filter hook input priority 0; tcp dport 7108 drop; }; }")
	cli := spawn(t, p.a, "client", net.JoinHostPort(addrB4, "7108"), "10", "10")
	if msg := cli.expect("ERROR", 15*time.Second); !strings.Contains(msg, "timeout") {
		t.Errorf("client: %q, want a connect timeout", msg)
	}
	if c := ba.rcounters(t); c.Proxy.Conns != 0 {
		t.Errorf("%d connections proxied to a destination that never answered", c.Proxy.Conns)
	}
	stopRedirect(t, ba, p.a)
}

// helperSink: "sink <addr>" accepts connections, reads each to EOF and
// answers with the byte count (8 bytes) before closing: a throughput
// server that costs no CPU per byte but the copy.
func helperSink(args []string) error {
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	fmt.Println("LISTENING", ln.Addr())
	go func() { io.Copy(io.Discard, os.Stdin); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil
		}
		go func() {
			defer c.Close()
			n, err := io.Copy(io.Discard, c)
			if err != nil {
				fmt.Println("SINKERR", err)
				return
			}
			c.Write(binary.BigEndian.AppendUint64(nil, uint64(n)))
			fmt.Println("SUNK", n)
		}()
	}
}

// helperSource: "source <addr> <bytes>" sends that many bytes of
// marker-laden data (a 1 MiB block repeated), half-closes, waits for
// the sink's count and prints "DONE <local> <seconds from connect to
// count>".
func helperSource(args []string) error {
	n, _ := strconv.Atoi(args[1])
	block := pattern(1<<20, 3)
	start := time.Now()
	c, err := net.DialTimeout("tcp", args[0], 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(120 * time.Second))
	for left := n; left > 0; {
		k := min(left, len(block))
		if _, err := c.Write(block[:k]); err != nil {
			return fmt.Errorf("sending: %w", err)
		}
		left -= k
	}
	c.(*net.TCPConn).CloseWrite()
	var cnt [8]byte
	if _, err := io.ReadFull(c, cnt[:]); err != nil {
		return fmt.Errorf("reading the count: %w", err)
	}
	if got := binary.BigEndian.Uint64(cnt[:]); got != uint64(n) {
		return fmt.Errorf("the sink received %d bytes, want %d", got, n)
	}
	fmt.Println("DONE", c.LocalAddr(), time.Since(start).Seconds())
	return nil
}

// helperHalfClose: "halfclose server <addr>" reads to EOF, then replies
// with the SHA-256 of what it read and closes; "halfclose client <addr>
// <bytes>" sends, half-closes, and checks the reply arrives after its
// own FIN: half-close carried through both proxies.
func helperHalfClose(args []string) error {
	if args[0] == "server" {
		ln, err := net.Listen("tcp", args[1])
		if err != nil {
			return err
		}
		fmt.Println("LISTENING", ln.Addr())
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		defer c.Close()
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond) // the reply clearly follows the FIN
		_, err = c.Write(h.Sum(nil))
		fmt.Println("SERVED")
		return err
	}
	n, _ := strconv.Atoi(args[2])
	c, err := net.DialTimeout("tcp", args[1], 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	data := pattern(n, 4)
	if _, err := c.Write(data); err != nil {
		return err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("reading after half-close: %w", err)
	}
	want := sha256.Sum256(data)
	if !bytes.Equal(got, want[:]) {
		return fmt.Errorf("reply after half-close: %x, want %x", got, want)
	}
	fmt.Println("DONE")
	return nil
}

// helperReset: "reset server <addr>" accepts one connection, reads a
// byte, then aborts it with SO_LINGER 0; "reset client <addr>" writes a
// byte and prints "READERR <error>" for what its next read returns.
func helperReset(args []string) error {
	if args[0] == "server" {
		ln, err := net.Listen("tcp", args[1])
		if err != nil {
			return err
		}
		fmt.Println("LISTENING", ln.Addr())
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		io.ReadFull(c, make([]byte, 1))
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		fmt.Println("RESET")
		return nil
	}
	c, err := net.DialTimeout("tcp", args[1], 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte{1})
	_, err = c.Read(make([]byte, 1))
	fmt.Println("READERR", err)
	return nil
}

// TestRedirectCrash: a backend killed with SIGKILL leaves its table, and
// the host then talks plain TCP (the queues bypass, nothing is marked for
// redirection); the next start replaces the table and encrypts again.
func TestRedirectCrash(t *testing.T) {
	requireNetns(t)
	p := newRPair(t)
	bb := startRedirect(t, p.b)
	ba := startRedirect(t, p.a)
	ba.kill()
	if out := mustRun(t, "ip", "netns", "exec", p.a, "nft", "list", "tables"); !strings.Contains(out, RedirectTableName) {
		t.Fatalf("no stale table after SIGKILL: %s", out)
	}
	srvAddr := net.JoinHostPort(addrB4, "7111")
	cli, srv, _, _ := transfer(t, p.a, p.b, srvAddr, 100000, 1000)
	cli.stop(5 * time.Second)
	ba = startRedirect(t, p.a)
	cli = spawn(t, p.a, "client", srvAddr, itoa(100000), itoa(1000))
	local, _ := splitDone(cli.expect("DONE", 20*time.Second))
	if c, ok := findR(ba.rconns(t), local, srvAddr); !ok || c.State != "encrypted" {
		t.Errorf("after the restart: %+v (tracked %v), want encrypted", c, ok)
	}
	cli.stop(5 * time.Second)
	srv.stop(5 * time.Second)
	stopRedirect(t, ba, p.a)
	stopRedirect(t, bb, p.b)
}

// TestRedirectApply: with the policy off, new connections are neither
// held nor proxied; an excluded port likewise; turning it on again
// encrypts.
func TestRedirectApply(t *testing.T) {
	requireNetns(t)
	p := newRPair(t)
	ba, bb := startRedirect(t, p.a), startRedirect(t, p.b)
	srvAddr := net.JoinHostPort(addrB4, "7112")
	srv := spawn(t, p.b, "server", srvAddr)
	srv.expect("LISTENING", 5*time.Second)
	apply := func(pol core.Policy) {
		js, _ := json.Marshal(pol)
		ba.send("apply " + string(js))
		if msg := ba.expect("APPLIED", 5*time.Second); msg != "<nil>" {
			t.Fatalf("apply: %s", msg)
		}
	}
	try := func(want string) {
		t.Helper()
		before := ba.rcounters(t).GateQueued
		cli := spawn(t, p.a, "client", srvAddr, itoa(10000), itoa(100))
		local, _ := splitDone(cli.expect("DONE", 20*time.Second))
		c, ok := findR(ba.rconns(t), local, srvAddr)
		queued := ba.rcounters(t).GateQueued - before
		switch {
		case want == "untouched" && (ok || queued != 0):
			t.Errorf("connection proxied (%+v) or held (%d SYNs) although the policy leaves it alone", c, queued)
		case want == "encrypted" && (!ok || c.State != "encrypted"):
			t.Errorf("connection %+v (tracked %v), want encrypted", c, ok)
		}
		cli.stop(5 * time.Second)
	}
	off := core.DefaultPolicy()
	off.Enabled = false
	apply(off)
	try("untouched")
	excl := core.DefaultPolicy()
	excl.ExcludePorts = []uint16{7112}
	apply(excl)
	try("untouched")
	apply(core.DefaultPolicy())
	try("encrypted")
	srv.stop(5 * time.Second)
	stopRedirect(t, ba, p.a)
	stopRedirect(t, bb, p.b)
}

// helperEcho: "echo <addr>" echoes every connection until EOF, quietly.
func helperEcho(args []string) error {
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	fmt.Println("LISTENING", ln.Addr())
	go func() { io.Copy(io.Discard, os.Stdin); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

// helperMany: "many <addr> <total> <parallel> [<spread>]" opens total
// short connections, parallel at a time; each sends 2000 bytes,
// half-closes and checks the echo. With spread, connection i goes to the
// IPv4 address i%spread above addr's (same port). It prints
// "DONE <seconds>" if all succeed.
func helperMany(args []string) error {
	total, _ := strconv.Atoi(args[1])
	par, _ := strconv.Atoi(args[2])
	base, err := netip.ParseAddrPort(args[0])
	if err != nil {
		return err
	}
	spread := 1
	if len(args) > 3 {
		spread, _ = strconv.Atoi(args[3])
	}
	addrs := make([]string, spread)
	for i, a := 0, base.Addr(); i < spread; i, a = i+1, a.Next() {
		addrs[i] = netip.AddrPortFrom(a, base.Port()).String()
	}
	msg := pattern(2000, 5)
	start := time.Now()
	errs := make(chan error, total)
	sem := make(chan struct{}, par)
	for i := range total {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addrs[i%spread], 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := c.Write(msg); err != nil {
				errs <- err
				return
			}
			c.(*net.TCPConn).CloseWrite()
			got, err := io.ReadAll(c)
			if err == nil && !bytes.Equal(got, msg) {
				err = fmt.Errorf("echo differs: %d bytes", len(got))
			}
			errs <- err
		}()
	}
	var failed []error
	for range total {
		if err := <-errs; err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d connections failed, first: %v", len(failed), total, failed[0])
	}
	fmt.Println("DONE", time.Since(start).Seconds())
	return nil
}

// TestRedirectMany: 300 sequential and 200 parallel short connections,
// all encrypted and intact; and, for the record, the rate of 300
// sequential ones against plain TCP (a port the backends exclude).
func TestRedirectMany(t *testing.T) {
	requireNetns(t)
	p := newRPair(t)
	ba, bb := startRedirect(t, p.a, "7114"), startRedirect(t, p.b, "7114")
	srvAddr, plainAddr := net.JoinHostPort(addrB4, "7113"), net.JoinHostPort(addrB4, "7114")
	for _, a := range []string{srvAddr, plainAddr} {
		srv := spawn(t, p.b, "echo", a)
		srv.expect("LISTENING", 5*time.Second)
	}
	secs := map[string]float64{}
	for _, tc := range []struct{ addr, total, par string }{{plainAddr, "300", "1"}, {srvAddr, "300", "1"}, {srvAddr, "200", "200"}} {
		cli := spawn(t, p.a, "many", tc.addr, tc.total, tc.par)
		s, _ := strconv.ParseFloat(cli.expect("DONE", 120*time.Second), 64)
		secs[tc.addr+"/"+tc.par] = s
		t.Logf("%s connections to %s, %s at a time: %.3f s", tc.total, tc.addr, tc.par, s)
		cli.stop(5 * time.Second)
	}
	if pl, red := secs[plainAddr+"/1"], secs[srvAddr+"/1"]; pl > 0 && red > 0 {
		t.Logf("sequential connections per second: plain %.0f, redirect %.0f (full handshakes and resumed mixed): redirect/plain = %.2f",
			300/pl, 300/red, pl/red)
	}
	ctr := ba.rcounters(t)
	if ctr.Proxy.Encrypted != 500 || ctr.Proxy.Aborted != 0 {
		t.Errorf("client side: %d encrypted, %d aborted; want 500, 0 (%+v)", ctr.Proxy.Encrypted, ctr.Proxy.Aborted, ctr)
	}
	t.Logf("client side: %d of %d resumed", ctr.Proxy.Resumed, ctr.Proxy.Encrypted)
	stopRedirect(t, ba, p.a)
	stopRedirect(t, bb, p.b)
}

// TestRedirectLoss: 5 % of TCP packets arriving in either namespace are
// dropped (before conntrack and the backend's rules), so SYNs, SYN-ACKs,
// ACKs carrying ENO and Init messages are lost too; every transfer must
// still complete intact, encrypted.
func TestRedirectLoss(t *testing.T) {
	requireNetns(t)
	p := newRPair(t)
	for _, ns := range []string{p.a, p.b} {
		mustRun(t, "ip", "netns", "exec", ns, "nft",
			"add table inet tcirloss { chain in { type filter hook prerouting priority -400; iif != lo meta l4proto tcp numgen random mod 100 < 5 counter drop; }; }")
	}
	ba, bb := startRedirect(t, p.a), startRedirect(t, p.b)
	srvAddr := net.JoinHostPort(addrB4, "7115")
	cli, srv, local, secs := transfer(t, p.a, p.b, srvAddr, 2<<20, 512<<10)
	t.Logf("2 MiB + 512 KiB over a lossy link in %.2f s", secs)
	if c, ok := findR(ba.rconns(t), local, srvAddr); !ok || c.State != "encrypted" {
		t.Errorf("bulk connection: %+v (tracked %v), want encrypted", c, ok)
	}
	cli.stop(5 * time.Second)
	srv.stop(5 * time.Second)
	echo := spawn(t, p.b, "echo", net.JoinHostPort(addrB4, "7116"))
	echo.expect("LISTENING", 5*time.Second)
	many := spawn(t, p.a, "many", net.JoinHostPort(addrB4, "7116"), "60", "4")
	t.Logf("60 short connections, 4 at a time: %s s", many.expect("DONE", 120*time.Second))
	ctr := ba.rcounters(t)
	if ctr.Proxy.Encrypted != 61 || ctr.Proxy.Plain != 0 {
		t.Errorf("client side: %d encrypted, %d plain; want 61, 0 (%+v)", ctr.Proxy.Encrypted, ctr.Proxy.Plain, ctr.Proxy)
	}
	t.Logf("drops: %s", strings.Join(strings.Fields(mustRun(t, "ip", "netns", "exec", p.a, "nft", "list", "table", "inet", "tcirloss")), " "))
	stopRedirect(t, ba, p.a)
	stopRedirect(t, bb, p.b)
}

// TestRedirectQueueInUse: a second backend on the same queues says which
// queue is taken, and the first keeps its rules.
func TestRedirectQueueInUse(t *testing.T) {
	requireNetns(t)
	p := newRPair(t)
	ba := startRedirect(t, p.a)
	second := spawn(t, p.a, "rbackend", "0")
	if msg := second.expect("ERROR", 10*time.Second); !strings.Contains(msg, "in use by another process") {
		t.Errorf("second backend on queue 0: %q, want an 'in use by another process' error", msg)
	}
	if out := mustRun(t, "ip", "netns", "exec", p.a, "nft", "list", "tables"); !strings.Contains(out, RedirectTableName) {
		t.Errorf("the first backend's table is gone: %s", out)
	}
	stopRedirect(t, ba, p.a)
}

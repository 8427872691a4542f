//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// eachMode runs f as a parallel subtest for every capture mode; a mode
// tcpincd does not offer skips with the reason.
func eachMode(t *testing.T, f func(t *testing.T, mode string)) {
	setup(t)
	for _, m := range modes {
		t.Run(m, func(t *testing.T) {
			requireMode(t, m)
			t.Parallel()
			f(t, m)
		})
	}
}

// short is the mode's letter in namespace names.
func short(mode string) string { return mode[:1] }

// both starts tcpincd in the client and the server.
func both(t *testing.T, tp *topo, clientMode, serverMode string) (c, s *daemon) {
	t.Helper()
	return startDaemon(t, tp.client, clientMode), startDaemon(t, tp.server, serverMode)
}

// noFailures checks the counters that must stay zero on a clean link
// (divert mode's engine counters, redirect mode's proxy counters).
func noFailures(t *testing.T, ds ...*daemon) {
	t.Helper()
	for _, d := range ds {
		st := d.status(t)
		for _, name := range []string{"integrity_failures", "abort_integrity", "abort_bad_init", "abort_internal", "abort_fin_without_finp",
			"proxy_integrity", "proxy_handshake_failed"} {
			if v := st.counter(name); v != 0 {
				t.Errorf("tcpincd in %s: counter %s = %d, want 0", d.n.name, name, v)
			}
		}
	}
}

// httpCase serves a 16 MiB marker file from the server and fetches it
// with curl at 5 MB/s, so that both daemons can be asked about the live
// connection. (Redirect mode forgets a connection once its wire leg
// closes, which can be long before curl has read everything the proxy
// buffered: the file must be well above the socket buffers for the wire
// leg to stay open a while.)
func httpCase(t *testing.T, tp *topo, host string, c, s *daemon) {
	t.Helper()
	const port = 8080
	www := t.TempDir()
	_, data := markerFile(t, www, "marker.txt", 16<<20)
	httpServer(tp.server, www, host, port)
	tap := tp.client.startCapture(tp.clientLink, port)
	w := watch(c, s, port)
	got, err := curl(tp.client, urlFor(host, port, "marker.txt"), "--limit-rate", "5M")
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "curl", got, data)
	w.requireEncrypted(t)
	tap.stop().requireCiphertext(t, marker)
}

// TestCurlHTTP: curl fetches a file from python3's http.server.
func TestCurlHTTP(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		tp := newDirect(t, "http-"+short(mode))
		c, s := both(t, tp, mode, mode)
		httpCase(t, tp, tp.server4, c, s)
		noFailures(t, c, s)
		c.stop(t)
		s.stop(t)
	})
}

// TestIPv6: the same over IPv6 (nodad addresses), plus short
// connections.
func TestIPv6(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		tp := newDirect(t, "v6-"+short(mode))
		c, s := both(t, tp, mode, mode)
		httpCase(t, tp, tp.server6, c, s)

		const port = 7006
		loadServer(tp.server, port, tp.server6)
		tap := tp.client.startCapture(tp.clientLink, port)
		w := watch(c, s, port)
		load(t, tp.client, tp.server6, port, 50, 10, 4096, "-hold", "200ms")
		w.requireEncrypted(t)
		tap.stop().requireCiphertext(t, loadMarker)
		noFailures(t, c, s)
		c.stop(t)
		s.stop(t)
	})
}

// TestIperf3: bulk transfers both ways with a fixed byte count.
// iperf3 does not check what it receives, so the checks here are the
// counts: iperf3 sent the requested bytes, and the receiver's tcpincd
// decrypted (each frame authenticated) no less than iperf3 read and no
// more than the sender's encrypted. The other cases compare content.
func TestIperf3(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		const port = 5201
		const size = 64 << 20
		tp := newDirect(t, "iperf-"+short(mode))
		c, s := both(t, tp, mode, mode)
		tp.server.start("iperf3-server", "iperf3", "-s", "-p", fmt.Sprint(port))
		tp.server.waitListening(nil, port)
		for _, reverse := range []bool{false, true} {
			tap := tp.client.startCapture(tp.clientLink, port)
			w := watch(c, s, port)
			sender, receiver := c, s
			if reverse {
				sender, receiver = s, c
			}
			before := [2]status{sender.status(t), receiver.status(t)}
			r := iperf(t, tp.client, tp.server4, port, size, reverse)
			if r.End.SumSent.Bytes < size {
				t.Errorf("iperf3 (reverse %v) sent %.0f bytes, want %d", reverse, r.End.SumSent.Bytes, size)
			}
			t.Logf("iperf3 reverse=%v: %.0f Mbit/s", reverse, r.End.SumReceived.BitsPerSecond/1e6)
			time.Sleep(300 * time.Millisecond) // the end of the transfer may still be in flight
			bulkBytes(t, sender, receiver, before, uint64(r.End.SumReceived.Bytes))
			w.requireEncrypted(t)
			tap.stop().requireCiphertext(t, iperfMarker)
		}
		noFailures(t, c, s)
		c.stop(t)
		s.stop(t)
	})
}

// bulkBytes checks the daemons' byte counters over one iperf3 run
// against what the receiving iperf3 read: the receiver's tcpincd
// decrypted at least that much, and never more than the sender's
// encrypted. (iperf3 stops reading once the byte count is sent and
// resets the connection, so the tail of a transfer may never be read.)
func bulkBytes(t *testing.T, sender, receiver *daemon, before [2]status, read uint64) {
	t.Helper()
	after := [2]status{sender.status(t), receiver.status(t)}
	if _, ok := after[0].Counters["engine_bytes_encrypted"]; !ok && after[0].counter("bytes_encrypted") == 0 {
		t.Logf("tcpincd --mode %s has no bytes_encrypted counter: byte counts not compared", sender.mode)
		return
	}
	enc := after[0].counter("bytes_encrypted") - before[0].counter("bytes_encrypted")
	dec := after[1].counter("bytes_decrypted") - before[1].counter("bytes_decrypted")
	if dec < read || dec > enc {
		t.Errorf("the sender's tcpincd encrypted %d bytes, the receiver's decrypted %d, iperf3 read %d: want read <= decrypted <= encrypted", enc, dec, read)
	} else {
		t.Logf("the sender's tcpincd encrypted %d bytes, the receiver's decrypted %d, iperf3 read %d", enc, dec, read)
	}
}

// TestSSH: OpenSSH's sshd with a throwaway host key, ssh running a
// command and scp copying a random file both ways. The marker is the SSH
// version banner, which plain TCP shows on the wire.
func TestSSH(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		if env.noSSH != "" {
			t.Skip(env.noSSH)
		}
		const port = 2222
		const banner = "SSH-2.0-"
		tp := newDirect(t, "ssh-"+short(mode))
		c, s := both(t, tp, mode, mode)
		dir := t.TempDir()
		keygen := func(name string) {
			mustRun(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tcie-"+name, "-f", filepath.Join(dir, name))
		}
		keygen("host_key")
		keygen("user_key")
		pub, _ := os.ReadFile(filepath.Join(dir, "user_key.pub"))
		hostPub, _ := os.ReadFile(filepath.Join(dir, "host_key.pub"))
		os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
		os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(fmt.Sprintf("[%s]:%d %s", tp.server4, port, hostPub)), 0o600)
		cfg := fmt.Sprintf(`Port %d
ListenAddress %s
HostKey %s/host_key
AuthorizedKeysFile %s/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
Subsystem sftp internal-sftp
`, port, tp.server4, dir, dir)
		os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600)
		os.MkdirAll("/run/sshd", 0o755) // sshd's privilege separation directory
		sshd := tp.server.start("sshd", "/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
		tp.server.waitListening(sshd, port)

		opts := []string{"-F", "/dev/null", "-i", filepath.Join(dir, "user_key"), "-o", "IdentitiesOnly=yes",
			"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
			"-o", "UserKnownHostsFile=" + filepath.Join(dir, "known_hosts"), "-o", "ConnectTimeout=10"}
		src, data := markerFile(t, dir, "payload", 4<<20)
		tap := tp.client.startCapture(tp.clientLink, port)
		w := watch(c, s, port)

		// ssh runs a command whose output is the file.
		cmd := tp.client.cmd(append(append([]string{"ssh", "-p", fmt.Sprint(port)}, opts...), "root@"+tp.server4, "cat", src)...)
		got, err := cmd.Output()
		if err != nil {
			t.Fatalf("ssh cat: %v; sshd log:\n%s", err, tail(sshd.output(), 2000))
		}
		sameBytes(t, "ssh cat", got, data)

		// scp there and back.
		scp := append([]string{"scp", "-q", "-P", fmt.Sprint(port)}, opts...)
		there := filepath.Join(dir, "there")
		if out, err := tp.client.run(append(scp, src, "root@"+tp.server4+":"+there)...); err != nil {
			t.Fatalf("scp upload: %v: %s", err, out)
		}
		back := filepath.Join(dir, "back")
		if out, err := tp.client.run(append(scp, "root@"+tp.server4+":"+there, back)...); err != nil {
			t.Fatalf("scp download: %v: %s", err, out)
		}
		for _, f := range []string{there, back} {
			b, _ := os.ReadFile(f)
			sameBytes(t, "scp "+filepath.Base(f), b, data)
		}
		w.requireEncrypted(t)
		tap.stop().requireCiphertext(t, banner)
		noFailures(t, c, s)
		c.stop(t)
		s.stop(t)
	})
}

// TestManyConnections: 1,000 sequential and 200 parallel short
// connections, every echo intact; afterwards both connection tables
// drain.
func TestManyConnections(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		const port = 7000
		tp := newDirect(t, "many-"+short(mode))
		c, s := both(t, tp, mode, mode)
		loadServer(tp.server, port, tp.server4)
		tap := tp.client.startCapture(tp.clientLink, port)
		w := watch(c, s, port)
		load(t, tp.client, tp.server4, port, 1000, 1, 1024)
		load(t, tp.client, tp.server4, port, 200, 200, 1024)
		w.requireEncrypted(t)
		tap.stop().requireCiphertext(t, loadMarker)
		// Divert mode counts conns_*, redirect mode proxy_*.
		st := c.status(t)
		t.Logf("client tcpincd: %d encrypted, %d resumed, %d plain",
			st.counter("conns_encrypted")+st.counter("proxy_encrypted"), st.counter("conns_resumed")+st.counter("proxy_resumed"),
			st.counter("conns_plain")+st.counter("proxy_plain"))
		noFailures(t, c, s)

		// Closed connections stay for TIME_WAIT (30 s in divert mode).
		left := func() (n int, sample []conn) {
			for _, d := range []*daemon{c, s} {
				cs, err := d.conns()
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range cs {
					if x.hasPort(port) {
						n++
						if len(sample) < 3 {
							sample = append(sample, x)
						}
					}
				}
			}
			return n, sample
		}
		if !waitFor(75*time.Second, func() bool { n, _ := left(); return n == 0 }) {
			n, sample := left()
			t.Errorf("connection tables did not drain within 75 s: %d connections on port %d left, e.g. %+v", n, port, sample)
		}
		c.stop(t)
		s.stop(t)
	})
}

// TestOneEndPlain: tcpincd at only one end; the connection stays plain
// TCP (the marker is on the wire) and works.
func TestOneEndPlain(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		for _, side := range []string{"client", "server"} {
			t.Run("only-"+side, func(t *testing.T) {
				const port = 8080
				tp := newDirect(t, "plain"+side[:1]+"-"+short(mode))
				var c, s *daemon
				if side == "client" {
					c = startDaemon(t, tp.client, mode)
				} else {
					s = startDaemon(t, tp.server, mode)
				}
				www := t.TempDir()
				_, data := markerFile(t, www, "marker.txt", 1<<20)
				httpServer(tp.server, www, tp.server4, port)
				tap := tp.client.startCapture(tp.clientLink, port)
				w := watch(c, s, port)
				got, err := curl(tp.client, urlFor(tp.server4, port, "marker.txt"))
				if err != nil {
					t.Fatal(err)
				}
				sameBytes(t, "curl", got, data)
				w.requirePlain(t)
				tap.stop().requirePlaintext(t, marker)
				for _, d := range []*daemon{c, s} {
					if d != nil {
						d.stop(t)
					}
				}
			})
		}
	})
}

// TestENOStripped: a router strips option 69 (xt TCPOPTSTRIP); both ends
// fall back to plain TCP and the data is intact.
func TestENOStripped(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		const port = 8080
		tp := newRouted(t, "strip-"+short(mode))
		for _, ipt := range []string{"iptables", "ip6tables"} {
			tp.router.must(ipt, "-t", "mangle", "-A", "FORWARD", "-p", "tcp", "-j", "TCPOPTSTRIP", "--strip-options", "69")
		}
		c, s := both(t, tp, mode, mode)
		www := t.TempDir()
		_, data := markerFile(t, www, "marker.txt", 1<<20)
		// python3's server listens on one address: one per family.
		httpServer(tp.server, www, tp.server4, port)
		httpServer(tp.server, www, tp.server6, port+1)
		capC := tp.client.startCapture(tp.clientLink, port)
		capS := tp.server.startCapture(tp.serverLink, port)
		for i, host := range []string{tp.server4, tp.server6} {
			w := watch(c, s, port+i)
			got, err := curl(tp.client, urlFor(host, port+i, "marker.txt"))
			if err != nil {
				t.Fatal(err)
			}
			sameBytes(t, "curl to "+host, got, data)
			w.requirePlain(t)
		}
		wc, ws := capC.stop(), capS.stop()
		wc.requirePlaintext(t, marker)
		if wc.synsENO == 0 {
			t.Errorf("the client's SYNs carry no ENO option: the stripping was not tested")
		}
		if ws.synsENO != 0 {
			t.Errorf("%d SYNs on the server's link still carry ENO: TCPOPTSTRIP did not strip it", ws.synsENO)
		}
		c.stop(t)
		s.stop(t)
	})
}

// TestNAT: a router masquerades the client; the connection is encrypted.
func TestNAT(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		tp := newRouted(t, "nat-"+short(mode))
		tp.router.must("nft", "add table ip tcie_nat")
		tp.router.must("nft", "add chain ip tcie_nat post { type nat hook postrouting priority srcnat; }")
		tp.router.must("nft", "add rule ip tcie_nat post oifname "+linkRS+" masquerade")
		c, s := both(t, tp, mode, mode)
		const port = 8080
		www := t.TempDir()
		_, data := markerFile(t, www, "marker.txt", 16<<20)
		httpServer(tp.server, www, tp.server4, port)
		capS := tp.server.startCapture(tp.serverLink, port)
		w := watch(c, s, port)
		got, err := curl(tp.client, urlFor(tp.server4, port, "marker.txt"), "--limit-rate", "5M")
		if err != nil {
			t.Fatal(err)
		}
		sameBytes(t, "curl", got, data)
		w.requireEncrypted(t)
		ws := capS.stop()
		ws.requireCiphertext(t, marker)
		// The server must have seen the router's address, or the NAT was
		// not in the path.
		for _, sc := range w.s {
			if strings.HasPrefix(sc.Remote, "10.231.61.1:") {
				t.Errorf("server saw the client's own address %s: no NAT on the path", sc.Remote)
			}
		}
		noFailures(t, c, s)
		c.stop(t)
		s.stop(t)
	})
}

// The loss case: lossPercent of the forwarded TCP packets dropped while
// lossSize bytes go through.
const (
	lossPercent = "2"
	lossSize    = 4 << 20
)

// TestLoss: the router drops 2% of the TCP packets it forwards (nft
// numgen; this kernel has no netem); the data arrives intact, encrypted.
func TestLoss(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		tp := newRouted(t, "loss-"+short(mode))
		tp.router.must("nft", "add table inet tcie_loss")
		tp.router.must("nft", "add chain inet tcie_loss drop_some { type filter hook forward priority 0; }")
		tp.router.must("nft", "add rule inet tcie_loss drop_some meta l4proto tcp numgen random mod 100 < "+lossPercent+" counter drop")
		c, s := both(t, tp, mode, mode)
		www := t.TempDir()
		_, data := markerFile(t, www, "marker.txt", lossSize)
		httpServer(tp.server, www, tp.server4, 8080)
		const port = 7000
		loadServer(tp.server, port, tp.server4)
		tap := tp.client.startCapture(tp.clientLink, 8080)
		got, err := curl(tp.client, urlFor(tp.server4, 8080, "marker.txt"))
		if err != nil {
			t.Fatal(err)
		}
		sameBytes(t, "curl", got, data)
		tap.stop().requireCiphertext(t, marker)
		// Short connections, held open a moment so that both daemons
		// can be asked about them.
		w := watch(c, s, port)
		load(t, tp.client, tp.server4, port, 20, 4, 16<<10, "-hold", "300ms")
		w.requireEncrypted(t)
		out := tp.router.must("nft", "list table inet tcie_loss")
		if m := regexp.MustCompile(`packets (\d+)`).FindStringSubmatch(out); m == nil || m[1] == "0" {
			t.Errorf("the router dropped nothing: %s", out)
		} else {
			t.Logf("router dropped %s packets", m[1])
		}
		c.stop(t)
		s.stop(t)
	})
}

// TestKillRestart: the client's tcpincd gets SIGKILL in the middle of a
// transfer. The interrupted transfer must never deliver anything but a
// prefix of the file; after a restart new connections are encrypted, and
// the restart left no stale or duplicate rules.
func TestKillRestart(t *testing.T) {
	eachMode(t, func(t *testing.T, mode string) {
		const port = 8080
		tp := newDirect(t, "kill-"+short(mode))
		c, s := both(t, tp, mode, mode)
		fresh := ruleset(tp.client)
		tables := tp.client.nftTables()
		www := t.TempDir()
		_, data := markerFile(t, www, "marker.txt", 16<<20)
		httpServer(tp.server, www, tp.server4, port)
		tap := tp.client.startCapture(tp.clientLink, port)

		out := filepath.Join(tp.client.dir, "interrupted.out")
		slow := tp.client.start("curl-interrupted", "curl", "-sS", "--fail", "--max-time", "10", "--limit-rate", "2M",
			"-o", out, urlFor(tp.server4, port, "marker.txt"))
		time.Sleep(1500 * time.Millisecond)
		c.sigkill()
		if got := tp.client.nftTables(); got != tables {
			t.Logf("after SIGKILL the namespace has tables:\n%s", got)
		}
		c.launch(t)
		if got := tp.client.nftTables(); got != tables {
			t.Errorf("after the restart nftables has\n%s\nwant, as after a fresh start,\n%s", got, tables)
		}
		if got := ruleset(tp.client); got != fresh {
			t.Errorf("after the restart the ruleset differs from a fresh start's:\n%s\nfresh:\n%s", got, fresh)
		}
		err := slow.wait(20 * time.Second)
		part, _ := os.ReadFile(out)
		if len(part) > len(data) || string(part) != string(data[:len(part)]) {
			t.Errorf("the interrupted transfer delivered %d bytes that are not a prefix of the file (curl: %v)", len(part), err)
		} else {
			t.Logf("interrupted transfer: %d of %d bytes, an intact prefix (curl: %v)", len(part), len(data), err)
		}

		w := watch(c, s, port)
		got, err := curl(tp.client, urlFor(tp.server4, port, "marker.txt"), "--limit-rate", "5M")
		if err != nil {
			t.Fatalf("after the restart: %v", err)
		}
		sameBytes(t, "curl after the restart", got, data)
		w.requireEncrypted(t)
		tap.stop().requireCiphertext(t, marker)
		c.stop(t)
		s.stop(t)
	})
}

// ruleset is the namespace's nftables ruleset with every number
// replaced by N (counters, and ports or queue numbers a daemon picks at
// start), to compare the structure of two runs.
func ruleset(n *node) string {
	n.t.Helper()
	out := n.must("nft", "list", "ruleset")
	out = regexp.MustCompile(`\d+`).ReplaceAllString(out, "N")
	return strings.TrimSpace(out)
}

// TestMixedModes: divert at one end, redirect at the other.
func TestMixedModes(t *testing.T) {
	setup(t)
	for _, pair := range [][2]string{{"divert", "redirect"}, {"redirect", "divert"}} {
		t.Run(pair[0]+"-to-"+pair[1], func(t *testing.T) {
			requireMode(t, pair[0])
			requireMode(t, pair[1])
			t.Parallel()
			tp := newDirect(t, "mix-"+short(pair[0])+short(pair[1]))
			c, s := both(t, tp, pair[0], pair[1])
			httpCase(t, tp, tp.server4, c, s)
			const port = 7000
			loadServer(tp.server, port, tp.server4)
			w := watch(c, s, port)
			load(t, tp.client, tp.server4, port, 50, 10, 4096, "-hold", "200ms")
			w.requireEncrypted(t)
			noFailures(t, c, s)
			c.stop(t)
			s.stop(t)
		})
	}
}

package platform_linux

import (
	"strconv"
	"testing"
	"time"
)

// TestRedirectChurn: fast connection churn with resumption, as
// scripts/bench.sh runs it: the client reuses TIME_WAIT ports from a
// wide range, the server answers for a whole /16 (ip route add local)
// with its echo server on the wildcard address, and the connections go
// to 16 destinations from the same source ports. REDIRECT sends all of
// them to one listener, so NAT changes the source port of some (the
// reply tuples would clash); the proxy must still pair each with its
// prepared leg and hook outcome (it asks conntrack for the original
// tuple). Every connection must complete intact and encrypted, with no
// reset on either side.
func TestRedirectChurn(t *testing.T) {
	requireNetns(t)
	p := newRPair(t)
	const block = "10.234.0.0/16"
	mustRun(t, "ip", "netns", "exec", p.a, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65000")
	mustRun(t, "ip", "-n", p.b, "route", "add", "local", block, "dev", "lo")
	mustRun(t, "ip", "-n", p.a, "route", "add", block, "via", addrB4)
	ba, bb := startRedirect(t, p.a), startRedirect(t, p.b)
	echo := spawn(t, p.b, "echo", "0.0.0.0:7117")
	echo.expect("LISTENING", 5*time.Second)
	total := 0
	for _, tc := range []struct{ n, par int }{{500, 1}, {1000, 16}, {200, 200}, {1000, 16}} {
		cli := spawn(t, p.a, "many", "10.234.0.1:7117", strconv.Itoa(tc.n), strconv.Itoa(tc.par), "16")
		s := cli.expect("DONE", 120*time.Second)
		t.Logf("%d connections, %d at a time, 16 destinations: %s s", tc.n, tc.par, s)
		cli.stop(5 * time.Second)
		total += tc.n
	}
	ca, cb := ba.rcounters(t), bb.rcounters(t)
	t.Logf("client: %d encrypted, %d resumed, %d aborted, %d unpaired, %d source ports NAT changed; server: %d encrypted, %d resumed, %d plain, %d aborted, %d unpaired, %d source ports NAT changed",
		ca.Proxy.Encrypted, ca.Proxy.Resumed, ca.Proxy.Aborted, ca.Proxy.Unpaired, ca.SrcRemapped,
		cb.Proxy.Encrypted, cb.Proxy.Resumed, cb.Proxy.Plain, cb.Proxy.Aborted, cb.Proxy.Unpaired, cb.SrcRemapped)
	if ca.Proxy.Encrypted != uint64(total) || ca.Proxy.Aborted != 0 || cb.Proxy.Aborted != 0 || ca.Proxy.Unpaired != 0 || cb.Proxy.Unpaired != 0 {
		t.Errorf("client: %d encrypted, %d aborted, %d unpaired; server: %d aborted, %d unpaired; want %d, 0, 0; 0, 0",
			ca.Proxy.Encrypted, ca.Proxy.Aborted, ca.Proxy.Unpaired, cb.Proxy.Aborted, cb.Proxy.Unpaired, total)
	}
	if ca.Proxy.Resumed == 0 {
		t.Errorf("no connection resumed")
	}
	if ca.CtFailed != 0 || cb.CtFailed != 0 {
		t.Errorf("conntrack lookups failed: %d on the client, %d on the server", ca.CtFailed, cb.CtFailed)
	}
	stopRedirect(t, ba, p.a)
	stopRedirect(t, bb, p.b)
}

package platform_windows

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/packet"
)

func tcpPacket(t *testing.T, src, dst netip.AddrPort, payload string) []byte {
	t.Helper()
	b, err := packet.AppendTCP(nil, packet.Segment{Src: src, Dst: dst, Seq: 1000, Ack: 2000, Flags: packet.ACK | packet.PSH, Window: 512, Payload: []byte(payload)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRewriteFlow: a reflected packet carries the new 4-tuple and valid
// checksums, IPv4 and IPv6, and keeps everything else.
func TestRewriteFlow(t *testing.T) {
	for _, c := range []struct{ src, dst, nsrc, ndst string }{
		{"10.0.0.1:50000", "192.0.2.7:443", "192.0.2.7:50000", "10.0.0.1:44300"},
		{"[fd00::1]:50000", "[2001:db8::7]:443", "[2001:db8::7]:50000", "[fd00::1]:44300"},
	} {
		b := tcpPacket(t, netip.MustParseAddrPort(c.src), netip.MustParseAddrPort(c.dst), "hello")
		ns, nd := netip.MustParseAddrPort(c.nsrc), netip.MustParseAddrPort(c.ndst)
		if err := rewriteFlow(b, ns, nd); err != nil {
			t.Fatal(err)
		}
		pk, err := packet.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if pk.Src() != ns || pk.Dst() != nd {
			t.Errorf("flow %v → %v", pk.Src(), pk.Dst())
		}
		if !pk.VerifyTCPChecksum() || (pk.Version() == 4 && !pk.IPv4().VerifyChecksum()) {
			t.Error("checksums not valid after the rewrite")
		}
		if string(pk.Payload()) != "hello" || pk.TCP().Seq() != 1000 || pk.TCP().Ack() != 2000 {
			t.Error("the rewrite changed more than the flow")
		}
	}
	b := tcpPacket(t, netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), "")
	if err := rewriteFlow(b, netip.MustParseAddrPort("[::1]:1"), netip.MustParseAddrPort("10.0.0.1:2")); !errors.Is(err, errReflectFamily) {
		t.Errorf("mixed families: %v", err)
	}
	if err := rewriteFlow([]byte{0x45, 0}, netip.AddrPort{}, netip.AddrPort{}); err == nil {
		t.Error("garbage rewritten")
	}
}

func TestFixChecksums(t *testing.T) {
	b := tcpPacket(t, netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), "data")
	pk, _ := packet.Parse(b)
	pk.TCP().SetChecksum(0x1234) // a partial (offload) checksum
	pk.IPv4().SetChecksum(0)
	var a Address
	if !fixChecksums(b, &a) || !a.TCPChecksum() || !a.IPChecksum() {
		t.Fatal("not fixed")
	}
	if !pk.VerifyTCPChecksum() || !pk.IPv4().VerifyChecksum() {
		t.Error("still invalid")
	}
	// Flagged valid: left alone (a corrupt packet stays corrupt).
	pk.TCP().SetChecksum(0x1234)
	if fixChecksums(b, &a) || pk.VerifyTCPChecksum() {
		t.Error("a packet flagged valid was recomputed")
	}
}

func TestOwnPorts(t *testing.T) {
	o := newOwnPorts(100, 103)
	seen := map[uint16]bool{}
	for range 3 {
		p, ok := o.take(102)
		if !ok || p < 100 || p > 103 || p == 102 || seen[p] {
			t.Fatalf("take: %d %v", p, ok)
		}
		seen[p] = true
		if !o.has(p) || !o.inRange(p) {
			t.Fatal("taken port not known")
		}
	}
	if _, ok := o.take(102); ok {
		t.Fatal("took a port from a full range")
	}
	for p := range seen {
		o.release(p)
		if o.has(p) {
			t.Fatal("released port still known")
		}
	}
	if o.inRange(104) || o.has(102) {
		t.Fatal("range")
	}
}

func TestRedirectFilter(t *testing.T) {
	p := core.Policy{Enabled: true, ExcludePorts: []uint16{3389}}
	got, err := RedirectFilter(&p)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "filters", "redirect.txt")
	if *update {
		os.WriteFile(path, []byte(got+"\n"), 0o644)
	}
	want, _ := os.ReadFile(path)
	if got+"\n" != string(want) {
		t.Errorf("filter\n%s\nwant\n%s", got, want)
	}
	f, err := parseFilter(got)
	if err != nil {
		t.Fatal(err)
	}
	a, r := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.0.2.7")
	for _, c := range []struct {
		p    evalPacket
		want bool
	}{
		{evalPacket{tcp: true, outbound: true, src: a, dst: r, sport: 50000, dport: 443}, true},
		{evalPacket{tcp: true, outbound: false, src: r, dst: a, sport: 443, dport: 50000}, true},
		{evalPacket{tcp: true, outbound: false, src: r, dst: a, sport: 50000, dport: 3389}, false},
		{evalPacket{tcp: true, outbound: true, src: a, dst: r, sport: 50000, dport: 3389}, false},
		{evalPacket{tcp: true, outbound: true, loopback: true, src: a, dst: a, sport: 50000, dport: 443}, false},
		{evalPacket{tcp: false, outbound: true, src: a, dst: r}, false},
	} {
		if f(&c.p) != c.want {
			t.Errorf("%+v: %v", c.p, !c.want)
		}
	}
}

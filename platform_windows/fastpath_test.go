package platform_windows

import (
	"net/netip"
	"testing"

	"tcpinc.dev/tcpinc/core/packet"
)

func TestPlainTable(t *testing.T) {
	f := flow{local: netip.MustParseAddrPort("10.0.0.1:50000"), remote: netip.MustParseAddrPort("10.0.0.2:443")}
	g := flow{local: netip.MustParseAddrPort("10.0.0.1:50001"), remote: netip.MustParseAddrPort("10.0.0.2:443")}
	tab := newPlainTable(1)
	if tab.pass(f, packet.ACK, 0) {
		t.Fatal("unknown flow on the fast path")
	}
	if !tab.add(f, 100) || tab.add(g, 100) {
		t.Fatal("add: the table holds one flow")
	}
	if !tab.pass(f, packet.ACK|packet.PSH, 101) {
		t.Fatal("plain flow not on the fast path")
	}
	// A new connection on the same 4-tuple goes to the engine.
	if tab.pass(f, packet.SYN, 102) || tab.len() != 0 {
		t.Fatal("a SYN kept the old entry")
	}
	tab.add(f, 200)
	if !tab.pass(f, packet.SYN|packet.ACK, 201) {
		t.Fatal("SYN-ACK (a retransmission of the plain handshake) left the fast path")
	}
	// Idle expiry.
	if n := tab.expire(200 + int64(plainIdle.Seconds())); n != 0 {
		t.Fatal("expired before the idle timeout")
	}
	if n := tab.expire(202 + int64(plainIdle.Seconds())); n != 1 {
		t.Fatal("not expired after the idle timeout")
	}
	// Closed connections go sooner.
	tab.add(f, 300)
	tab.pass(f, packet.FIN|packet.ACK, 300)
	if tab.expire(300+int64(plainClosed.Seconds())) != 0 || tab.expire(301+int64(plainClosed.Seconds())) != 1 {
		t.Fatal("closed flow expiry")
	}
}

func TestPlainTableAllocs(t *testing.T) {
	f := flow{local: netip.MustParseAddrPort("[fd00::1]:50000"), remote: netip.MustParseAddrPort("[fd00::2]:443")}
	tab := newPlainTable(plainMax)
	tab.add(f, 1)
	if n := testing.AllocsPerRun(1000, func() { tab.pass(f, packet.ACK, 2) }); n != 0 {
		t.Errorf("%v allocations per fast-path packet", n)
	}
}

func BenchmarkFastPathLookup(b *testing.B) {
	tab := newPlainTable(plainMax)
	for i := range 10000 {
		tab.add(flow{local: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(i)), remote: netip.MustParseAddrPort("10.0.0.2:443")}, 1)
	}
	f := flow{local: netip.MustParseAddrPort("10.0.0.1:5000"), remote: netip.MustParseAddrPort("10.0.0.2:443")}
	for b.Loop() {
		tab.pass(f, packet.ACK, 2)
	}
}

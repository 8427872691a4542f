package simnet

import (
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/core/packet"
)

// linkTrace feeds a fixed packet sequence through one impaired link
// direction and returns what came out, in order, with delivery times.
func linkTrace(t *testing.T, seed uint64) []string {
	t.Helper()
	lc := LinkConfig{Loss: 0.1, Duplicate: 0.05, Reorder: 0.1, Jitter: time.Millisecond, Split: 0.2, Coalesce: 0.2}
	n := &Network{cfg: (&Config{AtoB: lc}).withDefaults()}
	l := newLink(n, A, n.cfg.AtoB, seed, streamLinkAtoB)
	src, dst := netip.AddrPortFrom(AddrA4, 1234), netip.AddrPortFrom(AddrB4, 80)
	var out []string
	now := simEpoch
	for i := range 500 {
		b, err := packet.AppendTCP(make([]byte, 0, n.cfg.BufferCap), packet.Segment{
			Src: src, Dst: dst, Seq: uint32(1000 * i), Ack: 1, Flags: packet.ACK, Window: 100,
			Payload: make([]byte, 100+i%900)})
		if err != nil {
			t.Fatal(err)
		}
		l.send(b, now)
		now = now.Add(20 * time.Microsecond)
		for _, d := range l.poll(now, nil) {
			p, err := packet.Parse(d)
			if err != nil || !p.VerifyTCPChecksum() {
				t.Fatalf("link emitted a broken packet: %v", err)
			}
			out = append(out, fmt.Sprintf("%v seq=%d len=%d", now.Sub(simEpoch), p.TCP().Seq(), p.PayloadLen()))
		}
	}
	return out
}

// TestSameSeedSameDecisions: same seed and packets, same output; another
// seed, another output.
func TestSameSeedSameDecisions(t *testing.T) {
	a, b, c := linkTrace(t, 42), linkTrace(t, 42), linkTrace(t, 43)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different decisions")
	}
	if slices.Equal(a, c) {
		t.Fatal("different seeds, same decisions")
	}
}

func TestSeedOverride(t *testing.T) {
	if *seedFlag != "" {
		t.Skip("-simnet.seed overrides everything")
	}
	t.Setenv(SeedEnv, "12345")
	if s, src, err := resolveSeed(7); err != nil || s != 12345 || src != SeedEnv {
		t.Errorf("resolveSeed with %s = %d, %q, %v", SeedEnv, s, src, err)
	}
	t.Setenv(SeedEnv, "")
	if s, _, err := resolveSeed(7); err != nil || s != 7 {
		t.Errorf("resolveSeed(7) = %d, %v", s, err)
	}
	if s, src, err := resolveSeed(0); err != nil || s == 0 || src != "random" {
		t.Errorf("resolveSeed(0) = %d, %q, %v", s, src, err)
	}
	t.Setenv(SeedEnv, "banana")
	if _, _, err := resolveSeed(0); err == nil {
		t.Error("bad seed accepted")
	}
}

// TestSplitCoalesceRoundTrip cuts a segment in two and merges the halves
// back: the result must equal the original.
func TestSplitCoalesceRoundTrip(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		src, dst := netip.AddrPortFrom(AddrA4, 1), netip.AddrPortFrom(AddrB4, 2)
		if v6 {
			src, dst = netip.AddrPortFrom(AddrA6, 1), netip.AddrPortFrom(AddrB6, 2)
		}
		payload := []byte("the quick brown fox jumps over the lazy dog")
		seg := packet.Segment{Src: src, Dst: dst, Seq: 0xfffffff0, Ack: 7, Flags: packet.ACK | packet.PSH,
			Window: 9, Options: packet.AppendTimestamps(packet.AppendNOP(packet.AppendNOP(nil)), 1, 2), Payload: payload}
		orig, err := packet.AppendTCP(nil, seg)
		if err != nil {
			t.Fatal(err)
		}
		buf := append(make([]byte, 0, 2048), orig...)
		first, rest, err := splitSegment(buf, 10, make([]byte, 0, 2048))
		if err != nil {
			t.Fatal(err)
		}
		p1, ok1 := parseIntact(first)
		p2, ok2 := parseIntact(rest)
		if !ok1 || !ok2 || p1.PayloadLen() != 10 || p2.TCP().Seq() != seg.Seq+10 || p1.TCP().Flags().Has(packet.PSH) {
			t.Fatalf("split v6=%v: intact %v %v, len %d, seq %d, flags %v", v6, ok1, ok2, p1.PayloadLen(), p2.TCP().Seq(), p1.TCP().Flags())
		}
		if !mergeable(p1, p2, DefaultMTU) {
			t.Fatal("halves not mergeable")
		}
		merged, err := mergeSegments(p1, p2)
		if err != nil {
			t.Fatal(err)
		}
		if string(merged) != string(orig) {
			t.Fatalf("v6=%v: merged\n% x\nwant\n% x", v6, merged, orig)
		}
	}
}

// TestNATChecksums translates a packet out and back and checks the
// checksums stay valid and the packet is restored.
func TestNATChecksums(t *testing.T) {
	nat := newNAT(NATConfig{Addr4: NATAddr4, Addr6: NATAddr6, FirstPort: 40000})
	for _, v6 := range []bool{false, true} {
		a, b := netip.AddrPortFrom(AddrA4, 5555), netip.AddrPortFrom(AddrB4, 80)
		if v6 {
			a, b = netip.AddrPortFrom(AddrA6, 5555), netip.AddrPortFrom(AddrB6, 80)
		}
		out, _ := packet.AppendTCP(nil, packet.Segment{Src: a, Dst: b, Seq: 1, Flags: packet.SYN, Payload: []byte("x")})
		if !nat.outbound(out) {
			t.Fatal("not translated")
		}
		p, ok := parseIntact(out)
		if !ok || p.Src().Port() < 40000 || p.Dst() != b {
			t.Fatalf("outbound: intact %v, %v -> %v", ok, p.Src(), p.Dst())
		}
		reply, _ := packet.AppendTCP(nil, packet.Segment{Src: b, Dst: p.Src(), Seq: 9, Ack: 2, Flags: packet.SYN | packet.ACK})
		if tr, ok := nat.inbound(reply); !tr || !ok {
			t.Fatalf("reply: translated %v, ok %v", tr, ok)
		}
		q, ok := parseIntact(reply)
		if !ok || q.Dst() != a {
			t.Fatalf("inbound: intact %v, dst %v want %v", ok, q.Dst(), a)
		}
	}
}

// TestCloseLeavesNoGoroutines builds, uses and closes networks and checks
// the goroutine count returns to where it was.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 3 {
		n := New(t, Config{AtoB: lossy()})
		n.Transfer(t, TransferSpec{AtoB: 64 << 10, BtoA: 64 << 10})
		a, b := n.MustPair(t, true) // left open: Close must abort it
		_, _ = a, b
		ln, err := n.Listen(B, 99) // with a blocked Accept
		if err != nil {
			t.Fatal(err)
		}
		go ln.Accept()
		n.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, g, buf[:runtime.Stack(buf, true)])
	}
}

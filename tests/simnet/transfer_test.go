package simnet

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/core/packet"
)

// scenario is a network configuration the transfer matrix runs over.
type scenario struct {
	name  string
	ipv6  bool
	cfg   Config
	check func(t *testing.T, n *Network, a, b net.Conn)
}

func lossy() LinkConfig {
	return LinkConfig{Loss: 0.05, Reorder: 0.05, Duplicate: 0.01}
}

func resegmenting() LinkConfig {
	return LinkConfig{Split: 0.3, Coalesce: 0.3}
}

func scenarios() []scenario {
	return []scenario{
		{name: "clean"},
		{name: "lossy", cfg: Config{AtoB: lossy(), BtoA: lossy()},
			check: func(t *testing.T, n *Network, _, _ net.Conn) {
				s := n.Stats()
				for _, l := range []LinkStats{s.AtoB, s.BtoA} {
					if l.Lost == 0 || l.Reordered == 0 || l.Duplicated == 0 {
						t.Errorf("impairments not exercised: %+v", l)
					}
				}
			}},
		{name: "resegment", cfg: Config{AtoB: resegmenting(), BtoA: resegmenting()},
			check: func(t *testing.T, n *Network, _, _ net.Conn) {
				s := n.Stats()
				for _, l := range []LinkStats{s.AtoB, s.BtoA} {
					if l.Split == 0 || l.Coalesced == 0 {
						t.Errorf("resegmenting box idle: %+v", l)
					}
				}
			}},
		{name: "nat", cfg: Config{NAT: &NATConfig{}},
			check: func(t *testing.T, n *Network, a, b net.Conn) {
				ra := b.RemoteAddr().(*net.TCPAddr).AddrPort()
				if ra.Addr().Unmap() != NATAddr4 || ra.Port() < 40000 {
					t.Errorf("B sees peer %v, want %v:40000+", ra, NATAddr4)
				}
				s := n.Stats()
				if s.AtoB.Translated == 0 || s.BtoA.Translated == 0 {
					t.Errorf("NAT idle: %+v %+v", s.AtoB, s.BtoA)
				}
			}},
		{name: "nat-ipv6", ipv6: true, cfg: Config{NAT: &NATConfig{}},
			check: func(t *testing.T, n *Network, a, b net.Conn) {
				if ra := b.RemoteAddr().(*net.TCPAddr).AddrPort(); ra.Addr() != NATAddr6 {
					t.Errorf("B sees peer %v, want %v", ra, NATAddr6)
				}
			}},
		{name: "mss536", cfg: Config{AtoB: LinkConfig{ClampMSS: 536}, BtoA: LinkConfig{ClampMSS: 536}}},
		{name: "ipv6"},
		{name: "ipv6-lossy-resegment", ipv6: true, cfg: Config{
			AtoB: LinkConfig{Loss: 0.03, Reorder: 0.03, Duplicate: 0.01, Split: 0.2, Coalesce: 0.2},
			BtoA: LinkConfig{Loss: 0.03, Reorder: 0.03, Duplicate: 0.01, Split: 0.2, Coalesce: 0.2}}},
		{name: "delay-jitter", cfg: Config{
			AtoB: LinkConfig{Delay: 20 * time.Millisecond, Jitter: 2 * time.Millisecond},
			BtoA: LinkConfig{Delay: 20 * time.Millisecond, Jitter: 2 * time.Millisecond, Bandwidth: 100_000_000}},
			check: func(t *testing.T, n *Network, _, _ net.Conn) {
				if n.Elapsed() < 40*time.Millisecond {
					t.Errorf("simulated time %v: delay not applied", n.Elapsed())
				}
			}},
	}
}

// wireChecker is a tap that verifies every TCP packet leaving the link
// is well formed and checksummed (the middleboxes must keep them so), and
// records the largest payload per direction.
type wireChecker struct {
	t          *testing.T
	bad        atomic.Int64
	maxPayload [2]atomic.Int64
}

func (w *wireChecker) tap(p TapPacket) {
	if p.Point != TapDelivered {
		return
	}
	q, err := packet.Parse(p.Buf)
	if err != nil {
		if !isTCP(p.Buf) {
			return
		}
		if w.bad.Add(1) == 1 {
			w.t.Errorf("malformed packet delivered %v->%v: %v", p.From, p.To, err)
		}
		return
	}
	if (q.IPv4() != nil && !q.IPv4().VerifyChecksum()) || !q.VerifyTCPChecksum() {
		if w.bad.Add(1) == 1 {
			w.t.Errorf("packet with bad checksum delivered %v->%v: % x", p.From, p.To, p.Buf)
		}
	}
	if l := int64(q.PayloadLen()); l > w.maxPayload[p.From].Load() {
		w.maxPayload[p.From].Store(l)
	}
}

func transferSizes(t *testing.T) [][2]int64 {
	const mib = 1 << 20
	return [][2]int64{{0, 0}, {1, 0}, {0, 1}, {1, 1}, {mib, 0}, {0, mib}, {mib, mib}}
}

// TestTransfer moves 0 B, 1 B and 1 MiB each way and both ways at once
// over every scenario with plain TCP (no engines) and checks the bytes.
func TestTransfer(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			w := &wireChecker{t: t}
			cfg := sc.cfg
			cfg.Taps = append(cfg.Taps, w.tap)
			n := New(t, cfg)
			var retx uint64
			start := time.Now()
			for _, sz := range transferSizes(t) {
				r := n.Transfer(t, TransferSpec{AtoB: sz[0], BtoA: sz[1], IPv6: sc.ipv6})
				retx += r.Retransmits
			}
			if sc.check != nil {
				a, b := n.MustPair(t, sc.ipv6)
				sc.check(t, n, a, b)
			}
			if sc.name == "mss536" {
				for _, h := range []HostID{A, B} {
					if m := w.maxPayload[h].Load(); m > 536 || m < 400 {
						t.Errorf("largest payload from %v is %d, want <= 536 (and near it)", h, m)
					}
				}
			}
			t.Logf("%v real, %v simulated, %d retransmissions; %s", time.Since(start).Round(time.Millisecond),
				n.Elapsed().Round(time.Microsecond), retx, n.describe())
		})
	}
}

// TestTransferLarge moves a large amount both ways at once over a clean
// link and over a lossy, resegmenting one.
func TestTransferLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("large transfer in -short mode")
	}
	size := int64(64 << 20)
	if raceEnabled {
		size = 8 << 20 // the race detector slows gVisor down ~5x
	}
	for _, sc := range []struct {
		name string
		size int64
		cfg  Config
	}{
		{"clean", size, Config{}},
		{"lossy-resegment", size / 4, Config{
			AtoB: LinkConfig{Loss: 0.01, Reorder: 0.02, Duplicate: 0.005, Split: 0.1, Coalesce: 0.1},
			BtoA: LinkConfig{Loss: 0.01, Reorder: 0.02, Duplicate: 0.005, Split: 0.1, Coalesce: 0.1}}},
	} {
		t.Run(fmt.Sprintf("%s-%dMiB", sc.name, sc.size>>20), func(t *testing.T) {
			n := New(t, sc.cfg)
			r := n.Transfer(t, TransferSpec{AtoB: sc.size, BtoA: sc.size})
			t.Logf("%d MiB each way: %v real, %v simulated, %d retransmissions", sc.size>>20,
				r.Real.Round(time.Millisecond), r.Sim.Round(time.Microsecond), r.Retransmits)
		})
	}
}

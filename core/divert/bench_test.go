package divert

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"tcpinc.dev/tcpinc/core/packet"
)

// establish runs the handshake of one connection through the rig.
func establish(t *testing.T, r *rig, a netip.AddrPort, isnA, isnB uint32) {
	r.send(true, seg(t, a, addrB, isnA, 0, packet.SYN, synOpts(), nil))
	r.send(false, seg(t, addrB, a, isnB, isnA+1, packet.SYN|packet.ACK, synOpts(), nil))
	r.send(true, seg(t, a, addrB, isnA+1, isnB+1, packet.ACK, nil, nil))
}

// pump moves data segments from A to B through both engines, with B's
// acknowledgments back, reusing every buffer.
type pump struct {
	r                      *rig
	payload, data, in, ack []byte
	pa, out                []Packet
	seq, ackNo             uint32
}

func newPump(r *rig, size int) *pump {
	return &pump{r: r, payload: make([]byte, size), data: make([]byte, 0, size+256), in: make([]byte, 0, size+256),
		ack: make([]byte, 0, 256), pa: make([]Packet, 1), out: make([]Packet, 0, 8), seq: 1001, ackNo: 5001}
}

func (p *pump) step() {
	r := p.r
	d, _ := packet.AppendTCP(p.data[:0], packet.Segment{Src: addrA, Dst: addrB, Seq: p.seq, Ack: p.ackNo, Flags: packet.ACK | packet.PSH, Window: 60000, Payload: p.payload})
	p.pa[0] = Packet{Dir: Outbound, Buf: d}
	p.out = r.engA.Process(p.pa, p.out[:0], r.now)
	wire := p.pa[0].Buf
	if p.pa[0].Verdict == Drop {
		wire = p.out[0].Buf
	}
	p.pa[0] = Packet{Dir: Inbound, Buf: append(p.in[:0], wire...)}
	p.out = r.engB.Process(p.pa, p.out[:0], r.now)
	p.seq += uint32(len(p.payload))
	a, _ := packet.AppendTCP(p.ack[:0], packet.Segment{Src: addrB, Dst: addrA, Seq: p.ackNo, Ack: p.seq, Flags: packet.ACK, Window: 60000})
	p.pa[0] = Packet{Dir: Outbound, Buf: a}
	p.out = r.engB.Process(p.pa, p.out[:0], r.now)
	p.pa[0] = Packet{Dir: Inbound, Buf: p.pa[0].Buf}
	p.out = r.engA.Process(p.pa, p.out[:0], r.now)
}

// TestEngineSteadyStateZeroAllocs: once a connection is encrypted, its
// data segments and acknowledgments cost no allocation in either engine.
func TestEngineSteadyStateZeroAllocs(t *testing.T) {
	r := newRig(t, Config{MaxBuffer: 64 << 20}, Config{MaxBuffer: 64 << 20})
	establish(t, r, addrA, 1000, 5000)
	p := newPump(r, 1448)
	for i := 0; i < 100; i++ { // let buffers reach their size
		p.step()
	}
	if n := testing.AllocsPerRun(200, p.step); n != 0 {
		t.Fatalf("%.1f allocations per segment and acknowledgment", n)
	}
	if c := r.engB.Counters(); c.BytesDecrypted < 300*1448 {
		t.Fatalf("decrypted %d bytes", c.BytesDecrypted)
	}
}

// BenchmarkEngineThroughput measures the engines alone: a data segment
// sealed by A's engine and opened by B's, and B's acknowledgment mapped
// back, per op. Throughput is per core (one goroutine).
func BenchmarkEngineThroughput(b *testing.B) {
	for _, size := range []int{1448, 64000} {
		b.Run(fmt.Sprintf("segment=%d", size), func(b *testing.B) {
			t := &testing.T{}
			r := newRig(t, Config{MaxBuffer: 64 << 20}, Config{MaxBuffer: 64 << 20})
			establish(t, r, addrA, 1000, 5000)
			p := newPump(r, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p.step()
			}
			if c := r.engB.Counters(); c.BytesDecrypted < uint64(b.N)*uint64(size) {
				b.Fatalf("decrypted %d of %d bytes", c.BytesDecrypted, uint64(b.N)*uint64(size))
			}
		})
	}
}

// BenchmarkConnState reports the heap an engine holds per connection,
// idle (keys established) and after traffic (buffers grown).
func BenchmarkConnState(b *testing.B) {
	const n = 500
	t := &testing.T{}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for i := 0; i < b.N; i++ {
		r := newRig(t, Config{}, Config{})
		before := heap()
		for j := 0; j < n; j++ {
			establish(t, r, netip.AddrPortFrom(addrA.Addr(), uint16(10000+j)), 1000, 5000)
		}
		idle := heap()
		for j := 0; j < n; j++ {
			a := netip.AddrPortFrom(addrA.Addr(), uint16(10000+j))
			r.send(true, seg(t, a, addrB, 1001, 5001, packet.ACK|packet.PSH, nil, make([]byte, 1400)))
		}
		active := heap()
		b.ReportMetric(float64(idle-before)/n/2, "B/idle-conn")
		b.ReportMetric(float64(active-before)/n/2, "B/active-conn")
		runtime.KeepAlive(r)
	}
}

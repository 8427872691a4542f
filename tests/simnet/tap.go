package simnet

import (
	"bytes"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"tcpinc.dev/tcpinc/core/packet"
)

// TapPoint says where on its path a tap saw a packet.
type TapPoint uint8

const (
	// TapEmitted: as the sending stack emitted it, before its engine.
	TapEmitted TapPoint = iota
	// TapSent: on the link as sent, after the sender's engine and before
	// any middlebox or impairment. This is what an eavesdropper next to
	// the sender sees.
	TapSent
	// TapDelivered: leaving the link, after every middlebox and
	// impairment, before the receiver's engine.
	TapDelivered
	// TapReceived: as handed to the receiving stack, after its engine.
	TapReceived
)

func (p TapPoint) String() string {
	switch p {
	case TapEmitted:
		return "emitted"
	case TapSent:
		return "sent"
	case TapDelivered:
		return "delivered"
	case TapReceived:
		return "received"
	}
	return fmt.Sprintf("TapPoint(%d)", uint8(p))
}

// TapPacket is one packet seen by a tap.
type TapPacket struct {
	Point    TapPoint
	From, To HostID    // the direction the packet travels
	Time     time.Time // simulated
	// Buf is the whole IP packet. It is valid only during the call;
	// copy it to keep it.
	Buf []byte
}

// Tap observes packets. Taps run on the network's driver goroutine, so
// they must not block or call back into the Network (except Now and
// Stats).
type Tap func(TapPacket)

// LinkStats counts what happened on one direction of the link.
type LinkStats struct {
	Sent       uint64 // packets put on the link (after the sender's engine)
	Delivered  uint64 // packets leaving the link
	Lost       uint64 // dropped by the Loss impairment
	Duplicated uint64 // extra copies made
	Reordered  uint64 // packets held back
	Split      uint64 // segments cut in two
	Coalesced  uint64 // segment pairs merged
	Stripped   uint64 // options removed or overwritten
	Clamped    uint64 // MSS options lowered
	Translated uint64 // packets rewritten by the NAT
	NATDropped uint64 // packets for an unknown NAT mapping
	Oversize   uint64 // packets dropped for exceeding the MTU
	NonTCP     uint64 // packets that are not TCP (bypassing engines)
}

// EngineStats counts one host's engine calls.
type EngineStats struct {
	Outbound uint64 // packets captured leaving the stack
	Inbound  uint64 // packets captured arriving from the link
	Dropped  uint64 // packets the engine dropped
	Modified uint64 // accepted packets marked Modified
	Injected uint64 // packets the engine injected
	Ticks    uint64 // Process calls for a due NextDeadline
}

// Stats is a snapshot of the network's counters.
type Stats struct {
	AtoB, BtoA LinkStats
	A, B       EngineStats
	// SimTime is the simulated time elapsed since the network started.
	SimTime time.Duration
	// IdleJumps counts how often simulated time jumped to a stack timer
	// after the network had been idle for Config.IdleGrace.
	IdleJumps uint64
}

// Link returns the stats of the direction from host h.
func (s Stats) Link(from HostID) LinkStats {
	if from == A {
		return s.AtoB
	}
	return s.BtoA
}

// Engine returns the engine stats of host h.
func (s Stats) Engine(h HostID) EngineStats {
	if h == A {
		return s.A
	}
	return s.B
}

type linkCounters struct {
	sent, delivered, lost, duplicated, reordered, split, coalesced,
	stripped, clamped, translated, natDropped, oversize, nonTCP atomic.Uint64
}

func (c *linkCounters) snapshot() LinkStats {
	return LinkStats{
		Sent: c.sent.Load(), Delivered: c.delivered.Load(), Lost: c.lost.Load(),
		Duplicated: c.duplicated.Load(), Reordered: c.reordered.Load(),
		Split: c.split.Load(), Coalesced: c.coalesced.Load(),
		Stripped: c.stripped.Load(), Clamped: c.clamped.Load(),
		Translated: c.translated.Load(), NATDropped: c.natDropped.Load(),
		Oversize: c.oversize.Load(), NonTCP: c.nonTCP.Load(),
	}
}

type engineCounters struct {
	outbound, inbound, dropped, modified, injected, ticks atomic.Uint64
}

func (c *engineCounters) snapshot() EngineStats {
	return EngineStats{
		Outbound: c.outbound.Load(), Inbound: c.inbound.Load(),
		Dropped: c.dropped.Load(), Modified: c.modified.Load(),
		Injected: c.injected.Load(), Ticks: c.ticks.Load(),
	}
}

// CapturedPacket is a packet recorded with Config.Capture.
type CapturedPacket struct {
	From, To HostID
	Time     time.Time
	Buf      []byte
}

// capture records packets at TapSent.
type capture struct {
	mu   sync.Mutex
	pkts []CapturedPacket
}

func (c *capture) record(p TapPacket) {
	c.mu.Lock()
	c.pkts = append(c.pkts, CapturedPacket{From: p.From, To: p.To, Time: p.Time, Buf: bytes.Clone(p.Buf)})
	c.mu.Unlock()
}

func (c *capture) snapshot() []CapturedPacket {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]CapturedPacket(nil), c.pkts...)
}

type flowKey struct{ src, dst netip.AddrPort }

// contains reports whether needle appears on the wire: inside any one
// packet, or across the TCP payloads of one flow direction concatenated
// in the order they were sent (which catches a needle split over two
// segments).
func (c *capture) contains(needle []byte) bool {
	if len(needle) == 0 {
		return true
	}
	pkts := c.snapshot()
	// tails holds, per flow direction, the last len(needle)-1 payload
	// bytes seen, to match across segment boundaries.
	tails := make(map[flowKey][]byte)
	var joined []byte
	for _, cp := range pkts {
		if bytes.Contains(cp.Buf, needle) {
			return true
		}
		p, err := packet.Parse(cp.Buf)
		if err != nil || p.PayloadLen() == 0 {
			continue
		}
		k := flowKey{p.Src(), p.Dst()}
		joined = append(append(joined[:0], tails[k]...), p.Payload()...)
		if bytes.Contains(joined, needle) {
			return true
		}
		keep := min(len(needle)-1, len(joined))
		tails[k] = append(tails[k][:0], joined[len(joined)-keep:]...)
	}
	return false
}

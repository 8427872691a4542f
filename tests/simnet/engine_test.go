package simnet

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/core/divert"
	"tcpinc.dev/tcpinc/core/packet"
)

// countingEngine accepts everything and counts what it sees.
type countingEngine struct {
	outbound, inbound atomic.Int64
	lastNow           time.Time
	backwards         atomic.Bool
}

func (e *countingEngine) Process(pkts []divert.Packet, out []divert.Packet, now time.Time) []divert.Packet {
	if now.Before(e.lastNow) {
		e.backwards.Store(true)
	}
	e.lastNow = now
	for i := range pkts {
		pkts[i].Verdict = divert.Accept
		if pkts[i].Dir == divert.Outbound {
			e.outbound.Add(1)
		} else {
			e.inbound.Add(1)
		}
	}
	return out
}

func (e *countingEngine) NextDeadline() time.Time { return time.Time{} }

// TestEnginePassThrough proves that the hook path is exercised both ways
// on both hosts, over a lossy link.
func TestEnginePassThrough(t *testing.T) {
	ea, eb := &countingEngine{}, &countingEngine{}
	n := New(t, Config{EngineA: ea, EngineB: eb, AtoB: lossy(), BtoA: lossy()})
	n.Transfer(t, TransferSpec{AtoB: 256 << 10, BtoA: 256 << 10})
	s := n.Stats()
	for _, c := range []struct {
		name      string
		e         *countingEngine
		st        EngineStats
		sent, got LinkStats
	}{{"A", ea, s.A, s.AtoB, s.BtoA}, {"B", eb, s.B, s.BtoA, s.AtoB}} {
		if c.e.outbound.Load() == 0 || c.e.inbound.Load() == 0 {
			t.Errorf("engine %s saw %d outbound, %d inbound", c.name, c.e.outbound.Load(), c.e.inbound.Load())
		}
		// Every packet the host sent passed its engine; every packet
		// delivered to it did too.
		if uint64(c.e.outbound.Load()) != c.st.Outbound || c.st.Outbound != c.sent.Sent {
			t.Errorf("engine %s: saw %d outbound, stats %d, link sent %d", c.name, c.e.outbound.Load(), c.st.Outbound, c.sent.Sent)
		}
		if uint64(c.e.inbound.Load()) != c.st.Inbound || c.st.Inbound != c.got.Delivered {
			t.Errorf("engine %s: saw %d inbound, stats %d, link delivered %d", c.name, c.e.inbound.Load(), c.st.Inbound, c.got.Delivered)
		}
		if c.e.backwards.Load() {
			t.Errorf("engine %s: simulated time went backwards", c.name)
		}
	}
}

// synDelayEngine holds A's first SYN for a while and then injects a copy
// carrying an extra option (an Outbound injection driven by
// NextDeadline), and replaces the first inbound SYN-ACK by an injected
// copy (an Inbound injection).
type synDelayEngine struct {
	hold      time.Duration
	mu        sync.Mutex
	held      []byte
	due       time.Time
	synSeen   bool
	synAckRep bool
	injected  []byte // engine memory for injected packets
	heldAt    time.Time
	sentAt    time.Time
}

const markerKind = 253 // RFC 4727 experimental

func (e *synDelayEngine) Process(pkts []divert.Packet, out []divert.Packet, now time.Time) []divert.Packet {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.injected = e.injected[:0]
	for i := range pkts {
		p := &pkts[i]
		p.Verdict = divert.Accept
		q, err := packet.Parse(p.Buf)
		if err != nil {
			continue
		}
		f := q.TCP().Flags()
		switch {
		case p.Dir == divert.Outbound && f == packet.SYN && !e.synSeen:
			e.synSeen = true
			e.held = bytes.Clone(p.Buf)
			e.due = now.Add(e.hold)
			e.heldAt = now
			p.Verdict = divert.Drop
		case p.Dir == divert.Inbound && f == packet.SYN|packet.ACK && !e.synAckRep:
			e.synAckRep = true
			p.Verdict = divert.Drop
			out = append(out, divert.Packet{Dir: divert.Inbound, Buf: bytes.Clone(p.Buf)})
		}
	}
	if e.held != nil && !now.Before(e.due) {
		b := append(make([]byte, 0, len(e.held)+64), e.held...)
		q, _ := packet.Parse(b)
		if err := q.InsertOption(markerKind, []byte("hi")); err != nil {
			panic(err)
		}
		out = append(out, divert.Packet{Dir: divert.Outbound, Buf: q.Bytes()})
		e.held = nil
		e.sentAt = now
	}
	return out
}

func (e *synDelayEngine) NextDeadline() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.held == nil {
		return time.Time{}
	}
	return e.due
}

// TestEngineInject checks both injection directions and NextDeadline.
func TestEngineInject(t *testing.T) {
	e := &synDelayEngine{hold: 300 * time.Millisecond}
	var markerSeen atomic.Bool
	var synArrival atomic.Int64
	tap := func(p TapPacket) {
		if p.Point != TapReceived || p.To != B {
			return
		}
		q, err := packet.Parse(p.Buf)
		if err != nil || q.TCP().Flags() != packet.SYN {
			return
		}
		if o, ok := q.Options().Find(markerKind); ok && string(o.Data) == "hi" {
			markerSeen.Store(true)
			synArrival.Store(int64(p.Time.Sub(simEpoch)))
		}
	}
	n := New(t, Config{EngineA: e, Taps: []Tap{tap}})
	n.Transfer(t, TransferSpec{AtoB: 1000, BtoA: 1000})
	if !markerSeen.Load() {
		t.Fatal("B never received the injected SYN with the marker option")
	}
	s := n.Stats()
	if s.A.Injected != 2 || s.A.Dropped != 2 || s.A.Ticks == 0 {
		t.Errorf("engine stats %+v, want 2 injected, 2 dropped, ticks > 0", s.A)
	}
	e.mu.Lock()
	held := e.sentAt.Sub(e.heldAt)
	e.mu.Unlock()
	if held < e.hold || held > e.hold+10*time.Millisecond {
		t.Errorf("SYN held %v of simulated time, want %v", held, e.hold)
	}
	if at := time.Duration(synArrival.Load()); at < e.hold {
		t.Errorf("marked SYN arrived at %v, before the hold of %v ended", at, e.hold)
	}
}

// badEngine corrupts the checksum of what it marks Modified; the network
// must report it.
type badEngine struct{ countingEngine }

func (e *badEngine) Process(pkts []divert.Packet, out []divert.Packet, now time.Time) []divert.Packet {
	for i := range pkts {
		pkts[i].Buf[len(pkts[i].Buf)-1] ^= 0xff
		pkts[i].Modified = true
	}
	return out
}

func TestEngineBadChecksumReported(t *testing.T) {
	ft := &fakeT{TB: t}
	n := New(ft, Config{EngineA: &badEngine{}})
	go n.Dial(A, netipAddrPort(AddrB4, 9)) // fails eventually; the SYN is what matters
	deadline := time.Now().Add(10 * time.Second)
	for !ft.failed() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	n.Close()
	if !ft.failed() || !bytes.Contains([]byte(ft.msg()), []byte("bad TCP checksum")) {
		t.Fatalf("corrupt engine output not reported; got %q", ft.msg())
	}
}

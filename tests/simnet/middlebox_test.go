package simnet

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/core/divert"
	"tcpinc.dev/tcpinc/core/packet"
)

// enoAdder inserts a TCP-ENO option (kind 69) into every outbound
// segment without payload (so that no packet outgrows the MTU).
type enoAdder struct{}

func (enoAdder) Process(pkts []divert.Packet, out []divert.Packet, now time.Time) []divert.Packet {
	for i := range pkts {
		p := &pkts[i]
		if p.Dir != divert.Outbound {
			continue
		}
		q, err := packet.Parse(p.Buf)
		if err != nil || q.PayloadLen() != 0 {
			continue
		}
		if q.InsertOption(packet.OptENO, []byte{0x20}) == nil {
			p.Buf = q.Bytes()
			p.Modified = true
		}
	}
	return out
}

func (enoAdder) NextDeadline() time.Time { return time.Time{} }

// optionLog records, per tap point, the ENO options and header lengths of
// the packets A sends.
type optionLog struct {
	mu        sync.Mutex
	synSent   []int // TCP header length of A's SYNs at TapSent
	synRecv   []int // ... at TapReceived on B
	enoRecv   map[string]int
	ackENO    int // non-SYN segments from A that reached B with ENO
	recvTotal int
}

func (l *optionLog) tap(p TapPacket) {
	if p.From != A || (p.Point != TapSent && p.Point != TapReceived) {
		return
	}
	q, err := packet.Parse(p.Buf)
	if err != nil {
		return
	}
	syn := q.TCP().Flags().Has(packet.SYN)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case p.Point == TapSent && syn:
		l.synSent = append(l.synSent, q.TCPHeaderLen())
	case p.Point == TapReceived:
		l.recvTotal++
		if syn {
			l.synRecv = append(l.synRecv, q.TCPHeaderLen())
		}
		if q.Options().Count(packet.OptENO) > 0 {
			l.enoRecv[fmt.Sprint(syn)]++
			if !syn {
				l.ackENO++
			}
		}
	}
}

// TestOptionStripping strips kind 69 in each mode and checks, on the
// packets B's stack receives, that it is gone where it should be, that
// the header length changes only when removing, and that the connection
// still works.
func TestOptionStripping(t *testing.T) {
	for _, tc := range []struct {
		name  string
		strip OptionStrip
	}{
		{"syn-nop", OptionStrip{Kind: packet.OptENO}},
		{"syn-remove", OptionStrip{Kind: packet.OptENO, Remove: true}},
		{"all-nop", OptionStrip{Kind: packet.OptENO, AllSegments: true}},
		{"all-remove", OptionStrip{Kind: packet.OptENO, AllSegments: true, Remove: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &optionLog{enoRecv: map[string]int{}}
			n := New(t, Config{EngineA: enoAdder{}, Taps: []Tap{log.tap},
				AtoB: LinkConfig{StripOptions: []OptionStrip{tc.strip}}})
			n.Transfer(t, TransferSpec{AtoB: 100 << 10, BtoA: 100 << 10})
			log.mu.Lock()
			defer log.mu.Unlock()
			if len(log.synSent) == 0 || len(log.synRecv) != len(log.synSent) {
				t.Fatalf("SYNs sent %v, received %v", log.synSent, log.synRecv)
			}
			if log.enoRecv["true"] != 0 {
				t.Errorf("%d SYNs reached B with the ENO option", log.enoRecv["true"])
			}
			if tc.strip.AllSegments && log.ackENO != 0 {
				t.Errorf("%d non-SYN segments reached B with the ENO option", log.ackENO)
			}
			if !tc.strip.AllSegments && log.ackENO == 0 {
				t.Errorf("no non-SYN segment kept its ENO option (of %d received)", log.recvTotal)
			}
			sent, recv := log.synSent[0], log.synRecv[0]
			if tc.strip.Remove && recv >= sent || !tc.strip.Remove && recv != sent {
				t.Errorf("SYN TCP header %d bytes sent, %d received (remove=%v)", sent, recv, tc.strip.Remove)
			}
			if n.Stats().AtoB.Stripped == 0 {
				t.Error("Stripped counter is zero")
			}
		})
	}
}

// TestConcurrentConnections runs 1,000 short connections at once through
// a lossy network: each sends a distinct message that B echoes back.
func TestConcurrentConnections(t *testing.T) {
	const conns = 1000
	n := New(t, Config{AtoB: LinkConfig{Loss: 0.01}, BtoA: LinkConfig{Loss: 0.01}})
	ln, err := n.Listen(B, 7)
	if err != nil {
		t.Fatal(err)
	}
	var serving sync.WaitGroup
	serving.Add(1)
	go func() {
		defer serving.Done()
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(realTimeout))
				io.Copy(c, c)
			}()
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	var okCount atomic.Int64
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ipv6 := i%2 == 1
			c, err := n.Dial(A, netip.AddrPortFrom(n.Addr(B, ipv6), 7))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(realTimeout))
			msg := []byte(fmt.Sprintf("connection %04d says hello over ipv6=%v", i, ipv6))
			if _, err := c.Write(msg); err != nil {
				errs <- fmt.Errorf("conn %d write: %w", i, err)
				return
			}
			closeWrite(c)
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, msg) {
				errs <- fmt.Errorf("conn %d: echo %q, %v", i, got, err)
				return
			}
			okCount.Add(1)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ln.Close()
	serving.Wait()
	if okCount.Load() != conns {
		t.Errorf("%d of %d connections intact", okCount.Load(), conns)
	}
	t.Logf("%d connections: %v real, %v simulated; %s", conns, time.Since(start).Round(time.Millisecond), n.Elapsed(), n.describe())
}

// TestWireContains checks the wire scanner, including a needle that
// straddles two segments.
func TestWireContains(t *testing.T) {
	n := New(t, Config{Capture: true})
	a, b := n.MustPair(t, false)
	msg := bytes.Repeat([]byte("0123456789abcdef"), 500) // 8000 bytes: several segments
	go func() { a.Write(msg); closeWrite(a) }()
	got, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	// Bytes 1440±20 straddle the first segment boundary (MSS 1448 with
	// timestamps, or 1460 without); a 100-byte needle around it cannot
	// lie in one packet.
	for _, off := range []int{0, 1400, 1420, 7900} {
		if !n.WireContains(msg[off : off+100]) {
			t.Errorf("needle at %d not found on the wire", off)
		}
	}
	if n.WireContains([]byte("not on the wire at all")) {
		t.Error("false positive")
	}
	if len(n.Captured()) == 0 {
		t.Error("nothing captured")
	}
}

// TestNATUnsolicitedDropped checks that a packet to the NAT's public
// address that matches no mapping is dropped.
func TestNATUnsolicitedDropped(t *testing.T) {
	n := New(t, Config{NAT: &NATConfig{}})
	b, err := packet.AppendTCP(nil, packet.Segment{
		Src: netip.AddrPortFrom(AddrB4, 80), Dst: netip.AddrPortFrom(NATAddr4, 40123),
		Seq: 1, Flags: packet.SYN, Window: 1000})
	if err != nil {
		t.Fatal(err)
	}
	n.InjectOnLink(B, b)
	deadline := time.Now().Add(5 * time.Second)
	for n.Stats().BtoA.NATDropped == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if d := n.Stats().BtoA.NATDropped; d != 1 {
		t.Errorf("NATDropped = %d, want 1", d)
	}
}

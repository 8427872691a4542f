package divert

import (
	"bytes"
	"net/netip"
	"testing"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/packet"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

// A backend that queues GSO super-packets (NFQA_CFG_F_GSO) hands the
// engine segments of up to 64 KiB; the kernel cuts them into MSS-sized
// segments after the verdict.

func payloadOf(t *testing.T, b []byte) (seq uint32, data []byte, flags packet.Flags) {
	t.Helper()
	p, tcp := tcpOf(t, b)
	return tcp.Seq(), p.Payload(), tcp.Flags()
}

func TestGSOSuperPacket(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	const sport = 42000
	if ia, _, _, _ := r.open(sport); ia.State != "encrypted" {
		t.Fatalf("state %s", ia.State)
	}
	a := netip.AddrPortFrom(addrA.Addr(), sport)
	isnA, isnB := uint32(sport)*1000, uint32(sport)*3000
	// The largest payload an IPv4 packet with a bare TCP header holds:
	// the frame overhead cannot fit, so a piece goes out separately.
	msg := bytes.Repeat([]byte("SECRET-gso-"), 65495/11+1)[:65495]
	wire, back := r.run(r.engA, Outbound, seg(t, a, addrB, isnA+1, isnB+1, packet.ACK|packet.PSH, nil, msg))
	if len(back) != 0 {
		t.Fatalf("%d packets back to the stack", len(back))
	}
	if len(wire) < 2 {
		t.Fatalf("%d wire packets; want the super-packet and an injected piece", len(wire))
	}
	var stream []byte
	next := uint32(0)
	for i, w := range wire {
		if len(w) > 0xffff {
			t.Fatalf("wire packet %d is %d bytes", i, len(w))
		}
		if bytes.Contains(w, []byte("SECRET")) {
			t.Fatal("plaintext on the wire")
		}
		seq, data, _ := payloadOf(t, w)
		if i > 0 {
			if seq != next {
				t.Fatalf("packet %d at %d, want %d", i, seq, next)
			}
			if len(w) > 1500 {
				t.Fatalf("injected piece %d is a %d-byte packet (%d data): more than the path's 1500", i, len(w), len(data))
			}
		}
		next = seq + uint32(len(data))
		stream = append(stream, data...)
	}
	if want := len(msg) + len(wire)*tcpcrypt.FrameOverhead; len(stream) != want {
		t.Fatalf("wire carries %d bytes, want %d", len(stream), want)
	}

	// B gets it all; its stack sees the plaintext.
	wseq, _, _ := payloadOf(t, wire[0])
	var got []byte
	for _, w := range wire {
		_, toB := r.run(r.engB, Inbound, w)
		for _, d := range toB {
			_, data, _ := payloadOf(t, d)
			got = append(got, data...)
		}
	}
	if !bytes.Equal(got, msg) {
		i := 0
		for i < len(got) && got[i] == msg[i] {
			i++
		}
		t.Fatalf("B got %d bytes, want %d; first difference at %d", len(got), len(msg), i)
	}

	// A's stack retransmits 1000 bytes from the middle of the first
	// frame: the wire bytes from there to the frame's end go again, byte
	// for byte, in pieces that fit the path (the stack cannot move past
	// the frame until all of it is acknowledged).
	_, first0, _ := payloadOf(t, wire[0])
	const off, n = 3000, 1000
	hdr := uint32(tcpcrypt.FrameHeaderLen + 1)
	re, _ := r.run(r.engA, Outbound, seg(t, a, addrB, isnA+1+off, isnB+1, packet.ACK, nil, msg[off:off+n]))
	var again []byte
	for i, w := range re {
		seq, data, _ := payloadOf(t, w)
		if i == 0 && seq != wseq+hdr+off {
			t.Fatalf("retransmission at %d, want %d", seq, wseq+hdr+off)
		}
		if i > 0 && len(w) > 1500 {
			t.Fatalf("retransmitted piece %d is %d bytes", i, len(w))
		}
		again = append(again, data...)
	}
	if !bytes.Equal(again, first0[hdr+off:]) {
		t.Fatalf("retransmitted %d bytes, differ from the first transmission's %d", len(again), len(first0[hdr+off:]))
	}
	// Once the peer acknowledged part of the frame, that part is not
	// sent again.
	acked := wseq + 20000
	r.run(r.engA, Inbound, seg(t, addrB, a, isnB+1, acked, packet.ACK, nil, nil))
	re, _ = r.run(r.engA, Outbound, seg(t, a, addrB, isnA+1, isnB+1, packet.ACK, nil, msg[:100]))
	if seq, _, _ := payloadOf(t, re[0]); seq != acked {
		t.Fatalf("retransmission after a partial ack starts at %d, want %d", seq, acked)
	}
	again = again[:0]
	for _, w := range re {
		_, data, _ := payloadOf(t, w)
		again = append(again, data...)
	}
	if !bytes.Equal(again, first0[acked-wseq:]) {
		t.Fatal("retransmission after a partial ack differs")
	}

	// The whole super-packet again: the same wire bytes (less the
	// acknowledged part), the first piece in place, the rest in pieces of
	// at most the segment size.
	re, _ = r.run(r.engA, Outbound, seg(t, a, addrB, isnA+1, isnB+1, packet.ACK, nil, msg))
	again = again[:0]
	for _, w := range re {
		_, data, _ := payloadOf(t, w)
		again = append(again, data...)
	}
	if !bytes.Equal(again, stream[acked-wseq:]) {
		t.Fatalf("full retransmission: %d bytes, differ from the first transmission", len(again))
	}
}

// A packet the engine cannot build must not leave as it came.
func TestPlaceFailsClosed(t *testing.T) {
	e, _ := New(Config{})
	c := &conn{e: e}
	p := Packet{Dir: Outbound, Buf: []byte("plaintext"), Verdict: Accept}
	first := true
	c.place(&p, &first, Outbound, nil)
	if p.Verdict != Drop {
		t.Fatal("a packet whose rewrite failed was accepted unchanged")
	}
}

// Frames that arrive in one segment (GRO, or a peer's coalescing
// retransmission) reach the stack as one segment.
func TestDeliveriesCoalesced(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	const sport = 42001
	if ia, _, _, _ := r.open(sport); ia.State != "encrypted" {
		t.Fatalf("state %s", ia.State)
	}
	a := netip.AddrPortFrom(addrA.Addr(), sport)
	isnA, isnB := uint32(sport)*1000, uint32(sport)*3000
	var msg, stream []byte
	wseq := uint32(0)
	for i := range 3 {
		part := bytes.Repeat([]byte{byte('a' + i)}, 1000)
		wire, _ := r.run(r.engA, Outbound, seg(t, a, addrB, isnA+1+uint32(len(msg)), isnB+1, packet.ACK|packet.PSH, nil, part))
		if len(wire) != 1 {
			t.Fatalf("%d wire packets", len(wire))
		}
		seq, data, _ := payloadOf(t, wire[0])
		if i == 0 {
			wseq = seq
		}
		msg = append(msg, part...)
		stream = append(stream, data...)
	}
	_, toB := r.run(r.engB, Inbound, seg(t, a, addrB, wseq, isnB+1, packet.ACK|packet.PSH, nil, stream))
	if len(toB) != 1 {
		t.Fatalf("B's stack gets %d segments, want 1", len(toB))
	}
	if seq, data, _ := payloadOf(t, toB[0]); seq != isnA+1 || !bytes.Equal(data, msg) {
		t.Fatalf("B got %d bytes at %d", len(data), seq)
	}
}

// Data the stack sends before the keys exist is held and injected once
// they do: a held super-packet leaves in segment-sized frames, since an
// injected packet is not segmented by the kernel.
func TestHeldSuperPacketInjectedInPieces(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	const sport = 42002
	a := netip.AddrPortFrom(addrA.Addr(), sport)
	isnA, isnB := uint32(7000), uint32(9000)
	r.send(true, seg(t, a, addrB, isnA, 0, packet.SYN, synOpts(), nil))
	r.send(false, seg(t, addrB, a, isnB, isnA+1, packet.SYN|packet.ACK, synOpts(), nil))
	// A's third segment: A's engine injects Init1; hold it back from B.
	init1, _ := r.run(r.engA, Outbound, seg(t, a, addrB, isnA+1, isnB+1, packet.ACK, nil, nil))
	msg := bytes.Repeat([]byte("SECRET-held-"), 600) // 7200 bytes, one GSO segment
	if wire, _ := r.run(r.engA, Outbound, seg(t, a, addrB, isnA+1, isnB+1, packet.ACK|packet.PSH, nil, msg)); len(wire) != 0 {
		t.Fatalf("%d packets left before the keys exist", len(wire))
	}
	var toA [][]byte
	for _, w := range init1 {
		o, _ := r.run(r.engB, Inbound, w)
		toA = append(toA, o...)
	}
	var got []byte
	for _, w := range toA { // Init2 reaches A: the held data goes out
		wire, _ := r.run(r.engA, Inbound, w)
		for _, x := range wire {
			_, data, _ := payloadOf(t, x)
			if len(x) > 1500 {
				t.Fatalf("an injected segment is %d bytes (%d data), more than the path's 1500", len(x), len(data))
			}
			_, in := r.run(r.engB, Inbound, x)
			for _, d := range in {
				_, pl, _ := payloadOf(t, d)
				got = append(got, pl...)
			}
		}
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("B got %d bytes, want %d", len(got), len(msg))
	}
}

// A frame larger than the peer's congestion window (a GSO super-packet's
// frame cut into segments on the wire, or another implementation's
// 60 KiB frames) must not stall: its first part is acknowledged before
// the rest arrives.
func TestPartialFrameAcknowledged(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	const sport = 42003
	if ia, _, _, _ := r.open(sport); ia.State != "encrypted" {
		t.Fatalf("state %s", ia.State)
	}
	a := netip.AddrPortFrom(addrA.Addr(), sport)
	isnA, isnB := uint32(sport)*1000, uint32(sport)*3000
	msg := bytes.Repeat([]byte("SECRET-big-"), 2000) // 22000 bytes: one frame
	wire, _ := r.run(r.engA, Outbound, seg(t, a, addrB, isnA+1, isnB+1, packet.ACK|packet.PSH, nil, msg))
	if len(wire) != 1 {
		t.Fatalf("%d wire packets", len(wire))
	}
	wseq, stream, _ := payloadOf(t, wire[0])
	var got []byte
	for off := 0; off < len(stream); off += 1400 {
		part := stream[off:min(off+1400, len(stream))]
		out, in := r.run(r.engB, Inbound, seg(t, a, addrB, wseq+uint32(off), isnB+1, packet.ACK|packet.PSH, nil, part))
		for _, d := range in {
			_, pl, _ := payloadOf(t, d)
			got = append(got, pl...)
		}
		if off+len(part) < len(stream) {
			if len(in) != 0 {
				t.Fatalf("at %d: %d packets reach the stack before the frame is complete", off, len(in))
			}
			if len(out) != 1 {
				t.Fatalf("at %d: %d acknowledgments, want 1", off, len(out))
			}
			_, tcp := tcpOf(t, out[0])
			if tcp.Ack() != wseq+uint32(off+len(part)) {
				t.Fatalf("at %d: ack %d, want %d", off, tcp.Ack(), wseq+uint32(off+len(part)))
			}
			// The window shrinks by what the ack covers beyond the
			// stack's own acknowledgment (scale 7 on both sides): the
			// right edge stays where B's stack put it.
			acked := uint32(off + len(part))
			if want := uint16((5000<<7 - acked) >> 7); tcp.Window() != want {
				t.Fatalf("at %d: window %d, want %d", off, tcp.Window(), want)
			}
		}
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("B got %d bytes", len(got))
	}
	// B's stack acknowledges the plaintext: the wire ack covers the frame
	// and does not go back.
	toA, _ := r.run(r.engB, Outbound, seg(t, addrB, a, isnB+1, isnA+1+uint32(len(msg)), packet.ACK, nil, nil))
	if _, tcp := tcpOf(t, toA[0]); tcp.Ack() != wseq+uint32(len(stream)) {
		t.Fatalf("ack after delivery %d, want %d", tcp.Ack(), wseq+uint32(len(stream)))
	}
}

// The window the local stack gets leaves room for the frame overhead its
// data gains, so a window's worth of frames fits the peer's window.
func TestLocalWindowLeavesRoomForFrames(t *testing.T) {
	c := &conn{segSize: 1434}
	c.outTS.ok = true
	for _, tc := range []struct {
		scaled bool
		shift  uint8
		wnd    uint16
	}{{true, 10, 53}, {true, 7, 500}, {false, 0, 65535}, {true, 0, 3000}, {true, 14, 4}} {
		c.localWS, c.peerWS, c.peerShift, c.inWnd = tc.scaled, tc.scaled, tc.shift, tc.wnd
		got := uint64(c.localWindow()) << tc.shift
		peer := uint64(tc.wnd) << tc.shift
		frames := (got + uint64(c.segData()) - 1) / uint64(c.segData())
		if got+frames*uint64(tcpcrypt.FrameOverhead) > peer {
			t.Errorf("%+v: local window %d: its frames (%d) exceed the peer's %d", tc, got, got+frames*tcpcrypt.FrameOverhead, peer)
		}
		// No more lost than the overhead and the scale's granularity.
		if lost := peer - got; peer > 50000 && lost > peer/50+uint64(1)<<tc.shift {
			t.Errorf("%+v: local window %d is far below the peer's %d", tc, got, peer)
		}
	}
	c.inWnd, c.localWS = 10, false // tiny: closed
	if w := c.localWindow(); w != 0 {
		t.Errorf("window %d for a peer window of 10 bytes", w)
	}
}

// A super-packet the kernel segments after the verdict may leave with a
// stale TCP checksum (the kernel computes each segment's); the rest of
// the rewrite is the same.
func TestSegmentedLaterSkipsChecksum(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	const sport = 42004
	if ia, _, _, _ := r.open(sport); ia.State != "encrypted" {
		t.Fatalf("state %s", ia.State)
	}
	a := netip.AddrPortFrom(addrA.Addr(), sport)
	isnA, isnB := uint32(sport)*1000, uint32(sport)*3000
	msg := bytes.Repeat([]byte("SECRET-seg-"), 3000)
	in := seg(t, a, addrB, isnA+1, isnB+1, packet.ACK|packet.PSH, nil, msg)
	pk := []Packet{{Dir: Outbound, Buf: append(make([]byte, 0, len(in)+256), in...), SegmentedLater: true}}
	if out := r.engA.Process(pk, nil, r.now); len(out) != 0 || pk[0].Verdict != Accept || !pk[0].Modified {
		t.Fatalf("verdict %v modified %v, %d injected", pk[0].Verdict, pk[0].Modified, len(out))
	}
	w, err := packet.Parse(pk[0].Buf)
	if err != nil {
		t.Fatal(err)
	}
	if w.IPv4().ComputeChecksum() != w.IPv4().Checksum() {
		t.Fatal("the IP header checksum must be right all the same")
	}
	w.UpdateTCPChecksum() // what the kernel does for each segment
	_, toB := r.run(r.engB, Inbound, w.Bytes())
	var got []byte
	for _, d := range toB {
		_, pl, _ := payloadOf(t, d)
		got = append(got, pl...)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("B got %d bytes", len(got))
	}
}

// The stacks of an encrypted connection do not negotiate SACK (the
// engine removes SACK blocks), so that duplicate ACKs make them
// retransmit; data beyond a hole draws a duplicate ACK, and a duplicate
// ACK reaches the sender's stack as one.
func TestDuplicateACKsWithoutSACK(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	const sport = 42005
	a := netip.AddrPortFrom(addrA.Addr(), sport)
	isnA, isnB := uint32(sport)*1000, uint32(sport)*3000
	toB, _ := r.send(true, seg(t, a, addrB, isnA, 0, packet.SYN, synOpts(), nil))
	if _, tcp := tcpOf(t, toB[0]); func() bool { _, ok := tcp.Options().Find(packet.OptSACKPermitted); return ok }() {
		t.Fatal("B's stack got SACK-permitted in an ENO SYN")
	}
	r.send(false, seg(t, addrB, a, isnB, isnA+1, packet.SYN|packet.ACK, synOpts(), nil))
	r.send(true, seg(t, a, addrB, isnA+1, isnB+1, packet.ACK, nil, nil))
	if ia, _ := r.engA.Lookup(a, addrB); ia.State != "encrypted" {
		t.Fatalf("state %s", ia.State)
	}
	var wire [][]byte
	for i := range 3 {
		w, _ := r.run(r.engA, Outbound, seg(t, a, addrB, isnA+1+uint32(i*100), isnB+1, packet.ACK|packet.PSH, nil, bytes.Repeat([]byte{'x'}, 100)))
		wire = append(wire, w...)
	}
	// The first segment is lost: the second and third draw duplicate ACKs.
	var dups [][]byte
	for _, w := range wire[1:] {
		out, in := r.run(r.engB, Inbound, w)
		if len(in) != 0 {
			t.Fatal("data beyond a hole reached B's stack")
		}
		dups = append(dups, out...)
	}
	if len(dups) != 2 || r.engB.Counters().DupAcksSent != 2 {
		t.Fatalf("%d duplicate ACKs (counted %d), want 2", len(dups), r.engB.Counters().DupAcksSent)
	}
	wseq, _, _ := payloadOf(t, wire[0])
	for _, d := range dups {
		if _, tcp := tcpOf(t, d); tcp.Ack() != wseq {
			t.Fatalf("duplicate ACK acknowledges %d, want %d", tcp.Ack(), wseq)
		}
		_, toStack := r.run(r.engA, Inbound, d)
		if len(toStack) != 1 {
			t.Fatal("a duplicate ACK did not reach A's stack")
		}
		if _, tcp := tcpOf(t, toStack[0]); tcp.Ack() != isnA+1 || tcp.Flags() != packet.ACK {
			t.Fatalf("A's stack got ack %d (flags %v), want a pure duplicate ACK of %d", tcp.Ack(), tcp.Flags(), isnA+1)
		}
	}
}

// A plain connection keeps SACK.
func TestPlainKeepsSACK(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	mustSetPolicy(t, r.engB, core.Policy{})
	a := netip.AddrPortFrom(addrA.Addr(), 42006)
	r.send(true, seg(t, a, addrB, 1, 0, packet.SYN, synOpts(), nil))
	toA, _ := r.send(false, seg(t, addrB, a, 2, 2, packet.SYN|packet.ACK, synOpts(), nil))
	if _, tcp := tcpOf(t, toA[0]); func() bool { _, ok := tcp.Options().Find(packet.OptSACKPermitted); return !ok }() {
		t.Fatal("SACK-permitted removed from a plain connection's SYN-ACK")
	}
}

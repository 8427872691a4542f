package divert

import (
	"bytes"
	"net/netip"
	"testing"

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
			if len(data) > 1460 {
				t.Fatalf("injected piece %d carries %d bytes: more than the peer's MSS", i, len(data))
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

	// A's stack retransmits 1000 bytes from the middle: only the wire
	// bytes holding them go again, byte for byte.
	const off, n = 3000, 1000
	re, _ := r.run(r.engA, Outbound, seg(t, a, addrB, isnA+1+off, isnB+1, packet.ACK, nil, msg[off:off+n]))
	if len(re) != 1 {
		t.Fatalf("retransmission: %d packets", len(re))
	}
	seq, data, _ := payloadOf(t, re[0])
	hdr := uint32(tcpcrypt.FrameHeaderLen + 1)
	if seq != wseq+hdr+off || len(data) != n {
		t.Fatalf("retransmission at %d (+%d bytes), want %d (+%d)", seq, len(data), wseq+hdr+off, n)
	}
	if !bytes.Equal(data, stream[hdr+off:hdr+off+n]) {
		t.Fatal("retransmitted bytes differ from the first transmission")
	}
	// The first segment again, with its frame header.
	re, _ = r.run(r.engA, Outbound, seg(t, a, addrB, isnA+1, isnB+1, packet.ACK, nil, msg[:100]))
	if seq, data, _ := payloadOf(t, re[0]); seq != wseq || !bytes.Equal(data, stream[:hdr+100]) {
		t.Fatalf("retransmitted start at %d (%d bytes)", seq, len(data))
	}
	// The whole super-packet again: the same wire bytes, the first
	// frame in place, the rest in pieces of at most the segment size.
	re, _ = r.run(r.engA, Outbound, seg(t, a, addrB, isnA+1, isnB+1, packet.ACK, nil, msg))
	var again []byte
	for _, w := range re {
		_, data, _ := payloadOf(t, w)
		again = append(again, data...)
	}
	if !bytes.Equal(again, stream) {
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

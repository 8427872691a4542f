package divert

import (
	"bytes"
	"testing"

	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/packet"
)

func hasENO(t *testing.T, b []byte) bool {
	t.Helper()
	_, tcp := tcpOf(t, b)
	_, ok := tcp.Options().Find(eno.OptionKind)
	return ok
}

// timers runs an engine's due timers and returns what it sends.
func (r *rig) timers(e *Engine) (out [][]byte) {
	r.t.Helper()
	for _, p := range e.Process(nil, nil, r.now) {
		if p.Dir == Outbound {
			out = append(out, append([]byte(nil), p.Buf...))
		}
	}
	return out
}

// A's third segment (Init1, in place of the stack's bare ACK) is lost,
// and B's stack, still in SYN-RECEIVED, answers a late duplicate of A's
// SYN with an ACK (RFC 5961 §4). That ACK is B's first non-SYN segment
// but no proof that B has A's ENO: A must keep ENO in what follows, or
// B, seeing Init1's retransmission without it, falls back to plain TCP
// (RFC 8547 §4.6 rule 1) while A waits for Init2.
func TestENOSurvivesLostInit1(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	const isnA, isnB = 1000, 5000
	syn := seg(t, addrA, addrB, isnA, 0, packet.SYN, synOpts(), nil)
	wire, _ := r.run(r.engA, Outbound, syn)
	if len(wire) != 1 {
		t.Fatalf("SYN: %d packets", len(wire))
	}
	r.run(r.engB, Inbound, wire[0])
	// The stack retransmits its SYN; the copy is delayed on the way.
	late, _ := r.run(r.engA, Outbound, syn)
	if len(late) != 1 {
		t.Fatalf("SYN retransmission: %d packets", len(late))
	}
	wire, _ = r.run(r.engB, Outbound, seg(t, addrB, addrA, isnB, isnA+1, packet.SYN|packet.ACK, synOpts(), nil))
	if _, in := r.run(r.engA, Inbound, wire[0]); len(in) != 1 {
		t.Fatal("SYN-ACK not passed to A's stack")
	}
	// The third segment becomes Init1, with ENO; the link loses it.
	lost, _ := r.run(r.engA, Outbound, seg(t, addrA, addrB, isnA+1, isnB+1, packet.ACK, nil, nil))
	if len(lost) != 1 || !hasENO(t, lost[0]) {
		t.Fatalf("third segment: %d packets (want Init1 with ENO)", len(lost))
	}
	if p, _ := tcpOf(t, lost[0]); p.PayloadLen() == 0 {
		t.Fatal("third segment carries no Init1")
	}
	// The late SYN reaches B; B's stack answers with an ACK.
	r.run(r.engB, Inbound, late[0])
	wire, _ = r.run(r.engB, Outbound, seg(t, addrB, addrA, isnB+1, isnA+1, packet.ACK, nil, nil))
	if len(wire) != 1 {
		t.Fatalf("B's ACK: %d packets", len(wire))
	}
	r.run(r.engA, Inbound, wire[0])
	// A's stack sends a pure ACK (a window update): ENO still.
	out, _ := r.run(r.engA, Outbound, seg(t, addrA, addrB, isnA+1, isnB+1, packet.ACK, nil, nil))
	for _, b := range out {
		if !hasENO(t, b) {
			t.Fatal("A's ACK after B's ACK of the duplicate SYN lacks ENO")
		}
	}
	// Init1 is retransmitted with ENO, and the handshake completes.
	r.now = r.now.Add(r.engA.cfg.InitRTO)
	retx := r.timers(r.engA)
	if len(retx) != 1 || !hasENO(t, retx[0]) {
		t.Fatalf("Init1 retransmission: %d packets, or without ENO", len(retx))
	}
	// Deliver out (the ACK) and Init1 to B, then B's replies to A.
	var replies [][]byte
	for _, w := range append(out, retx...) {
		o, _ := r.run(r.engB, Inbound, w)
		replies = append(replies, o...)
	}
	if len(replies) == 0 {
		t.Fatal("B sent no Init2")
	}
	var acks [][]byte
	for _, w := range replies {
		o, _ := r.run(r.engA, Inbound, w)
		acks = append(acks, o...)
	}
	ia, _ := r.engA.Lookup(addrA, addrB)
	ib, _ := r.engB.Lookup(addrB, addrA)
	if ia.State != "encrypted" || ib.State != "encrypted" {
		t.Fatalf("after Init1's retransmission: A %s, B %s (B plain: %v)", ia.State, ib.State, ib.PlainReason)
	}
	if !bytes.Equal(ia.SessionID, ib.SessionID) {
		t.Fatal("session IDs differ")
	}
	// Init2 proves B has ENO: A's segments stop carrying it.
	if len(acks) == 0 {
		t.Fatal("A did not acknowledge Init2")
	}
	for _, b := range acks {
		if hasENO(t, b) {
			t.Fatal("A still sends ENO after Init2")
		}
	}
	data, _ := r.run(r.engA, Outbound, seg(t, addrA, addrB, isnA+1, isnB+1, packet.ACK|packet.PSH, nil, []byte("SECRET")))
	if len(data) != 1 || hasENO(t, data[0]) || bytes.Contains(data[0], []byte("SECRET")) {
		t.Fatalf("A's first frame: %d packets, ENO or plaintext", len(data))
	}
	if c := r.engB.Counters(); c.ConnsPlain != 0 {
		t.Fatalf("B went plain: %v", c.PlainReasons)
	}
}

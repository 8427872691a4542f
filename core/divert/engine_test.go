package divert

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/packet"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

// A scripted exchange through two engines: hand-made segments stand in
// for the two stacks, so every rewrite can be checked exactly. The
// simulated network with real TCP stacks is in tests/.

var (
	addrA = netip.MustParseAddrPort("192.0.2.1:40000")
	addrB = netip.MustParseAddrPort("192.0.2.2:80")
	t0    = time.Unix(1_700_000_000, 0)
)

type rig struct {
	t          *testing.T
	engA, engB *Engine
	now        time.Time
}

func newRig(t *testing.T, cfgA, cfgB Config) *rig {
	a, err := New(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfgB)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, engA: a, engB: b, now: t0}
}

func seg(t *testing.T, src, dst netip.AddrPort, seq, ack uint32, flags packet.Flags, opts, payload []byte) []byte {
	t.Helper()
	b, err := packet.AppendTCP(make([]byte, 0, 2048), packet.Segment{Src: src, Dst: dst, Seq: seq, Ack: ack, Flags: flags, Window: 5000, Options: opts, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func synOpts() []byte {
	o := packet.AppendMSS(nil, 1460)
	o = packet.AppendSACKPermitted(o)
	o = packet.AppendTimestamps(o, 100, 0)
	o = packet.AppendNOP(o)
	return packet.AppendWindowScale(o, 7)
}

// run passes one packet through an engine and returns what continues in
// each direction (the packet itself if accepted, and injections).
func (r *rig) run(e *Engine, dir Direction, b []byte) (out, in [][]byte) {
	r.t.Helper()
	// The engine rewrites packets in place: give it its own copy, with
	// room to grow as a backend's buffers have.
	pk := []Packet{{Dir: dir, Buf: append(make([]byte, 0, len(b)+256), b...)}}
	inj := e.Process(pk, nil, r.now)
	all := append([]Packet{}, inj...)
	if pk[0].Verdict == Accept {
		all = append([]Packet{pk[0]}, all...)
	}
	for _, p := range all {
		if _, err := packet.Parse(p.Buf); err != nil {
			r.t.Fatalf("engine emitted an unparseable packet: %v", err)
		}
		q, _ := packet.Parse(p.Buf)
		if !q.VerifyTCPChecksum() {
			r.t.Fatalf("engine emitted a bad checksum")
		}
		cp := append([]byte(nil), p.Buf...)
		if p.Dir == Outbound {
			out = append(out, cp)
		} else {
			in = append(in, cp)
		}
	}
	return out, in
}

// wire sends a packet from stack X through X's engine and the peer's
// engine, returning what reaches the peer's stack and what comes back to
// X's stack.
func (r *rig) send(fromA bool, b []byte) (toPeer, toSelf [][]byte) {
	src, dst := r.engA, r.engB
	if !fromA {
		src, dst = r.engB, r.engA
	}
	out, back := r.run(src, Outbound, b)
	toSelf = append(toSelf, back...)
	for _, w := range out {
		if bytes.Contains(w, []byte("SECRET")) {
			r.t.Fatal("plaintext on the wire")
		}
		o2, in2 := r.run(dst, Inbound, w)
		toPeer = append(toPeer, in2...)
		// Replies the peer's engine makes by itself (Init2, ACKs) go
		// back through our engine.
		for _, w2 := range o2 {
			_, in3 := r.run(src, Inbound, w2)
			toSelf = append(toSelf, in3...)
		}
	}
	return toPeer, toSelf
}

func tcpOf(t *testing.T, b []byte) (packet.Packet, packet.TCP) {
	p, err := packet.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return p, p.TCP()
}

func TestEngineScriptedExchange(t *testing.T) {
	cache := func() *tcpcrypt.Cache { return tcpcrypt.NewCache(8) }
	r := newRig(t, Config{Cache: cache()}, Config{Cache: cache()})
	for round, wantResumed := range []bool{false, true} {
		sport := uint16(40000 + round)
		a := netip.AddrPortFrom(addrA.Addr(), sport)
		isnA, isnB := uint32(1000+round*7), uint32(5000+round*11)
		// SYN: ENO added, MSS clamped at B.
		toB, _ := r.send(true, seg(t, a, addrB, isnA, 0, packet.SYN, synOpts(), nil))
		if len(toB) != 1 {
			t.Fatalf("SYN: %d packets reach B", len(toB))
		}
		_, tcp := tcpOf(t, toB[0])
		if _, ok := tcp.Options().Find(eno.OptionKind); !ok {
			t.Fatal("SYN lacks ENO")
		}
		if mss, _ := tcp.Options().MSS(); mss != 1460-mssReduction {
			t.Fatalf("MSS at B = %d", mss)
		}
		toA, _ := r.send(false, seg(t, addrB, a, isnB, isnA+1, packet.SYN|packet.ACK, synOpts(), nil))
		if len(toA) != 1 {
			t.Fatalf("SYN-ACK: %d packets reach A", len(toA))
		}
		// Third segment: Init1 / Init2 run inside the engines.
		toB, toA = r.send(true, seg(t, a, addrB, isnA+1, isnB+1, packet.ACK, nil, nil))
		ia, okA := r.engA.Lookup(a, addrB)
		ib, okB := r.engB.Lookup(addrB, a)
		if !okA || !okB || ia.State != "encrypted" || ib.State != "encrypted" {
			t.Fatalf("after handshake: A %+v, B %+v", ia.State, ib.State)
		}
		if !bytes.Equal(ia.SessionID, ib.SessionID) || len(ia.SessionID) != 33 {
			t.Fatalf("session IDs differ")
		}
		if ia.Resumed != wantResumed || ib.Resumed != wantResumed {
			t.Fatalf("round %d: resumed A=%v B=%v", round, ia.Resumed, ib.Resumed)
		}
		if ia.Role != eno.RoleA || ib.Role != eno.RoleB {
			t.Fatalf("roles %v %v", ia.Role, ib.Role)
		}
		for _, b := range append(toB, toA...) {
			if p, _ := tcpOf(t, b); p.PayloadLen() > 0 {
				t.Fatal("Init bytes reached a stack")
			}
		}
		// Data A -> B: encrypted on the wire, plaintext at B with B's
		// view of A's sequence numbers.
		msg := []byte("GET /SECRET HTTP/1.1\r\n\r\n")
		dataPkt := seg(t, a, addrB, isnA+1, isnB+1, packet.ACK|packet.PSH, nil, msg)
		wire1, _ := r.run(r.engA, Outbound, dataPkt)
		for _, w := range wire1 {
			if bytes.Contains(w, []byte("SECRET")) {
				t.Fatal("plaintext on the wire")
			}
		}
		toB = nil
		for _, w := range wire1 {
			_, in := r.run(r.engB, Inbound, w)
			toB = append(toB, in...)
		}
		var got []byte
		for _, b := range toB {
			p, tcp := tcpOf(t, b)
			if p.PayloadLen() > 0 {
				if tcp.Seq() != isnA+1 {
					t.Fatalf("B sees seq %d, want %d", tcp.Seq(), isnA+1)
				}
				got = append(got, p.Payload()...)
			}
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("B got %q", got)
		}
		// The stack retransmits: the same wire bytes go out.
		wire2, _ := r.run(r.engA, Outbound, dataPkt)
		if len(wire1) != 1 || len(wire2) != 1 {
			t.Fatalf("wire packets %d/%d", len(wire1), len(wire2))
		}
		_, w1 := tcpOf(t, wire1[0])
		_, w2 := tcpOf(t, wire2[0])
		if w1.Seq() != w2.Seq() || !bytes.Equal(w1.Payload(), w2.Payload()) {
			t.Fatal("retransmission differs on the wire")
		}
		// B acknowledges; A's stack sees its own sequence space.
		toA, _ = r.send(false, seg(t, addrB, a, isnB+1, isnA+1+uint32(len(msg)), packet.ACK, nil, nil))
		for _, b := range toA {
			if _, tcp := tcpOf(t, b); tcp.Ack() != isnA+1+uint32(len(msg)) {
				t.Fatalf("A sees ack %d, want %d", tcp.Ack(), isnA+1+uint32(len(msg)))
			}
		}
		// Reply and FIN from B, then FIN from A.
		reply := []byte("HTTP/1.1 200 OK SECRET")
		toA, _ = r.send(false, seg(t, addrB, a, isnB+1, isnA+1+uint32(len(msg)), packet.ACK|packet.PSH|packet.FIN, nil, reply))
		var gotReply []byte
		sawFIN := false
		for _, b := range toA {
			p, tcp := tcpOf(t, b)
			gotReply = append(gotReply, p.Payload()...)
			sawFIN = sawFIN || tcp.Flags()&packet.FIN != 0
		}
		if !bytes.Equal(gotReply, reply) || !sawFIN {
			t.Fatalf("A got %q fin=%v", gotReply, sawFIN)
		}
		r.send(true, seg(t, a, addrB, isnA+1+uint32(len(msg)), isnB+2+uint32(len(reply)), packet.ACK|packet.FIN, nil, nil))
		r.send(false, seg(t, addrB, a, isnB+2+uint32(len(reply)), isnA+2+uint32(len(msg)), packet.ACK, nil, nil))
		// Let TIME_WAIT pass: entries go, secrets are cached.
		r.now = r.now.Add(time.Minute)
		r.engA.Process(nil, nil, r.now)
		r.engB.Process(nil, nil, r.now)
		if r.engA.Len() != 0 || r.engB.Len() != 0 {
			t.Fatalf("tables hold %d/%d connections after close", r.engA.Len(), r.engB.Len())
		}
	}
	ca, cb := r.engA.Counters(), r.engB.Counters()
	if ca.KeyAgreements != 1 || cb.KeyAgreements != 1 || ca.ConnsResumed != 1 || cb.ConnsResumed != 1 {
		t.Fatalf("key agreements %d/%d, resumed %d/%d", ca.KeyAgreements, cb.KeyAgreements, ca.ConnsResumed, cb.ConnsResumed)
	}
}

func TestEnginePeerWithoutENO(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	var events []Event
	r.engA.cfg.OnEvent = func(e Event) { events = append(events, e) }
	r.run(r.engA, Outbound, seg(t, addrA, addrB, 1, 0, packet.SYN, synOpts(), nil))
	// The peer answers without ENO (no tcpinc there).
	_, in := r.run(r.engA, Inbound, seg(t, addrB, addrA, 9, 2, packet.SYN|packet.ACK, synOpts(), nil))
	if len(in) != 1 {
		t.Fatal("SYN-ACK not passed")
	}
	if _, tcp := tcpOf(t, in[0]); func() bool { m, _ := tcp.Options().MSS(); return m != 1460 }() {
		t.Fatal("MSS clamped on a plain connection")
	}
	if len(events) != 1 || events[0].Kind != EventPlain {
		t.Fatalf("events %v", events)
	}
	data := seg(t, addrA, addrB, 2, 10, packet.ACK|packet.PSH, nil, []byte("plain"))
	out, _ := r.run(r.engA, Outbound, append([]byte(nil), data...))
	if len(out) != 1 || !bytes.Equal(out[0], data) {
		t.Fatal("plain data was changed")
	}
	if c := r.engA.Counters(); c.ConnsPlain != 1 || c.PlainReasons[eno.NoENOInSYNACK] != 1 {
		t.Fatalf("counters %+v", c.PlainReasons)
	}
}

func TestEngineExpiredEncryptedConnectionFailsClosed(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	r.send(true, seg(t, addrA, addrB, 10, 0, packet.SYN, synOpts(), nil))
	r.send(false, seg(t, addrB, addrA, 20, 11, packet.SYN|packet.ACK, synOpts(), nil))
	r.send(true, seg(t, addrA, addrB, 11, 21, packet.ACK, nil, nil))
	if ci, _ := r.engA.Lookup(addrA, addrB); ci.State != "encrypted" {
		t.Fatalf("state %q", ci.State)
	}
	// AbortAll resets both ends of an encrypted connection.
	if snap := r.engB.AbortAll(); len(snap) != 2 || r.engB.Len() != 0 {
		t.Fatalf("AbortAll: %d packets, %d left", len(snap), r.engB.Len())
	}
	r.now = r.now.Add(3 * time.Hour)
	r.engA.Sweep(r.now)
	out, in := r.run(r.engA, Outbound, seg(t, addrA, addrB, 11, 21, packet.ACK|packet.PSH, nil, []byte("SECRET")))
	if len(out) != 0 {
		t.Fatal("a packet of an expired encrypted connection went out")
	}
	if len(in) != 1 {
		t.Fatal("the local end was not reset")
	}
	if _, tcp := tcpOf(t, in[0]); tcp.Flags()&packet.RST == 0 || tcp.Seq() != 21 {
		t.Fatalf("reset: flags %v seq %d", tcp.Flags(), tcp.Seq())
	}
	if c := r.engA.Counters(); c.ConnsExpired != 1 || c.DropExpired != 1 {
		t.Fatalf("expired %d, refused %d", c.ConnsExpired, c.DropExpired)
	}
	r.now = r.now.Add(25 * time.Hour)
	r.engA.Sweep(r.now)
	if r.engA.Len() != 0 {
		t.Fatal("tombstone not removed")
	}
}

func TestEngineUnknownFlowPasses(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	b := seg(t, addrA, addrB, 77, 88, packet.ACK, nil, []byte("x"))
	out, _ := r.run(r.engA, Outbound, append([]byte(nil), b...))
	if len(out) != 1 || !bytes.Equal(out[0], b) || r.engA.Len() != 0 {
		t.Fatal("unknown flow not passed unchanged")
	}
}

// Simultaneous open: both stacks send a SYN and answer the other's with
// a SYN-ACK. Neither sets b (no API asks for it), so RFC 8547 §4.3 makes
// ENO fail: both engines must end plain and pass data unchanged.
func TestEngineSimultaneousOpenIsPlain(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	// Both SYNs leave before either arrives.
	wireA, _ := r.run(r.engA, Outbound, seg(t, addrA, addrB, 100, 0, packet.SYN, synOpts(), nil))
	wireB, _ := r.run(r.engB, Outbound, seg(t, addrB, addrA, 900, 0, packet.SYN, synOpts(), nil))
	_, toB := r.run(r.engB, Inbound, wireA[0])
	_, toA := r.run(r.engA, Inbound, wireB[0])
	if len(toA) != 1 || len(toB) != 1 {
		t.Fatalf("SYNs not delivered: %d/%d", len(toA), len(toB))
	}
	r.send(true, seg(t, addrA, addrB, 100, 901, packet.SYN|packet.ACK, synOpts(), nil))
	r.send(false, seg(t, addrB, addrA, 900, 101, packet.SYN|packet.ACK, synOpts(), nil))
	data := seg(t, addrA, addrB, 101, 901, packet.ACK|packet.PSH, nil, []byte("hello"))
	out, _ := r.run(r.engA, Outbound, data)
	if len(out) != 1 || !bytes.Equal(out[0], data) {
		t.Fatal("data of a plain simultaneous open was changed")
	}
	for _, e := range []*Engine{r.engA, r.engB} {
		if c := e.Counters(); c.ConnsPlain != 1 || c.ConnsEncrypted != 0 {
			t.Fatalf("plain %d, encrypted %d", c.ConnsPlain, c.ConnsEncrypted)
		}
	}
}

// RST in each phase: the connection leaves the table and the RST reaches
// the other side with a sequence number it accepts.
func TestEngineRSTInEveryPhase(t *testing.T) {
	for _, phase := range []string{"syn", "key-exchange", "encrypted"} {
		t.Run(phase, func(t *testing.T) {
			r := newRig(t, Config{}, Config{})
			r.send(true, seg(t, addrA, addrB, 10, 0, packet.SYN, synOpts(), nil))
			seqB := uint32(20)
			if phase != "syn" {
				r.send(false, seg(t, addrB, addrA, 20, 11, packet.SYN|packet.ACK, synOpts(), nil))
				seqB = 21
			}
			if phase == "encrypted" {
				r.send(true, seg(t, addrA, addrB, 11, 21, packet.ACK, nil, nil))
			}
			toA, _ := r.send(false, seg(t, addrB, addrA, seqB, 11, packet.RST|packet.ACK, nil, nil))
			if len(toA) != 1 {
				t.Fatalf("RST reached A %d times", len(toA))
			}
			if _, tcp := tcpOf(t, toA[0]); tcp.Flags()&packet.RST == 0 {
				t.Fatal("not a RST")
			}
			if r.engA.Len() != 0 {
				t.Fatalf("A still holds %d connections", r.engA.Len())
			}
		})
	}
}

package redirect

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/packet"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

var (
	addrA = netip.MustParseAddrPort("10.0.0.1:40000")
	addrB = netip.MustParseAddrPort("10.0.0.2:443")
	t0    = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// linuxSYNOpts is what a Linux SYN carries: MSS, SACK permitted,
// timestamps, NOP, window scale (20 bytes).
func linuxSYNOpts() []byte {
	o := packet.AppendMSS(nil, 1460)
	o = packet.AppendSACKPermitted(o)
	o = packet.AppendTimestamps(o, 1, 0)
	o = packet.AppendNOP(o)
	return packet.AppendWindowScale(o, 7)
}

func seg(t testing.TB, src, dst netip.AddrPort, seq, ack uint32, f packet.Flags, opts, payload []byte) []byte {
	b, err := packet.AppendTCP(make([]byte, 0, 256), packet.Segment{Src: src, Dst: dst, Seq: seq, Ack: ack, Flags: f, Window: 65535, Options: opts, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newHook(t testing.TB, cache *tcpcrypt.Cache) *Hook {
	h, err := NewHook(HookConfig{Policy: core.DefaultPolicy(), Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// through runs a packet out of one hook and into the other, as the
// network between two hosts would.
func through(t testing.TB, from, to *Hook, b []byte) ([]byte, Verdict, Verdict) {
	t.Helper()
	var vOut Verdict
	if from != nil {
		b, vOut = from.Process(b, Outbound, t0)
	}
	if vOut.Action == Drop {
		t.Fatal("sender's hook dropped the segment")
	}
	b = append(make([]byte, 0, len(b)+64), b...)
	var vIn Verdict
	if to != nil {
		b, vIn = to.Process(b, Inbound, t0)
	}
	if q, err := packet.Parse(b); err != nil || !q.VerifyTCPChecksum() {
		t.Fatalf("hook emitted a broken packet: %v", err)
	}
	return b, vOut, vIn
}

// handshake runs SYN, SYN-ACK, ACK and B's first data segment between an
// active host with hook ha (nil: a host without tcpinc) and a passive one
// with hook hb, at wire addresses a and b.
func handshake(t testing.TB, ha, hb *Hook, a, b netip.AddrPort) {
	t.Helper()
	const isnA, isnB = 1000, 9000
	syn, _, _ := through(t, ha, hb, seg(t, a, b, isnA, 0, packet.SYN, linuxSYNOpts(), nil))
	_ = syn
	synAck, _, _ := through(t, hb, ha, seg(t, b, a, isnB, isnA+1, packet.SYN|packet.ACK, linuxSYNOpts(), nil))
	_ = synAck
	through(t, ha, hb, seg(t, a, b, isnA+1, isnB+1, packet.ACK, nil, nil))
	through(t, ha, hb, seg(t, a, b, isnA+1, isnB+1, packet.ACK|packet.PSH, nil, []byte("init1")))
	through(t, hb, ha, seg(t, b, a, isnB+1, isnA+6, packet.ACK|packet.PSH, nil, []byte("init2")))
}

func outcome(t testing.TB, h *Hook, local, remote netip.AddrPort) Outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	o, err := h.Wait(ctx, local, remote)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestHookEnabled(t *testing.T) {
	ha, hb := newHook(t, nil), newHook(t, nil)
	const isnA, isnB = 1000, 9000
	syn, v, _ := through(t, ha, hb, seg(t, addrA, addrB, isnA, 0, packet.SYN, linuxSYNOpts(), nil))
	pk, _ := packet.Parse(syn)
	o, _ := eno.ScanOptions(pk.TCP().Options())
	if o.ENO == nil || v.Action != Modified || v.Done {
		t.Fatalf("SYN: ENO %x, verdict %+v", o.ENO, v)
	}
	synAck, _, _ := through(t, hb, ha, seg(t, addrB, addrA, isnB, isnA+1, packet.SYN|packet.ACK, linuxSYNOpts(), nil))
	pk, _ = packet.Parse(synAck)
	o, _ = eno.ScanOptions(pk.TCP().Options())
	if len(o.ENO) < 3 || o.ENO[2]&eno.GlobalB == 0 {
		t.Fatalf("SYN-ACK ENO option %x: want b = 1", o.ENO)
	}
	// The active side's stack sees an MSS with room for 45 02.
	if mss, ok := pk.TCP().Options().Find(2); !ok || mss.Data[0] != 1460>>8 || mss.Data[1] != (1460-mssReduction)&0xff {
		t.Fatalf("SYN-ACK MSS option %x, want %d", mss.Data, 1460-mssReduction)
	}
	ack, vA, vB := through(t, ha, hb, seg(t, addrA, addrB, isnA+1, isnB+1, packet.ACK, nil, nil))
	pk, _ = packet.Parse(ack)
	o, _ = eno.ScanOptions(pk.TCP().Options())
	if !bytes.Equal(o.ENO, []byte{69, 2}) {
		t.Fatalf("first ACK ENO option %x, want 45 02", o.ENO)
	}
	if vA.Done || !vB.Done {
		t.Fatalf("after the ACK: active done %v (want false), passive done %v (want true)", vA.Done, vB.Done)
	}
	// A keeps sending 45 02 until B's first non-SYN segment.
	data, vA, _ := through(t, ha, hb, seg(t, addrA, addrB, isnA+1, isnB+1, packet.ACK|packet.PSH, nil, []byte("x")))
	pk, _ = packet.Parse(data)
	if o, _ = eno.ScanOptions(pk.TCP().Options()); o.ENO == nil || vA.Done {
		t.Fatal("A's data before B's first segment lacks ENO")
	}
	_, _, vIn := through(t, hb, ha, seg(t, addrB, addrA, isnB+1, isnA+2, packet.ACK, nil, nil))
	if !vIn.Done {
		t.Fatal("active side not done after the peer's first non-SYN segment")
	}
	oa, ob := outcome(t, ha, addrA, addrB), outcome(t, hb, addrB, addrA)
	if !oa.Enabled || !ob.Enabled {
		t.Fatalf("outcomes %+v %+v", oa, ob)
	}
	if oa.Result.Role() != eno.RoleA || ob.Result.Role() != eno.RoleB || oa.Result.TEP() != eno.TEPTcpcryptCurve25519 {
		t.Fatalf("roles %v %v, TEP %v", oa.Result.Role(), ob.Result.Role(), oa.Result.TEP())
	}
	if !bytes.Equal(oa.Result.Transcript(), ob.Result.Transcript()) {
		t.Fatal("transcripts differ")
	}
	if ha.Len() != 0 || hb.Len() != 0 {
		t.Fatalf("table not empty after outcomes taken and handshakes done: %d %d", ha.Len(), hb.Len())
	}
	// Taken once: a second Wait finds no entry, so a plain MidStream.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if o2, err := ha.Wait(ctx, addrA, addrB); err != nil || o2.Enabled || o2.Reason != eno.MidStream {
		t.Fatalf("second Wait: %+v %v", o2, err)
	}
}

func TestHookPeerWithoutENO(t *testing.T) {
	ha := newHook(t, nil)
	handshake(t, ha, nil, addrA, addrB)
	o := outcome(t, ha, addrA, addrB)
	if o.Enabled || o.Reason != eno.NoENOInSYNACK {
		t.Fatalf("outcome %+v, want plain NoENOInSYNACK", o)
	}
	// Passive side, peer without tcpinc.
	hb := newHook(t, nil)
	handshake(t, nil, hb, addrA, addrB)
	if o := outcome(t, hb, addrB, addrA); o.Enabled || o.Reason != eno.NoENOInSYN {
		t.Fatalf("outcome %+v, want plain NoENOInSYN", o)
	}
	if c := hb.Counters(); c.Plain != 1 || c.PlainReasons[eno.NoENOInSYN] != 1 {
		t.Fatalf("counters %+v", c)
	}
}

func TestHookPolicy(t *testing.T) {
	h, err := NewHook(HookConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b, v := h.Process(seg(t, addrA, addrB, 1, 0, packet.SYN, linuxSYNOpts(), nil), Outbound, t0)
	if v.Action != Pass || !v.Done || h.Counters().Policy != 1 {
		t.Fatalf("disabled policy: verdict %+v", v)
	}
	pk, _ := packet.Parse(b)
	if o, _ := eno.ScanOptions(pk.TCP().Options()); o.ENO != nil {
		t.Fatal("ENO added with the policy off")
	}
	p := core.DefaultPolicy()
	p.ExcludePorts = []uint16{443}
	h.SetPolicy(p)
	if _, v = h.Process(seg(t, addrA, addrB, 1, 0, packet.SYN, linuxSYNOpts(), nil), Outbound, t0); v.Action != Pass || h.Counters().Policy != 2 {
		t.Fatal("excluded port negotiated")
	}
}

func TestHookTableFullAndExpiry(t *testing.T) {
	h, err := NewHook(HookConfig{Policy: core.DefaultPolicy(), MaxEntries: 1, Expiry: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	h.Process(seg(t, addrA, addrB, 1, 0, packet.SYN, linuxSYNOpts(), nil), Outbound, t0)
	other := netip.MustParseAddrPort("10.0.0.1:40001")
	if _, v := h.Process(seg(t, other, addrB, 1, 0, packet.SYN, linuxSYNOpts(), nil), Outbound, t0); v.Action != Pass || h.Counters().TableFull != 1 {
		t.Fatalf("table full: %+v", v)
	}
	h.Sweep(t0.Add(2 * time.Minute))
	if h.Len() != 0 || h.Counters().Expired != 1 {
		t.Fatal("entry did not expire")
	}
	// An expired, undecided leg: Wait finds nothing, so plain.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if o, err := h.Wait(ctx, addrA, addrB); err != nil || o.Enabled {
		t.Fatalf("Wait after expiry: %+v %v", o, err)
	}
}

func TestHookUndecided(t *testing.T) {
	h := newHook(t, nil)
	h.Process(seg(t, addrA, addrB, 1, 0, packet.SYN, linuxSYNOpts(), nil), Outbound, t0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := h.Wait(ctx, addrA, addrB); err == nil {
		t.Fatal("Wait on a leg whose SYN-ACK never came succeeded")
	}
}

func TestHookOutOfWindowAndBadChecksum(t *testing.T) {
	ha := newHook(t, nil)
	ha.Process(seg(t, addrA, addrB, 1000, 0, packet.SYN, linuxSYNOpts(), nil), Outbound, t0)
	// A forged SYN-ACK without ENO acking the wrong ISN must not decide.
	ha.Process(seg(t, addrB, addrA, 5, 77, packet.SYN|packet.ACK, linuxSYNOpts(), nil), Inbound, t0)
	bad := seg(t, addrB, addrA, 5, 1001, packet.SYN|packet.ACK, linuxSYNOpts(), nil)
	bad[len(bad)-1] ^= 0xff // options byte: checksum now wrong
	ha.Process(bad, Inbound, t0)
	c := ha.Counters()
	if c.OutOfWindow != 1 || c.BadChecksum != 1 || c.Plain != 0 {
		t.Fatalf("counters %+v", c)
	}
}

// TestHookWaitBlocks: Wait called while the handshake runs returns the
// outcome when it comes.
func TestHookWaitBlocks(t *testing.T) {
	ha, hb := newHook(t, nil), newHook(t, nil)
	const isnA, isnB = 1000, 9000
	through(t, ha, hb, seg(t, addrA, addrB, isnA, 0, packet.SYN, linuxSYNOpts(), nil))
	got := make(chan Outcome, 1)
	go func() { got <- outcome(t, hb, addrB, addrA) }()
	time.Sleep(10 * time.Millisecond)
	through(t, hb, ha, seg(t, addrB, addrA, isnB, isnA+1, packet.SYN|packet.ACK, linuxSYNOpts(), nil))
	through(t, ha, hb, seg(t, addrA, addrB, isnA+1, isnB+1, packet.ACK, nil, nil))
	select {
	case o := <-got:
		if !o.Enabled {
			t.Fatalf("outcome %+v", o)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Wait did not return")
	}
}

func defaultPolicyResume() core.Policy { return core.DefaultPolicy() }

// TestHookReusedTuple: an active leg's entry stays after Wait until the
// peer's first non-SYN segment; if the connection ends before one
// passes the hook and the 4-tuple is reused at once (TIME_WAIT reuse),
// the new connection's SYN must start a fresh entry, not run through the
// old tracker (whose outcome was taken: Wait would call the new leg
// plain while the peer enabled ENO). Same on the passive side.
func TestHookReusedTuple(t *testing.T) {
	ha, hb := newHook(t, nil), newHook(t, nil)
	for i, isn := range []uint32{1000, 500000} {
		through(t, ha, hb, seg(t, addrA, addrB, isn, 0, packet.SYN, linuxSYNOpts(), nil))
		through(t, hb, ha, seg(t, addrB, addrA, 9000+isn, isn+1, packet.SYN|packet.ACK, linuxSYNOpts(), nil))
		through(t, ha, hb, seg(t, addrA, addrB, isn+1, 9000+isn+1, packet.ACK, nil, nil))
		if o := outcome(t, ha, addrA, addrB); !o.Enabled {
			t.Fatalf("connection %d: active outcome %+v, want enabled", i, o)
		}
		if o := outcome(t, hb, addrB, addrA); !o.Enabled {
			t.Fatalf("connection %d: passive outcome %+v, want enabled", i, o)
		}
		// Reset before the passive side sent anything: the active
		// entry stays (no non-SYN segment from the peer passed).
	}
	if n := ha.Counters().Reused; n != 1 {
		t.Errorf("active side: %d entries replaced, want 1", n)
	}
	// A retransmitted SYN is the same connection.
	through(t, ha, hb, seg(t, addrA, addrB, 777, 0, packet.SYN, linuxSYNOpts(), nil))
	through(t, ha, hb, seg(t, addrA, addrB, 777, 0, packet.SYN, linuxSYNOpts(), nil))
	if n := ha.Counters().Reused; n != 2 {
		t.Errorf("active side after a retransmitted SYN: %d entries replaced, want 2", n)
	}
	if n := hb.Counters().Reused; n != 0 {
		t.Errorf("passive side after a retransmitted SYN: %d entries replaced, want 0", n)
	}
	// The peer gives up on that handshake and reuses the 4-tuple.
	hb.Process(seg(t, addrA, addrB, 888, 0, packet.SYN, linuxSYNOpts(), nil), Inbound, t0)
	if n := hb.Counters().Reused; n != 1 {
		t.Errorf("passive side after a new SYN: %d entries replaced, want 1", n)
	}
}

// TestHookENOAfterBareACKOfSYN: A's third segment is lost and B, still in
// SYN-RECEIVED, answers a delayed duplicate SYN with a bare ACK of A's
// SYN. That ACK proves nothing about A's 45 02, so A must keep sending
// the option; otherwise B's first non-SYN segment from A lacks it and B
// goes plain while A has turned encryption on.
func TestHookENOAfterBareACKOfSYN(t *testing.T) {
	ha, hb := newHook(t, nil), newHook(t, nil)
	const isnA, isnB = 1000, 9000
	through(t, ha, hb, seg(t, addrA, addrB, isnA, 0, packet.SYN, linuxSYNOpts(), nil))
	through(t, hb, ha, seg(t, addrB, addrA, isnB, isnA+1, packet.SYN|packet.ACK, linuxSYNOpts(), nil))
	// A's ACK with 45 02 leaves A's hook and is lost on the way.
	ha.Process(seg(t, addrA, addrB, isnA+1, isnB+1, packet.ACK, nil, nil), Outbound, t0)
	// B's bare ACK of A's SYN reaches A.
	_, _, vIn := through(t, hb, ha, seg(t, addrB, addrA, isnB+1, isnA+1, packet.ACK, nil, nil))
	if vIn.Done {
		t.Fatal("active side done after a bare ACK of its SYN")
	}
	// A's Init1 must still carry 45 02, and B must end enabled.
	init1, _, vB := through(t, ha, hb, seg(t, addrA, addrB, isnA+1, isnB+1, packet.ACK|packet.PSH, nil, []byte("init1")))
	pk, _ := packet.Parse(init1)
	if o, _ := eno.ScanOptions(pk.TCP().Options()); !bytes.Equal(o.ENO, []byte{69, 2}) {
		t.Fatalf("A's first data after the bare ACK: ENO option %x, want 45 02", o.ENO)
	}
	if !vB.Done {
		t.Fatal("passive side not done after A's data with 45 02")
	}
	_, _, vIn = through(t, hb, ha, seg(t, addrB, addrA, isnB+1, isnA+6, packet.ACK|packet.PSH, nil, []byte("init2")))
	if !vIn.Done {
		t.Fatal("active side not done after B acknowledged its data")
	}
	oa, ob := outcome(t, ha, addrA, addrB), outcome(t, hb, addrB, addrA)
	if !oa.Enabled || !ob.Enabled {
		t.Fatalf("outcomes: A %+v, B %+v; want both enabled", oa, ob)
	}
	if ha.Counters().EarlyPeerACK != 1 {
		t.Fatalf("EarlyPeerACK = %d, want 1", ha.Counters().EarlyPeerACK)
	}
}

package divert

import (
	"bytes"
	"net/netip"
	"testing"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/packet"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

// open runs the three-way handshake of a connection from A's port sport
// to B through both engines and returns both engines' view of it. It
// also reports whether A's SYN reached B with an ENO option and B's
// SYN-ACK reached A with one.
func (r *rig) open(sport uint16) (ia, ib ConnInfo, synENO, synAckENO bool) {
	t := r.t
	t.Helper()
	a := netip.AddrPortFrom(addrA.Addr(), sport)
	isnA, isnB := uint32(sport)*1000, uint32(sport)*3000
	toB, _ := r.send(true, seg(t, a, addrB, isnA, 0, packet.SYN, synOpts(), nil))
	if len(toB) != 1 {
		t.Fatalf("SYN: %d packets reach B", len(toB))
	}
	_, tcp := tcpOf(t, toB[0])
	_, synENO = tcp.Options().Find(eno.OptionKind)
	toA, _ := r.send(false, seg(t, addrB, a, isnB, isnA+1, packet.SYN|packet.ACK, synOpts(), nil))
	if len(toA) != 1 {
		t.Fatalf("SYN-ACK: %d packets reach A", len(toA))
	}
	_, tcp = tcpOf(t, toA[0])
	_, synAckENO = tcp.Options().Find(eno.OptionKind)
	r.send(true, seg(t, a, addrB, isnA+1, isnB+1, packet.ACK, nil, nil))
	ia, _ = r.engA.Lookup(a, addrB)
	ib, _ = r.engB.Lookup(addrB, a)
	return ia, ib, synENO, synAckENO
}

// exchange sends msg from A to B on an open connection (after open with
// the same sport, nothing sent yet) and returns what B's stack gets.
func (r *rig) exchange(sport uint16, msg []byte) []byte {
	t := r.t
	t.Helper()
	a := netip.AddrPortFrom(addrA.Addr(), sport)
	isnA, isnB := uint32(sport)*1000, uint32(sport)*3000
	toB, _ := r.send(true, seg(t, a, addrB, isnA+1, isnB+1, packet.ACK|packet.PSH, nil, msg))
	var got []byte
	for _, b := range toB {
		p, _ := tcpOf(t, b)
		got = append(got, p.Payload()...)
	}
	return got
}

func mustSetPolicy(t *testing.T, e *Engine, p core.Policy) {
	t.Helper()
	if err := e.SetPolicy(p); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyDisabledActive(t *testing.T) {
	var events []Event
	r := newRig(t, Config{OnEvent: func(ev Event) { events = append(events, ev) }}, Config{})
	mustSetPolicy(t, r.engA, core.Policy{Enabled: false})
	ia, ib, synENO, _ := r.open(41000)
	if synENO {
		t.Fatal("a disabled engine sent ENO in a SYN")
	}
	if ia.State != "plain" || ia.PlainReason != eno.ConfigOff {
		t.Fatalf("A: state %s reason %v, want plain config-off", ia.State, ia.PlainReason)
	}
	if ib.State != "plain" || ib.PlainReason != eno.NoENOInSYN {
		t.Fatalf("B: state %s reason %v", ib.State, ib.PlainReason)
	}
	c := r.engA.Counters()
	if c.ConnsDisabled != 1 || c.ConnsPlain != 1 || c.PlainReasons[eno.ConfigOff] != 1 || c.ConnsOffered != 0 {
		t.Fatalf("A counters: disabled %d plain %d config-off %d offered %d", c.ConnsDisabled, c.ConnsPlain, c.PlainReasons[eno.ConfigOff], c.ConnsOffered)
	}
	if len(events) == 0 || events[0].Kind != EventPlain {
		t.Fatalf("events %v: want EventPlain first, so the backend stops capturing", events)
	}
	// Plain means untouched: the data reaches B as sent.
	if got := r.exchange(41000, []byte("plain text")); !bytes.Equal(got, []byte("plain text")) {
		t.Fatalf("B got %q", got)
	}
}

func TestPolicyDisabledPassive(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	mustSetPolicy(t, r.engB, core.Policy{Enabled: false})
	ia, ib, synENO, synAckENO := r.open(41001)
	if !synENO {
		t.Fatal("A's SYN lost its ENO option")
	}
	if synAckENO {
		t.Fatal("a disabled engine answered ENO in a SYN-ACK")
	}
	if ib.State != "plain" || ib.PlainReason != eno.ConfigOff {
		t.Fatalf("B: state %s reason %v", ib.State, ib.PlainReason)
	}
	if ia.State != "plain" || ia.PlainReason != eno.NoENOInSYNACK {
		t.Fatalf("A: state %s reason %v", ia.State, ia.PlainReason)
	}
	if c := r.engB.Counters(); c.ConnsDisabled != 1 || c.ConnsOffered != 0 || c.MSSClamped != 0 {
		t.Fatalf("B counters: disabled %d offered %d clamped %d", c.ConnsDisabled, c.ConnsOffered, c.MSSClamped)
	}
}

// Turning the policy off leaves encrypted connections encrypted; turning
// it on again applies to new connections.
func TestPolicyDisableKeepsEncrypted(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	ia, ib, _, _ := r.open(41002)
	if ia.State != "encrypted" || ib.State != "encrypted" {
		t.Fatalf("before: %s / %s", ia.State, ib.State)
	}
	mustSetPolicy(t, r.engA, core.Policy{})
	mustSetPolicy(t, r.engB, core.Policy{})
	msg := []byte("still SECRET after disable")
	if got := r.exchange(41002, msg); !bytes.Equal(got, msg) {
		t.Fatalf("B got %q", got)
	}
	if ia, _ := r.engA.Lookup(netip.AddrPortFrom(addrA.Addr(), 41002), addrB); ia.State != "encrypted" {
		t.Fatalf("old connection %s after disable", ia.State)
	}
	ia, ib, synENO, synAckENO := r.open(41003)
	if synENO || synAckENO || ia.State != "plain" || ib.State != "plain" {
		t.Fatalf("new connection while disabled: ENO %v/%v, %s/%s", synENO, synAckENO, ia.State, ib.State)
	}
	mustSetPolicy(t, r.engA, core.DefaultPolicy())
	mustSetPolicy(t, r.engB, core.DefaultPolicy())
	if ia, ib, _, _ := r.open(41004); ia.State != "encrypted" || ib.State != "encrypted" {
		t.Fatalf("after enabling again: %s / %s", ia.State, ib.State)
	}
	if a, b := r.engA.Counters().ConnsDisabled, r.engB.Counters().ConnsDisabled; a != 1 || b != 1 {
		t.Fatalf("disabled counters %d/%d", a, b)
	}
}

func TestPolicyExclusions(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	ia, _, _, _ := r.open(41010)
	if ia.State != "encrypted" {
		t.Fatalf("before: %s", ia.State)
	}
	// B's port 80, then B's address, excluded at A only.
	for i, p := range []core.Policy{
		{Enabled: true, ExcludePorts: []uint16{addrB.Port()}},
		{Enabled: true, ExcludeAddrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/30")}},
	} {
		mustSetPolicy(t, r.engA, p)
		sport := uint16(41011 + i)
		ia, ib, synENO, _ := r.open(sport)
		if synENO || ia.State != "plain" || ia.PlainReason != eno.ConfigOff || ib.State != "plain" {
			t.Fatalf("policy %d: ENO %v, A %s (%v), B %s", i, synENO, ia.State, ia.PlainReason, ib.State)
		}
	}
	if c := r.engA.Counters(); c.ConnsExcluded != 2 || c.ConnsDisabled != 0 {
		t.Fatalf("excluded %d disabled %d", c.ConnsExcluded, c.ConnsDisabled)
	}
	// The connection from before the exclusions is still encrypted.
	msg := []byte("old SECRET connection")
	if got := r.exchange(41010, msg); !bytes.Equal(got, msg) {
		t.Fatalf("B got %q", got)
	}
	// Other ports still negotiate.
	mustSetPolicy(t, r.engA, core.Policy{Enabled: true, ExcludePorts: []uint16{443}})
	if ia, _, _, _ := r.open(41013); ia.State != "encrypted" {
		t.Fatalf("unexcluded port: %s", ia.State)
	}
}

func TestPolicyLoopbackAlwaysExcluded(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddrPort("127.0.0.1:80")
	r := &rig{t: t, now: t0}
	out, _ := r.run(e, Outbound, seg(t, netip.MustParseAddrPort("127.0.0.1:40000"), lo, 1, 0, packet.SYN, synOpts(), nil))
	_, tcp := tcpOf(t, out[0])
	if _, ok := tcp.Options().Find(eno.OptionKind); ok {
		t.Fatal("ENO offered on loopback")
	}
	if c := e.Counters(); c.ConnsExcluded != 1 {
		t.Fatalf("excluded %d", c.ConnsExcluded)
	}
}

// TEP and AEAD changes apply to new connections; old ones keep theirs.
func TestPolicyTEPsAndAEADs(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	ia, _, _, _ := r.open(41020)
	if ia.TEP != eno.TEPTcpcryptCurve25519 || ia.AEAD != tcpcrypt.AES128GCM {
		t.Fatalf("default: TEP %v AEAD %v", ia.TEP, ia.AEAD)
	}
	mustSetPolicy(t, r.engA, core.Policy{Enabled: true, TEPs: []eno.TEP{eno.TEPTcpcryptP256}, AEADs: []tcpcrypt.AEADID{tcpcrypt.ChaCha20Poly1305}})
	ia2, ib2, _, _ := r.open(41021)
	if ia2.State != "encrypted" || ia2.TEP != eno.TEPTcpcryptP256 || ib2.TEP != eno.TEPTcpcryptP256 {
		t.Fatalf("after: %s TEP %v/%v", ia2.State, ia2.TEP, ib2.TEP)
	}
	if ia2.AEAD != tcpcrypt.ChaCha20Poly1305 || ib2.AEAD != tcpcrypt.ChaCha20Poly1305 {
		t.Fatalf("after: AEAD %v/%v", ia2.AEAD, ib2.AEAD)
	}
	if old, _ := r.engA.Lookup(netip.AddrPortFrom(addrA.Addr(), 41020), addrB); old.TEP != eno.TEPTcpcryptCurve25519 || old.AEAD != tcpcrypt.AES128GCM {
		t.Fatalf("old connection changed: %v %v", old.TEP, old.AEAD)
	}
	// No TEP in common: plain.
	mustSetPolicy(t, r.engB, core.Policy{Enabled: true, TEPs: []eno.TEP{eno.TEPTcpcryptCurve448}})
	if ia3, ib3, _, _ := r.open(41022); ia3.State != "plain" || ib3.PlainReason != eno.NoCommonTEP {
		t.Fatalf("no common TEP: %s / %v", ia3.State, ib3.PlainReason)
	}
}

func TestPolicyResumption(t *testing.T) {
	cache := func() *tcpcrypt.Cache { return tcpcrypt.NewCache(8) }
	r := newRig(t, Config{Cache: cache()}, Config{Cache: cache()})
	if ia, _, _, _ := r.open(41030); ia.State != "encrypted" || ia.Resumed {
		t.Fatalf("first: %s resumed %v", ia.State, ia.Resumed)
	}
	mustSetPolicy(t, r.engA, core.Policy{Enabled: true, Resumption: false})
	if ia, _, _, _ := r.open(41031); ia.State != "encrypted" || ia.Resumed {
		t.Fatalf("resumption off: %s resumed %v", ia.State, ia.Resumed)
	}
	mustSetPolicy(t, r.engA, core.Policy{Enabled: true, Resumption: true})
	if ia, ib, _, _ := r.open(41032); ia.State != "encrypted" || !ia.Resumed || !ib.Resumed {
		t.Fatalf("resumption on again: %s resumed %v/%v", ia.State, ia.Resumed, ib.Resumed)
	}
	if c := r.engA.Counters(); c.KeyAgreements != 2 || c.ConnsResumed != 1 {
		t.Fatalf("key agreements %d resumed %d", c.KeyAgreements, c.ConnsResumed)
	}
}

// RFC 8547 §4.2: in mandatory application-aware mode a host sends a = 1
// and disables ENO unless the peer sent a = 1 too.
func TestPolicyAAMandatory(t *testing.T) {
	aa := core.Policy{Enabled: true, AAMandatory: true}
	t.Run("peer-not-aware", func(t *testing.T) {
		r := newRig(t, Config{}, Config{})
		mustSetPolicy(t, r.engA, aa)
		ia, ib, synENO, _ := r.open(41040)
		if !synENO {
			t.Fatal("no ENO in the SYN")
		}
		if ia.State != "plain" || ia.PlainReason != eno.AAMandatoryPeerNotAware {
			t.Fatalf("A: %s %v", ia.State, ia.PlainReason)
		}
		if ib.State == "encrypted" {
			t.Fatal("B encrypted a connection A refused")
		}
	})
	t.Run("passive-peer-not-aware", func(t *testing.T) {
		r := newRig(t, Config{}, Config{})
		mustSetPolicy(t, r.engB, aa)
		ia, ib, _, _ := r.open(41041)
		if ib.State != "plain" || ib.PlainReason != eno.AAMandatoryPeerNotAware || ia.State == "encrypted" {
			t.Fatalf("A %s, B %s %v", ia.State, ib.State, ib.PlainReason)
		}
	})
	t.Run("both-aware", func(t *testing.T) {
		r := newRig(t, Config{}, Config{})
		mustSetPolicy(t, r.engA, aa)
		mustSetPolicy(t, r.engB, aa)
		ia, ib, _, _ := r.open(41042)
		if ia.State != "encrypted" || ib.State != "encrypted" {
			t.Fatalf("%s / %s", ia.State, ib.State)
		}
		if ia.SelfGOpt&eno.GlobalA == 0 || ia.PeerGOpt&eno.GlobalA == 0 || ib.PeerGOpt&eno.GlobalA == 0 {
			t.Fatalf("gopts A self %#x peer %#x, B peer %#x", ia.SelfGOpt, ia.PeerGOpt, ib.PeerGOpt)
		}
	})
}

func TestPolicyInvalid(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []core.Policy{
		{Enabled: true, TEPs: []eno.TEP{0x7f}},
		{Enabled: true, AEADs: []tcpcrypt.AEADID{0x9999}},
		{Enabled: true, ExcludeAddrs: []netip.Prefix{{}}},
	} {
		if err := e.SetPolicy(p); err == nil {
			t.Fatalf("policy %+v accepted", p)
		}
	}
	if !e.Policy().Enabled {
		t.Fatal("a rejected policy replaced the current one")
	}
}

// A new connection on the 4-tuple of one that ended (TIME_WAIT reuse by
// the stack) is negotiated afresh, not taken for the old one.
func TestFourTupleReuse(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	mustSetPolicy(t, r.engA, core.Policy{})
	const sport = 41050
	if ia, _, _, _ := r.open(sport); ia.State != "plain" {
		t.Fatalf("first: %s", ia.State)
	}
	a := netip.AddrPortFrom(addrA.Addr(), sport)
	// A retransmitted SYN is the same connection.
	r.send(true, seg(t, a, addrB, uint32(sport)*1000, 0, packet.SYN, synOpts(), nil))
	if c := r.engA.Counters(); c.ConnsDisabled != 1 || c.ConnsReused != 0 {
		t.Fatalf("retransmitted SYN: disabled %d reused %d", c.ConnsDisabled, c.ConnsReused)
	}
	mustSetPolicy(t, r.engA, core.DefaultPolicy())
	// A new SYN (another ISN) on the same ports: encrypted this time.
	r.send(true, seg(t, a, addrB, 777, 0, packet.SYN, synOpts(), nil))
	r.send(false, seg(t, addrB, a, 999, 778, packet.SYN|packet.ACK, synOpts(), nil))
	r.send(true, seg(t, a, addrB, 778, 1000, packet.ACK, nil, nil))
	ia, _ := r.engA.Lookup(a, addrB)
	ib, _ := r.engB.Lookup(addrB, a)
	if ia.State != "encrypted" || ib.State != "encrypted" {
		t.Fatalf("reused 4-tuple: %s / %s", ia.State, ib.State)
	}
	if r.engA.Counters().ConnsReused != 1 || r.engB.Counters().ConnsReused != 1 {
		t.Fatalf("reused counters %d/%d", r.engA.Counters().ConnsReused, r.engB.Counters().ConnsReused)
	}
	// An encrypted connection still open is not replaced by a SYN.
	r.send(true, seg(t, a, addrB, 5555, 0, packet.SYN, synOpts(), nil))
	if ia, _ := r.engA.Lookup(a, addrB); ia.State != "encrypted" || r.engA.Counters().ConnsReused != 1 {
		t.Fatalf("open connection replaced: %s", ia.State)
	}
}

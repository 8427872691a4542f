package tests

// Two in-memory hosts run TCP-ENO and tcpcrypt from real packets: the
// SYN, SYN-ACK and ACK are built and parsed with core/packet (ENO is
// inserted into a typical Linux SYN's option space), core/eno negotiates,
// and core/tcpcrypt runs Init1/Init2 in the first data segments, then
// frames in both directions, a rekey, a clean FINp close, and a resumed
// second connection that skips the key agreement.

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/packet"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

// host is one end: its long-lived state (address, TEP and AEAD
// preferences, resumption cache) and the state of its current connection.
type host struct {
	t        *testing.T
	addr     netip.AddrPort
	teps     []eno.TEP
	tc       *tcpcrypt.Config
	cache    *tcpcrypt.Cache
	noResume bool

	// per connection
	peer          netip.AddrPort
	active        bool
	tracker       eno.Tracker
	proposed      *tcpcrypt.ResumeSecret // secret offered in our SYN
	accepted      *tcpcrypt.ResumeSecret // secret we agreed to resume (passive)
	nonce         []byte                 // our resumption nonce
	hs            *tcpcrypt.Handshake
	sess          *tcpcrypt.Session
	seq, ack      uint32
	sendOff       uint64 // offset of the next byte of our data stream
	recvOff       uint64
	keyAgreements int // fresh key exchanges run, for the resumption check
}

func newHost(t *testing.T, addr string, teps []eno.TEP, aeads []tcpcrypt.AEADID) *host {
	return &host{t: t, addr: netip.MustParseAddrPort(addr), teps: teps,
		tc: &tcpcrypt.Config{AEADs: aeads}, cache: tcpcrypt.NewCache(16)}
}

// enoConfig builds the per-connection ENO configuration, wiring
// tcpcrypt's resumption into the offer, the validity check and the
// passive opener's choice.
//
// An active opener with a cached secret for the peer offers only that
// TEP, with the resumption suboption: with an 8-byte nonce the ENO option
// is 20 bytes, exactly what a Linux SYN (MSS, SACK-permitted, timestamps,
// window scale: 20 bytes) leaves of the 40-byte option space. The
// resumption offer also stands for a fresh offer of the same TEP.
func (h *host) enoConfig() *eno.Config {
	teps := h.teps
	if h.active && !h.noResume {
		for i := len(h.teps) - 1; i >= 0; i-- { // most preferred first
			if rs, ok := h.cache.TakeForPeer(h.peer.Addr(), tcpcrypt.TEP(h.teps[i])); ok {
				h.proposed = &rs
				teps = []eno.TEP{h.teps[i]}
				break
			}
		}
	}
	return &eno.Config{
		TEPs: teps,
		Offer: func(t eno.TEP) []byte {
			if h.proposed == nil || tcpcrypt.TEP(t) != h.proposed.TEP {
				return nil
			}
			sub, err := tcpcrypt.AppendResumeSuboption(nil, h.proposed, h.nonce)
			if err != nil {
				h.t.Fatal(err)
			}
			return sub[1:]
		},
		Accept: func(c eno.Candidate) bool {
			if !tcpcrypt.SuboptionAcceptable(c.A.Data) || !tcpcrypt.SuboptionAcceptable(c.B.Data) {
				return false
			}
			// RFC 8548 §3.5: an active opener ignores a resumption reply
			// whose half does not match the secret it proposed.
			if h.active && c.B.V() {
				half, _, ok, _ := tcpcrypt.ParseResumeData(c.B.Data)
				return ok && h.proposed != nil && tcpcrypt.HalvesMatch(half, h.proposed.PeerHalf())
			}
			return true
		},
		Choose: func(offer eno.Suboption, count int) (eno.Suboption, bool) {
			t := offer.TEP()
			if !tcpcrypt.TEP(t).Supported() {
				return eno.Suboption{}, false
			}
			if offer.V() && !h.noResume {
				if half, _, ok, _ := tcpcrypt.ParseResumeData(offer.Data); ok {
					if rs, ok := h.cache.TakeByPeerHalf(tcpcrypt.TEP(t), half); ok {
						h.accepted = &rs
						sub, _ := tcpcrypt.AppendResumeSuboption(nil, &rs, h.nonce)
						return eno.Suboption{Byte: sub[0], Data: sub[1:]}, true
					}
				}
			}
			return eno.Suboption{Byte: byte(t)}, true // fresh key exchange
		},
	}
}

func (h *host) reset(peer netip.AddrPort, active bool, isn uint32) {
	h.peer, h.active = peer, active
	h.proposed, h.accepted, h.hs, h.sess = nil, nil, nil, nil
	h.nonce = []byte(fmt.Sprintf("n%s%d", h.addr.Addr(), isn%1000))[:8]
	h.tracker = eno.NewTracker(h.enoConfig())
	h.seq = isn
	h.sendOff, h.recvOff = 0, 0
}

// linuxSYNOptions are the 20 option bytes a Linux SYN carries.
func linuxSYNOptions() []byte {
	o := packet.AppendMSS(nil, 1460)
	o = packet.AppendSACKPermitted(o)
	o = packet.AppendTimestamps(o, 12345, 0)
	o = packet.AppendNOP(o)
	return packet.AppendWindowScale(o, 7)
}

// segment builds a packet from h to its peer, letting the tracker add
// ENO to the options.
func (h *host) segment(flags packet.Flags, opts, payload []byte) []byte {
	h.t.Helper()
	b, err := packet.AppendTCP(make([]byte, 0, 1600), packet.Segment{
		Src: h.addr, Dst: h.peer, Seq: h.seq, Ack: h.ack, Flags: flags, Window: 65535,
		Options: opts, Payload: payload,
	})
	if err != nil {
		h.t.Fatalf("build: %v", err)
	}
	p, err := packet.Parse(b)
	if err != nil {
		h.t.Fatalf("parse own packet: %v", err)
	}
	enoOpt, _ := h.tracker.Send(nil, eno.Segment{SYN: flags&packet.SYN != 0, ACK: flags&packet.ACK != 0, DataLen: len(payload)})
	if len(enoOpt) > 0 {
		if err := p.InsertOption(eno.OptionKind, enoOpt[2:]); err != nil {
			h.t.Fatalf("insert ENO %x: %v", enoOpt, err)
		}
	}
	h.seq += uint32(len(payload))
	if flags&(packet.SYN|packet.FIN) != 0 {
		h.seq++
	}
	return p.Bytes()
}

// receive parses a packet from the peer and feeds the tracker. It
// returns the payload.
func (h *host) receive(b []byte) (packet.Packet, eno.Verdict) {
	h.t.Helper()
	p, err := packet.Parse(b)
	if err != nil {
		h.t.Fatalf("parse: %v", err)
	}
	if !p.VerifyTCPChecksum() {
		h.t.Fatal("bad TCP checksum on the wire")
	}
	tcp := p.TCP()
	if p.Dst() != h.addr || p.Src() != h.peer {
		h.t.Fatalf("packet %v -> %v is not for %v", p.Src(), p.Dst(), h.addr)
	}
	flags := tcp.Flags()
	v := h.tracker.Recv(eno.Segment{SYN: flags&packet.SYN != 0, ACK: flags&packet.ACK != 0, Options: tcp.Options(), DataLen: p.PayloadLen()})
	h.ack = tcp.Seq() + uint32(p.PayloadLen())
	if flags&(packet.SYN|packet.FIN) != 0 {
		h.ack++
	}
	return p, v
}

// connect runs the three-way handshake from a to b and reports whether
// ENO succeeded on both.
func connect(t *testing.T, a, b *host, isnA, isnB uint32) bool {
	t.Helper()
	a.reset(b.addr, true, isnA)
	b.reset(a.addr, false, isnB)
	syn := a.segment(packet.SYN, linuxSYNOptions(), nil)
	b.receive(syn)
	synAck := b.segment(packet.SYN|packet.ACK, linuxSYNOptions(), nil)
	a.receive(synAck)
	ack := a.segment(packet.ACK, nil, nil)
	_, v := b.receive(ack)
	okA := a.tracker.State() == eno.StateEnabled
	okB := v.Event == eno.EventEnabled && b.tracker.State() == eno.StateEnabled
	if okA != okB {
		t.Fatalf("ENO outcome differs: A enabled=%v (%v), B enabled=%v (%v)", okA, a.tracker.Reason(), okB, b.tracker.Reason())
	}
	return okA
}

// startTEP sets up the tcpcrypt session of one host after ENO success:
// resumption from the cached secret, or the first step of a fresh key
// exchange (A's Init1).
func (h *host) startTEP() (resumed bool) {
	h.t.Helper()
	res, err := h.tracker.Result()
	if err != nil {
		h.t.Fatalf("result: %v", err)
	}
	tep := tcpcrypt.TEP(res.TEP())
	if res.NegTEP()&eno.VBit != 0 {
		rs := h.proposed
		if rs == nil {
			rs = h.accepted
		}
		if rs == nil {
			h.t.Fatal("resumption negotiated without a cached secret")
		}
		// Nonces come from the suboption data, ordered by original role.
		_, nA, _, _ := tcpcrypt.ParseResumeData(res.A().Data)
		_, nB, _, _ := tcpcrypt.ParseResumeData(res.B().Data)
		origAIsCurrentA := rs.OrigA == (res.Role() == eno.RoleA)
		if !origAIsCurrentA {
			nA, nB = nB, nA
		}
		if h.sess, err = tcpcrypt.Resume(rs, nA, nB); err != nil {
			h.t.Fatalf("resume: %v", err)
		}
		return true
	}
	// A proposal the peer declined is spent anyway (RFC 8548 §3.5).
	if h.proposed != nil {
		h.proposed.Zero()
	}
	h.keyAgreements++
	if res.Role() == eno.RoleA {
		h.hs, err = tcpcrypt.NewInitiator(h.tc, tep, res.Transcript(), nil)
	} else {
		h.hs, err = tcpcrypt.NewResponder(h.tc, tep, res.Transcript(), nil)
	}
	if err != nil {
		h.t.Fatalf("handshake: %v", err)
	}
	return false
}

// sendData wraps an already framed or Init payload into a PSH segment.
func (h *host) sendData(payload []byte, fin bool) []byte {
	flags := packet.ACK | packet.PSH
	if fin {
		flags |= packet.FIN
	}
	h.sendOff += uint64(len(payload))
	return h.segment(flags, nil, payload)
}

func (h *host) sendFrame(data string, flags byte) []byte {
	h.t.Helper()
	wire, err := h.sess.AppendFrame(nil, h.sendOff, flags, nil, []byte(data))
	if err != nil {
		h.t.Fatalf("seal: %v", err)
	}
	return h.sendData(wire, flags&tcpcrypt.FlagFIN != 0)
}

func (h *host) recvFrame(b []byte) tcpcrypt.Frame {
	h.t.Helper()
	p, _ := h.receive(b)
	f, n, err := h.sess.OpenFrame(bytes.Clone(p.Payload()), h.recvOff)
	if err != nil {
		h.t.Fatalf("open frame at %d: %v", h.recvOff, err)
	}
	if n != p.PayloadLen() {
		h.t.Fatalf("segment holds %d bytes, frame %d", p.PayloadLen(), n)
	}
	h.recvOff += uint64(n)
	return f
}

// session runs one connection from ENO to FINp and returns whether it
// was resumed.
func session(t *testing.T, a, b *host, isn uint32) (resumed bool) {
	t.Helper()
	if !connect(t, a, b, isn, isn+7777) {
		t.Fatalf("ENO failed: %v / %v", a.tracker.Reason(), b.tracker.Reason())
	}
	rA, rB := a.startTEP(), b.startTEP()
	if rA != rB {
		t.Fatalf("one host resumed, the other did not")
	}
	if !rA {
		// A's stream starts with Init1, B answers Init2 (RFC 8548 §3.3).
		seg := a.sendData(a.hs.Init1(), false)
		p, _ := b.receive(seg)
		init2, sb, err := b.hs.ReadInit1(p.Payload())
		if err != nil {
			t.Fatalf("B reads Init1: %v", err)
		}
		b.sess, b.recvOff = sb, uint64(p.PayloadLen())
		p, _ = a.receive(b.sendData(init2, false))
		if a.sess, err = a.hs.ReadInit2(p.Payload()); err != nil {
			t.Fatalf("A reads Init2: %v", err)
		}
		a.recvOff = uint64(p.PayloadLen())
	}
	// The session ID is what the applications will see: both equal, and
	// the tracker's API returns it once tcpcrypt sets it.
	for _, h := range []*host{a, b} {
		id := h.sess.ID()
		if err := h.tracker.SetSessionID(id[:]); err != nil {
			t.Fatalf("SetSessionID: %v", err)
		}
	}
	idA, _ := a.tracker.SessionID(nil)
	idB, _ := b.tracker.SessionID(nil)
	if !bytes.Equal(idA, idB) || len(idA) != tcpcrypt.SessionIDLen {
		t.Fatalf("session IDs differ: %x vs %x", idA, idB)
	}
	selfA, _ := a.tracker.SelfName(nil)
	peerB, _ := b.tracker.PeerName(nil)
	if !bytes.Equal(selfA, peerB) {
		t.Fatal("A's SELF_NAME is not B's PEER_NAME")
	}

	if f := b.recvFrame(a.sendFrame("GET / HTTP/1.1", 0)); string(f.Data) != "GET / HTTP/1.1" {
		t.Fatalf("B got %q", f.Data)
	}
	if f := a.recvFrame(b.sendFrame("HTTP/1.1 200 OK", 0)); string(f.Data) != "HTTP/1.1 200 OK" {
		t.Fatalf("A got %q", f.Data)
	}
	// B rekeys; A must answer with a rekey frame at once.
	if err := b.sess.Rekey(); err != nil {
		t.Fatal(err)
	}
	if f := a.recvFrame(b.sendFrame("after rekey", 0)); !f.Rekey() || string(f.Data) != "after rekey" {
		t.Fatalf("rekeyed frame: rekey=%v data %q", f.Rekey(), f.Data)
	}
	if !a.sess.RekeyReplyDue() {
		t.Fatal("A owes no rekey reply")
	}
	if f := b.recvFrame(a.sendFrame("", 0)); !f.Rekey() {
		t.Fatal("A's reply is not a rekey frame")
	}
	// Clean close: FINp on the last frame of each side.
	if f := b.recvFrame(a.sendFrame("bye", tcpcrypt.FlagFIN)); !f.FIN() {
		t.Fatal("no FINp")
	}
	if f := a.recvFrame(b.sendFrame("", tcpcrypt.FlagFIN)); !f.FIN() {
		t.Fatal("no FINp")
	}
	for _, h := range []*host{a, b} {
		if rs, ok := h.sess.TakeResumeSecret(); ok {
			h.cache.Put(h.peer.Addr(), &rs)
		}
		h.sess.Close()
	}
	return rA
}

var (
	allTEPs  = []eno.TEP{eno.TEPTcpcryptCurve25519, eno.TEPTcpcryptCurve448, eno.TEPTcpcryptP256, eno.TEPTcpcryptP521}
	allAEADs = []tcpcrypt.AEADID{tcpcrypt.AES128GCM, tcpcrypt.AES256GCM, tcpcrypt.ChaCha20Poly1305}
)

func TestPeersEveryTEPAndAEAD(t *testing.T) {
	for _, tep := range allTEPs {
		for _, aead := range allAEADs {
			for _, v6 := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/%v/ipv6=%v", tep, aead, v6), func(t *testing.T) {
					addrA, addrB := "192.0.2.1:40000", "192.0.2.2:443"
					if v6 {
						addrA, addrB = "[2001:db8::1]:40000", "[2001:db8::2]:443"
					}
					// A prefers nothing in particular and offers all
					// TEPs; B supports only the one under test.
					a := newHost(t, addrA, allTEPs, nil)
					b := newHost(t, addrB, []eno.TEP{tep}, []tcpcrypt.AEADID{aead})
					if session(t, a, b, 1000) {
						t.Fatal("first connection claims resumption")
					}
					if got := a.sess.AEAD(); got != aead {
						t.Fatalf("negotiated %v, want %v", got, aead)
					}
					// Second connection between the same hosts resumes
					// (A proposes), third one too, from B's side (the
					// original B opens): no key agreement either time.
					if !session(t, a, b, 2000) {
						t.Fatal("second connection did not resume")
					}
					if !session(t, b, a, 3000) {
						t.Fatal("third connection (opened by the original B) did not resume")
					}
					if a.keyAgreements != 1 || b.keyAgreements != 1 {
						t.Fatalf("key agreements: A %d, B %d; want 1 each", a.keyAgreements, b.keyAgreements)
					}
				})
			}
		}
	}
}

func TestPeersResumptionDisabled(t *testing.T) {
	a := newHost(t, "192.0.2.1:40000", allTEPs, nil)
	b := newHost(t, "192.0.2.2:443", allTEPs, nil)
	session(t, a, b, 1)
	a.noResume = true // the initiator wants no linkability
	if session(t, a, b, 2) {
		t.Fatal("resumed although the initiator switched resumption off")
	}
	// B's cached secret was never named, and A's was not offered.
	b.noResume = true
	if session(t, b, a, 3) {
		t.Fatal("resumed although both switched resumption off")
	}
}

func TestPeersForgottenSecretFallsBackToFresh(t *testing.T) {
	a := newHost(t, "192.0.2.1:40000", allTEPs, nil)
	b := newHost(t, "192.0.2.2:443", allTEPs, nil)
	session(t, a, b, 1)
	b.cache.Flush() // e.g. B restarted
	if session(t, a, b, 2) {
		t.Fatal("resumed without B's secret")
	}
	if a.cache.Len() != 1 || b.cache.Len() != 1 {
		t.Fatalf("caches hold %d/%d secrets after a fresh session, want 1 each", a.cache.Len(), b.cache.Len())
	}
}

func TestPeersNoCommonTEPStaysPlain(t *testing.T) {
	a := newHost(t, "192.0.2.1:40000", []eno.TEP{eno.TEPTcpcryptP256}, nil)
	b := newHost(t, "192.0.2.2:443", []eno.TEP{eno.TEPTcpcryptCurve25519}, nil)
	if connect(t, a, b, 1, 2) {
		t.Fatal("ENO succeeded without a common TEP")
	}
	if a.tracker.Reason() != eno.NoENOInSYNACK && a.tracker.Reason() != eno.NoCommonTEP {
		t.Fatalf("A's reason: %v", a.tracker.Reason())
	}
	if _, err := a.tracker.SessionID(nil); !errors.Is(err, eno.ErrDisabled) {
		t.Fatalf("session ID of a plain connection: %v", err)
	}
}

func TestPeersStrippedSYNACKOption(t *testing.T) {
	a := newHost(t, "192.0.2.1:40000", allTEPs, nil)
	b := newHost(t, "192.0.2.2:443", allTEPs, nil)
	a.reset(b.addr, true, 1)
	b.reset(a.addr, false, 2)
	b.receive(a.segment(packet.SYN, linuxSYNOptions(), nil))
	synAck := b.segment(packet.SYN|packet.ACK, linuxSYNOptions(), nil)
	// A middlebox strips ENO from the SYN-ACK (RFC 8547 §6): A disables
	// ENO and its ACK carries none, which tells B.
	p, _ := packet.Parse(synAck)
	if err := p.RemoveOption(eno.OptionKind); err != nil {
		t.Fatal(err)
	}
	p.UpdateTCPChecksum()
	a.receive(p.Bytes())
	_, v := b.receive(a.segment(packet.ACK, nil, nil))
	if a.tracker.State() != eno.StateDisabled || v.Event != eno.EventDisabled {
		t.Fatalf("after a stripped SYN-ACK: A %v, B %v", a.tracker.State(), v.Event)
	}
}

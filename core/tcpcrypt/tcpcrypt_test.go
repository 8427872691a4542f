package tcpcrypt

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

var allTEPs = []TEP{TEPCurve25519, TEPCurve448, TEPP256, TEPP521}
var allAEADs = []AEADID{AES128GCM, AES256GCM, ChaCha20Poly1305}

var testTranscript = []byte{69, 3, 0x23, 69, 4, 0x01, 0x23}

// handshakePair runs a fresh key exchange in memory and returns A's and
// B's sessions plus the Init messages.
func handshakePair(t testing.TB, tep TEP, cfgA, cfgB *Config) (sa, sb *Session, init1, init2 []byte) {
	t.Helper()
	ha, err := NewInitiator(cfgA, tep, testTranscript, nil)
	if err != nil {
		t.Fatalf("NewInitiator(%v): %v", tep, err)
	}
	hb, err := NewResponder(cfgB, tep, testTranscript, nil)
	if err != nil {
		t.Fatalf("NewResponder(%v): %v", tep, err)
	}
	init1 = bytes.Clone(ha.Init1())
	init2, sb, err = hb.ReadInit1(init1)
	if err != nil {
		t.Fatalf("ReadInit1: %v", err)
	}
	sa, err = ha.ReadInit2(init2)
	if err != nil {
		t.Fatalf("ReadInit2: %v", err)
	}
	return sa, sb, init1, init2
}

func TestScheduleMatchesHKDF(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 50; i++ {
		var key Secret
		for j := range key {
			key[j] = byte(r.Uint32())
		}
		info := make([]byte, r.IntN(20))
		for j := range info {
			info[j] = byte(r.Uint32())
		}
		n := 1 + r.IntN(100)
		got := make([]byte, n)
		cprf(got, &key, info[:len(info)/2], info[len(info)/2:])
		want, err := hkdf.Expand(sha256.New, key[:], string(info), n)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("cprf != HKDF-Expand for n=%d", n)
		}
		salt, ikm := info, got
		prk := extract(salt, ikm[:n/2], ikm[n/2:])
		wantPRK, _ := hkdf.Extract(sha256.New, ikm, salt)
		if !bytes.Equal(prk[:], wantPRK) {
			t.Fatal("extract != HKDF-Extract")
		}
	}
}

func TestHandshakeEveryTEPAndAEAD(t *testing.T) {
	for _, tep := range allTEPs {
		for _, aead := range allAEADs {
			t.Run(fmt.Sprintf("%v/%v", tep, aead), func(t *testing.T) {
				cfg := &Config{AEADs: []AEADID{aead}}
				sa, sb, init1, init2 := handshakePair(t, tep, &Config{}, cfg)
				defer sa.Close()
				defer sb.Close()
				if sa.ID() != sb.ID() {
					t.Fatal("session IDs differ")
				}
				if sa.ID()[0] != byte(tep) {
					t.Fatalf("session ID starts with %#x, want TEP byte %#x", sa.ID()[0], tep)
				}
				if sa.AEAD() != aead || sb.AEAD() != aead {
					t.Fatalf("AEAD = %v/%v, want %v", sa.AEAD(), sb.AEAD(), aead)
				}
				wantInit2 := map[TEP]int{TEPCurve25519: 74, TEPCurve448: 98, TEPP256: 77, TEPP521: 111}[tep]
				if len(init2) != wantInit2 {
					t.Errorf("Init2 is %d bytes, RFC sizes give %d", len(init2), wantInit2)
				}
				wantInit1 := map[TEP]int{TEPCurve25519: 73, TEPCurve448: 97, TEPP256: 76, TEPP521: 110}[tep] + 2*len(DefaultAEADs)
				if len(init1) != wantInit1 {
					t.Errorf("Init1 is %d bytes, RFC sizes give %d", len(init1), wantInit1)
				}
				exchange(t, sa, sb, uint64(len(init1)), uint64(len(init2)))
			})
		}
	}
}

// exchange sends frames both ways, rekeys from each side, and checks the
// generations follow.
func exchange(t *testing.T, sa, sb *Session, offA, offB uint64) {
	t.Helper()
	send := func(from, to *Session, off *uint64, msg string, flags byte) {
		t.Helper()
		wire, err := from.AppendFrame(nil, *off, flags, nil, []byte(msg))
		if err != nil {
			t.Fatalf("seal: %v", err)
		}
		f, n, err := to.OpenFrame(wire, *off)
		if err != nil {
			t.Fatalf("open %q: %v", msg, err)
		}
		if n != len(wire) || string(f.Data) != msg || f.Flags != flags {
			t.Fatalf("opened %q flags %x, sent %q flags %x", f.Data, f.Flags, msg, flags)
		}
		*off += uint64(n)
	}
	send(sa, sb, &offA, "hello from A", 0)
	send(sb, sa, &offB, "hello from B", 0)
	if err := sa.Rekey(); err != nil {
		t.Fatal(err)
	}
	if err := sa.Rekey(); err == nil {
		t.Fatal("second concurrent rekey was accepted")
	}
	send(sa, sb, &offA, "first at gen 1", 0)
	if !sb.RekeyReplyDue() {
		t.Fatal("B owes no rekey reply after A's rekey")
	}
	if _, c := sb.SendKey(); c != ControlRekey {
		t.Fatal("B's next frame is not marked rekey")
	}
	send(sb, sa, &offB, "", 0) // B's rekey reply, empty as §3.8 allows
	if sa.RekeyReplyDue() {
		t.Fatal("A owes a reply to the answer of its own rekey")
	}
	la, ra := sa.Generations()
	lb, rb := sb.Generations()
	if la != 1 || ra != 1 || lb != 1 || rb != 1 {
		t.Fatalf("generations A %d/%d B %d/%d, want all 1", la, ra, lb, rb)
	}
	send(sb, sa, &offB, "bye", FlagFIN)
	send(sa, sb, &offA, "", FlagFIN)
}

func TestAEADChoice(t *testing.T) {
	sa, sb, _, _ := handshakePair(t, TEPCurve25519,
		&Config{AEADs: []AEADID{AES128GCM, AES256GCM, ChaCha20Poly1305}},
		&Config{AEADs: []AEADID{ChaCha20Poly1305, AES128GCM}})
	if sa.AEAD() != ChaCha20Poly1305 || sb.AEAD() != ChaCha20Poly1305 {
		t.Fatalf("B chose %v, want its first preference offered by A", sb.AEAD())
	}
}

func TestHandshakeRejects(t *testing.T) {
	ha, _ := NewInitiator(&Config{AEADs: []AEADID{AES256GCM}}, TEPCurve25519, testTranscript, nil)
	init1 := ha.Init1()
	hb := func(aeads ...AEADID) *Handshake {
		h, err := NewResponder(&Config{AEADs: aeads}, TEPCurve25519, testTranscript, nil)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	mut := func(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }
	cases := []struct {
		name string
		msg  []byte
		b    *Handshake
		want error
	}{
		{"no common AEAD", init1, hb(AES128GCM), ErrNoCommonAEAD},
		{"bad magic", mut(init1, func(b []byte) []byte { b[0] ^= 1; return b }), hb(AES256GCM), ErrBadMagic},
		{"truncated", init1[:len(init1)-1], hb(AES256GCM), ErrBadInitLength},
		{"only header", init1[:8], hb(AES256GCM), ErrBadInitLength},
		{"length too small", mut(init1, func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 10); return b }), hb(AES256GCM), ErrBadInitLength},
		{"length huge", mut(init1, func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 1<<30); return b }), hb(AES256GCM), ErrBadInitLength},
		{"nciphers zero", mut(init1, func(b []byte) []byte { b[8] = 0; return b }), hb(AES256GCM), ErrMalformedInit},
		{"nciphers overruns key", mut(init1, func(b []byte) []byte { b[8] = 30; return b }), hb(AES256GCM), ErrMalformedInit},
		{"zero public key", mut(init1, func(b []byte) []byte { clear(b[len(b)-32:]); return b }), hb(AES256GCM), ErrZeroSharedSecret},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, s, err := c.b.ReadInit1(c.msg)
			if !errors.Is(err, c.want) || s != nil {
				t.Fatalf("ReadInit1 = %v, want %v", err, c.want)
			}
		})
	}
	// Trailing "ignored" bytes are accepted (§4.1).
	long := append(bytes.Clone(init1), 1, 2, 3)
	binary.BigEndian.PutUint32(long[4:], uint32(len(long)))
	if _, _, err := hb(AES256GCM).ReadInit1(long); err != nil {
		t.Fatalf("Init1 with ignored tail: %v", err)
	}

	// A aborts on an Init2 whose AEAD it did not offer.
	hb2 := hb(AES256GCM)
	init2, _, err := hb2.ReadInit1(init1)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(init2)
	binary.BigEndian.PutUint16(bad[8:], uint16(AES128GCM))
	if _, err := ha.ReadInit2(bad); !errors.Is(err, ErrAEADNotOffered) {
		t.Fatalf("ReadInit2 with unoffered AEAD = %v", err)
	}
	// A failed Init2 ends the handshake: its key is erased.
	if _, err := ha.ReadInit2(init2); err == nil {
		t.Fatal("handshake usable after a failed ReadInit2")
	}
	ha, _ = NewInitiator(&Config{AEADs: []AEADID{AES256GCM}}, TEPCurve25519, testTranscript, nil)
	if _, err := ha.ReadInit2(init2[:20]); !errors.Is(err, ErrBadInitLength) {
		t.Fatalf("ReadInit2 truncated = %v", err)
	}
	if _, err := NewInitiator(nil, TEP(0x30), testTranscript, nil); !errors.Is(err, ErrUnsupportedTEP) {
		t.Fatalf("unknown TEP: %v", err)
	}
	if _, err := NewInitiator(&Config{AEADs: []AEADID{0x99}}, TEPCurve25519, testTranscript, nil); err == nil {
		t.Fatal("unsupported AEAD in config accepted")
	}
}

func TestInitLenIncremental(t *testing.T) {
	ha, _ := NewInitiator(nil, TEPCurve25519, testTranscript, nil)
	msg := ha.Init1()
	for i := 0; i < initHeaderLen; i++ {
		if _, err := InitLen(msg[:i], true); !errors.Is(err, ErrNeedMore) {
			t.Fatalf("InitLen of %d bytes = %v, want ErrNeedMore", i, err)
		}
	}
	if n, err := InitLen(msg, true); err != nil || n != len(msg) {
		t.Fatalf("InitLen = %d, %v", n, err)
	}
	if _, err := InitLen([]byte{0x15, 0x11}, true); !errors.Is(err, ErrBadMagic) {
		t.Fatalf("early bad magic: %v", err)
	}
	if _, err := InitLen(msg, false); !errors.Is(err, ErrBadMagic) {
		t.Fatalf("Init1 read as Init2: %v", err)
	}
}

func testKey(t testing.TB, aead AEADID) *TrafficKey {
	material := make([]byte, aead.TrafficKeyLen())
	for i := range material {
		material[i] = byte(i * 7)
	}
	k, err := NewTrafficKey(aead, 0, material)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestFrameIntegrity(t *testing.T) {
	for _, aead := range allAEADs {
		k := testKey(t, aead)
		urg := uint16(9)
		wire, err := k.AppendFrame(nil, 1000, 0, FlagFIN, &urg, []byte("secret data"))
		if err != nil {
			t.Fatal(err)
		}
		if len(wire) != FrameLen(11, true) {
			t.Fatalf("frame is %d bytes, want %d", len(wire), FrameLen(11, true))
		}
		f, n, err := k.OpenFrame(bytes.Clone(wire), 1000)
		if err != nil || n != len(wire) || string(f.Data) != "secret data" || !f.FIN() || f.Urgent != 9 || f.Flags&FlagURG == 0 {
			t.Fatalf("%v: open = %+v, %d, %v", aead, f, n, err)
		}
		for i := range wire {
			tampered := bytes.Clone(wire)
			tampered[i] ^= 0x40
			if _, _, err := k.OpenFrame(tampered, 1000); err == nil {
				t.Fatalf("%v: flipping byte %d went unnoticed", aead, i)
			}
		}
		if _, _, err := k.OpenFrame(bytes.Clone(wire), 1001); !errors.Is(err, ErrIntegrity) {
			t.Fatalf("%v: wrong offset: %v", aead, err)
		}
		for cut := 0; cut < len(wire); cut++ {
			if _, _, err := k.OpenFrame(bytes.Clone(wire[:cut]), 1000); !errors.Is(err, ErrNeedMore) {
				t.Fatalf("%v: %d of %d bytes: %v, want ErrNeedMore", aead, cut, len(wire), err)
			}
		}
		// Two frames in one buffer: the first opens, n points at the next.
		two, _ := k.AppendFrame(bytes.Clone(wire), 1000+uint64(len(wire)), 0, 0, nil, []byte("x"))
		_, n, err = k.OpenFrame(two, 1000)
		if err != nil || n != len(wire) {
			t.Fatalf("first of two frames: %d, %v", n, err)
		}
		if f, _, err := k.OpenFrame(two[n:], 1000+uint64(n)); err != nil || string(f.Data) != "x" {
			t.Fatalf("second of two frames: %v", err)
		}
	}
}

func TestFrameLimits(t *testing.T) {
	k := testKey(t, AES128GCM)
	if _, err := k.AppendFrame(nil, 0, 0, 0, nil, make([]byte, MaxFrameData+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversize frame: %v", err)
	}
	wire, err := k.AppendFrame(nil, 0, 0, 0, nil, make([]byte, MaxFrameData))
	if err != nil || len(wire) != FrameHeaderLen+MaxFrameCiphertext {
		t.Fatalf("largest frame: %d bytes, %v", len(wire), err)
	}
	if _, err := k.AppendFrame(nil, ^uint64(0)-5, 0, 0, nil, nil); !errors.Is(err, ErrOffsetWrap) {
		t.Fatalf("offset wrap: %v", err)
	}
	if _, err := k.AppendFrame(nil, 0, 0x80, 0, nil, nil); err == nil {
		t.Fatal("reserved control bit accepted when sending")
	}
	// Reserved bits from the peer are ignored (cres) but authenticated.
	_, _, err = k.OpenFrame([]byte{0, 0, 5, 1, 2, 3, 4, 5}, 0)
	if !errors.Is(err, ErrIntegrity) {
		t.Fatalf("clen below minimum: %v", err)
	}
}

func TestFrameZeroAllocs(t *testing.T) {
	for _, aead := range allAEADs {
		k := testKey(t, aead)
		data := make([]byte, 1448)
		buf := make([]byte, 0, 2048)
		allocs := testing.AllocsPerRun(100, func() {
			wire, err := k.AppendFrame(buf[:0], 77, 0, 0, nil, data)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := k.OpenFrame(wire, 77); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%v: %.1f allocations per seal+open, want 0", aead, allocs)
		}
	}
}

func TestForgedRekeyDoesNotMoveKeys(t *testing.T) {
	sa, sb, i1, _ := handshakePair(t, TEPCurve25519, nil, nil)
	wire, _ := sa.AppendFrame(nil, uint64(len(i1)), 0, nil, []byte("data"))
	wire[0] |= ControlRekey // the header is authenticated: this must fail
	if _, _, err := sb.OpenFrame(wire, uint64(len(i1))); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("forged rekey bit: %v", err)
	}
	if l, r := sb.Generations(); l != 0 || r != 0 {
		t.Fatalf("generations moved to %d/%d by a forged frame", l, r)
	}
}

func TestRetransmissionKeys(t *testing.T) {
	sa, _, _, _ := handshakePair(t, TEPCurve25519, nil, nil)
	k0, _ := sa.SendKey()
	first, _ := k0.AppendFrame(nil, 100, 0, 0, nil, []byte("same bytes"))
	if err := sa.Rekey(); err != nil {
		t.Fatal(err)
	}
	old := sa.SendKeyFor(0)
	if old == nil {
		t.Fatal("generation-0 send key dropped while still needed")
	}
	again, _ := old.AppendFrame(nil, 100, 0, 0, nil, []byte("same bytes"))
	if !bytes.Equal(first, again) {
		t.Fatal("re-sealing the same bytes at the same offset differs")
	}
	sa.ReleaseSendKeysBefore(1)
	if sa.SendKeyFor(0) != nil {
		t.Fatal("released key still returned")
	}
	if sa.SendKeyFor(1) == nil {
		t.Fatal("current key not returned")
	}
}

func TestSessionClose(t *testing.T) {
	sa, _, _, _ := handshakePair(t, TEPCurve25519, nil, nil)
	k, _ := sa.SendKey()
	sa.Close()
	sa.Close()
	if sa.sendMK != (Secret{}) || sa.recvMK != (Secret{}) || k.nr != [12]byte{} || sa.next.Secret != (Secret{}) {
		t.Fatal("secrets survive Close")
	}
	if _, err := sa.AppendFrame(nil, 0, 0, nil, nil); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("seal after Close: %v", err)
	}
	if _, ok := sa.TakeResumeSecret(); ok {
		t.Fatal("resume secret handed out after Close")
	}
}

func TestResumption(t *testing.T) {
	for _, tep := range allTEPs {
		sa, sb, _, _ := handshakePair(t, tep, nil, nil)
		origID := sa.ID()
		ra, okA := sa.TakeResumeSecret()
		rb, okB := sb.TakeResumeSecret()
		if !okA || !okB {
			t.Fatal("no resumption secret")
		}
		if _, ok := sa.TakeResumeSecret(); ok {
			t.Fatal("resumption secret handed out twice")
		}
		if ra.Secret != rb.Secret || !ra.OrigA || rb.OrigA || ra.TEP != tep {
			t.Fatalf("secrets differ or roles wrong")
		}
		hostA, hostB := NewCache(4), NewCache(4)
		peerOfA, peerOfB := netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.1")
		hostA.Put(peerOfA, &ra)
		hostB.Put(peerOfB, &rb)
		if ra.Secret != (Secret{}) {
			t.Fatal("Put did not zero the caller's copy")
		}
		// The host that was B opens the resumed connection.
		prop, ok := hostB.TakeForPeer(peerOfB, tep)
		if !ok {
			t.Fatal("no cached secret for the peer")
		}
		nonceB := []byte{1, 2, 3, 4, 5, 6, 7, 8}
		sub, err := AppendResumeSuboption(nil, &prop, nonceB)
		if err != nil {
			t.Fatal(err)
		}
		if sub[0] != byte(tep)|ResumeBit || len(sub) != 1+9+8 {
			t.Fatalf("suboption %x", sub)
		}
		half, gotNonce, isResume, err := ParseResumeData(sub[1:])
		if err != nil || !isResume || !bytes.Equal(gotNonce, nonceB) {
			t.Fatalf("ParseResumeData: %v %v", isResume, err)
		}
		acc, ok := hostA.TakeByPeerHalf(tep, half)
		if !ok {
			t.Fatal("passive host did not find the secret by the peer's half")
		}
		if _, ok := hostA.TakeByPeerHalf(tep, half); ok {
			t.Fatal("secret accepted twice")
		}
		nonceA := []byte{9, 9}
		reply, _ := AppendResumeSuboption(nil, &acc, nonceA)
		rHalf, _, _, _ := ParseResumeData(reply[1:])
		if !HalvesMatch(rHalf, prop.PeerHalf()) {
			t.Fatal("the passive host's half does not match what the proposer expects")
		}
		s1, err := Resume(&prop, nonceA, nonceB)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := Resume(&acc, nonceA, nonceB)
		if err != nil {
			t.Fatal(err)
		}
		if s1.ID() != s2.ID() || s1.ID()[0] != byte(tep)|ResumeBit || s1.ID() == origID || !s1.Resumed() {
			t.Fatal("resumed session IDs wrong")
		}
		// Key directions follow the original roles: the original B (s1)
		// still seals with k_ba.
		if s1.SealsWithKAB() || !s2.SealsWithKAB() {
			t.Fatal("key direction changed under resumption")
		}
		exchange(t, s2, s1, 0, 0)
		// Different nonces give a different session.
		r3, _ := s1.TakeResumeSecret()
		r4, _ := s2.TakeResumeSecret()
		if r3.Secret != r4.Secret {
			t.Fatal("ss[i+1] differs between the hosts")
		}
	}
}

func TestResumeDataForms(t *testing.T) {
	if _, _, ok, err := ParseResumeData(make([]byte, 8)); ok || err != nil {
		t.Fatal("8 data bytes must count as a fresh offer (RFC 8548 §3.5)")
	}
	if _, _, ok, err := ParseResumeData(make([]byte, 18)); ok || err == nil {
		t.Fatal("18 data bytes accepted")
	}
	if !SuboptionAcceptable(make([]byte, 17)) || SuboptionAcceptable(make([]byte, 18)) {
		t.Fatal("SuboptionAcceptable bounds")
	}
	if _, err := AppendResumeSuboption(nil, &ResumeSecret{}, make([]byte, 9)); err == nil {
		t.Fatal("9-byte nonce accepted")
	}
}

func TestCacheBoundsAndFlush(t *testing.T) {
	c := NewCache(3)
	peer := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}) }
	for i := 0; i < 5; i++ {
		rs := ResumeSecret{TEP: TEPCurve25519, OrigA: true, ID: [18]byte{byte(i), 0, 0, 0, 0, 0, 0, 0, 0, byte(i)}}
		c.Put(peer(i), &rs)
	}
	if c.Len() != 3 {
		t.Fatalf("cache holds %d, bound 3", c.Len())
	}
	if _, ok := c.TakeForPeer(peer(0), TEPCurve25519); ok {
		t.Fatal("oldest entry not evicted")
	}
	if _, ok := c.TakeForPeer(peer(4), TEPCurve448); ok {
		t.Fatal("entry returned for another TEP")
	}
	if _, ok := c.TakeForPeer(peer(4), TEPCurve25519); !ok {
		t.Fatal("newest entry missing")
	}
	c.FlushPeer(peer(3))
	if _, ok := c.TakeForPeer(peer(3), TEPCurve25519); ok || c.Len() != 1 {
		t.Fatal("FlushPeer kept the entry")
	}
	c.Flush()
	if c.Len() != 0 {
		t.Fatal("Flush kept entries")
	}
	none := NewCache(0)
	rs := ResumeSecret{TEP: TEPCurve25519}
	none.Put(peer(1), &rs)
	if none.Len() != 0 {
		t.Fatal("a zero-size cache stored a secret")
	}
}

func FuzzInitParse(f *testing.F) {
	for _, tep := range allTEPs {
		h, _ := NewInitiator(nil, tep, testTranscript, nil)
		f.Add(byte(tep), h.Init1())
		hb, _ := NewResponder(nil, tep, testTranscript, nil)
		i2, _, _ := hb.ReadInit1(h.Init1())
		f.Add(byte(tep), i2)
	}
	f.Fuzz(func(t *testing.T, tep byte, msg []byte) {
		for _, isInit1 := range []bool{true, false} {
			n, err := InitLen(msg, isInit1)
			if err != nil {
				continue
			}
			if n > MaxInitLen || n < initHeaderLen {
				t.Fatalf("InitLen returned %d", n)
			}
			if len(msg) < n {
				continue
			}
			if isInit1 {
				m, err := ParseInit1(TEP(tep), msg[:n])
				if err == nil && (len(m.AEADs) == 0 || len(m.PubA) != PublicKeyLen(TEP(tep))) {
					t.Fatal("ParseInit1 accepted an inconsistent message")
				}
				if err == nil {
					h, _ := NewResponder(nil, TEP(tep), testTranscript, nil)
					if h != nil {
						h.ReadInit1(msg[:n])
					}
				}
			} else {
				m, err := ParseInit2(TEP(tep), msg[:n])
				if err == nil && len(m.PubB) != PublicKeyLen(TEP(tep)) {
					t.Fatal("ParseInit2 accepted an inconsistent message")
				}
			}
		}
	})
}

func FuzzFrameOpen(f *testing.F) {
	k := testKey(f, ChaCha20Poly1305)
	wire, _ := k.AppendFrame(nil, 5, 0, FlagFIN, nil, []byte("seed"))
	f.Add(uint64(5), wire)
	urg := uint16(1)
	wire, _ = k.AppendFrame(nil, 9, ControlRekey, 0, &urg, []byte("u"))
	f.Add(uint64(9), wire)
	f.Add(uint64(0), []byte{0, 0, 17})
	f.Fuzz(func(t *testing.T, off uint64, b []byte) {
		k := testKey(t, ChaCha20Poly1305)
		orig := bytes.Clone(b)
		fr, n, err := k.OpenFrame(b, off)
		if err != nil {
			if errors.Is(err, ErrNeedMore) && !bytes.Equal(b, orig) {
				t.Fatal("ErrNeedMore modified the buffer")
			}
			return
		}
		// Whatever opens must re-seal to the same bytes.
		var urgent *uint16
		if fr.Flags&FlagURG != 0 {
			urgent = &fr.Urgent
		}
		if fr.Control&^ControlRekey != 0 || fr.Flags&^(FlagFIN|FlagURG) != 0 {
			return // reserved bits: we never send them, so no re-seal
		}
		again, err := k.AppendFrame(nil, off, fr.Control, fr.Flags&FlagFIN, urgent, fr.Data)
		if err != nil || !bytes.Equal(again, orig[:n]) {
			t.Fatalf("opened frame does not re-seal identically: %v", err)
		}
	})
}

func BenchmarkFrame(b *testing.B) {
	for _, aead := range allAEADs {
		for _, size := range []int{64, 1448, 16 << 10, MaxFrameData} {
			k := testKey(b, aead)
			data := make([]byte, size)
			buf := make([]byte, 0, FrameLen(size, false))
			b.Run(fmt.Sprintf("seal/%v/%d", aead, size), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					k.AppendFrame(buf[:0], uint64(i), 0, 0, nil, data)
				}
			})
			wire, _ := k.AppendFrame(nil, 0, 0, 0, nil, data)
			work := make([]byte, len(wire))
			b.Run(fmt.Sprintf("open/%v/%d", aead, size), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					copy(work, wire)
					if _, _, err := k.OpenFrame(work, 0); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkHandshake(b *testing.B) {
	for _, tep := range allTEPs {
		b.Run(tep.String(), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				sa, sb, _, _ := handshakePair(b, tep, nil, nil)
				sa.Close()
				sb.Close()
			}
		})
	}
}

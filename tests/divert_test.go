//go:build linux

package tests

// The divert engine between two real TCP stacks (gVisor netstack) on the
// simulated network of tests/simnet: byte-identical transfers over clean
// and hostile links, ciphertext on the wire, equal session IDs.

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/core/divert"
	"tcpinc.dev/tcpinc/core/packet"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
	"tcpinc.dev/tcpinc/tests/simnet"
)

// testLog sends engine logs to the test's log (shown on failure).
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// sessions records the session IDs engines report, by engine.
type sessions struct {
	mu  sync.Mutex
	ids map[*divert.Engine][][]byte
}

var recorded = sessions{ids: map[*divert.Engine][][]byte{}}

func newEngines(t *testing.T, resume bool) (a, b *divert.Engine) {
	t.Helper()
	mk := func() *divert.Engine {
		var e *divert.Engine
		c := divert.Config{Log: slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug})), OnEvent: func(ev divert.Event) {
			if ev.Kind == divert.EventEncrypted {
				recorded.mu.Lock()
				recorded.ids[e] = append(recorded.ids[e], ev.SessionID)
				recorded.mu.Unlock()
			}
		}}
		if resume {
			c.Cache = tcpcrypt.NewCache(64)
		}
		e, err := divert.New(c)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	return mk(), mk()
}

// marked returns n bytes of a repeating text with a marker, so that a
// scan of the wire can look for plaintext.
func marked(n int) []byte {
	const unit = "tcpinc-PLAINTEXT-MARKER-0123456789abcdef\n"
	return bytes.Repeat([]byte(unit), n/len(unit)+1)[:n]
}

// exchange writes a->b and b->a at once and checks both arrive intact.
func exchange(t *testing.T, a, b net.Conn, nA, nB int) {
	t.Helper()
	errc := make(chan error, 4)
	send := func(c net.Conn, n int) {
		_, err := c.Write(marked(n))
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		errc <- err
	}
	recv := func(c net.Conn, n int) {
		got, err := io.ReadAll(c)
		if err == nil && sha256.Sum256(got) != sha256.Sum256(marked(n)) {
			err = fmt.Errorf("received %d bytes, want %d identical bytes", len(got), n)
		}
		errc <- err
	}
	go send(a, nA)
	go send(b, nB)
	go recv(b, nA)
	go recv(a, nB)
	timeout := time.After(2 * time.Minute)
	for i := 0; i < 4; i++ {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatal("transfer timed out")
		}
	}
}

// sessionIDs returns the last session ID each engine reported.
func sessionIDs(t *testing.T, a, b *divert.Engine) (idA, idB []byte) {
	t.Helper()
	recorded.mu.Lock()
	defer recorded.mu.Unlock()
	if l := recorded.ids[a]; len(l) > 0 {
		idA = l[len(l)-1]
	}
	if l := recorded.ids[b]; len(l) > 0 {
		idB = l[len(l)-1]
	}
	return idA, idB
}

func TestDivertCleanLink(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, size := range []int{0, 1, 1 << 20} {
			t.Run(fmt.Sprintf("ipv6=%v/%d", v6, size), func(t *testing.T) {
				ea, eb := newEngines(t, false)
				n := simnet.New(t, simnet.Config{EngineA: ea, EngineB: eb, Capture: true})
				a, b := n.MustPair(t, v6)
				exchange(t, a, b, size, size)
				idA, idB := sessionIDs(t, ea, eb)
				if idA == nil || !bytes.Equal(idA, idB) {
					t.Fatalf("session IDs: A %x, B %x", idA, idB)
				}
				if size > 0 && n.WireContains([]byte("PLAINTEXT-MARKER")) {
					t.Fatal("plaintext on the wire")
				}
			})
		}
	}
}

// hostile runs a transfer both ways at once over an impaired network and
// checks integrity, ciphertext on the wire and equal session IDs.
func hostile(t *testing.T, cfg simnet.Config, size int, v6 bool) (ea, eb *divert.Engine) {
	t.Helper()
	ea, eb = newEngines(t, false)
	cfg.EngineA, cfg.EngineB, cfg.Capture = ea, eb, true
	n := simnet.New(t, cfg)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("engine A %+v\nengine B %+v", ea.Counters(), eb.Counters())
		}
	})
	a, b := n.MustPair(t, v6)
	exchange(t, a, b, size, size)
	idA, idB := sessionIDs(t, ea, eb)
	if idA == nil || !bytes.Equal(idA, idB) {
		t.Fatalf("session IDs: A %x, B %x (A %+v)", idA, idB, ea.Counters())
	}
	if n.WireContains([]byte("PLAINTEXT-MARKER")) {
		t.Fatal("plaintext on the wire")
	}
	return ea, eb
}

func TestDivertHostileLinks(t *testing.T) {
	lossy := simnet.LinkConfig{Loss: 0.05, Reorder: 0.05, Duplicate: 0.01}
	reseg := simnet.LinkConfig{Split: 0.3, Coalesce: 0.3}
	cases := []struct {
		name string
		cfg  simnet.Config
		v6   bool
	}{
		{"loss-reorder-dup", simnet.Config{AtoB: lossy, BtoA: lossy}, false},
		{"loss-reorder-dup-v6", simnet.Config{AtoB: lossy, BtoA: lossy}, true},
		{"resegmenting", simnet.Config{AtoB: reseg, BtoA: reseg}, false},
		{"nat", simnet.Config{NAT: &simnet.NATConfig{}}, false},
		{"mss-clamp", simnet.Config{AtoB: simnet.LinkConfig{ClampMSS: 536}, BtoA: simnet.LinkConfig{ClampMSS: 536}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hostile(t, c.cfg, 1<<20, c.v6)
		})
	}
}

func TestDivertOptionStrippedFallsBackToPlain(t *testing.T) {
	for _, dir := range []string{"SYN", "SYN-ACK"} {
		t.Run(dir, func(t *testing.T) {
			ea, eb := newEngines(t, false)
			strip := simnet.LinkConfig{StripOptions: []simnet.OptionStrip{{Kind: 69}}}
			cfg := simnet.Config{EngineA: ea, EngineB: eb}
			if dir == "SYN" {
				cfg.AtoB = strip
			} else {
				cfg.BtoA = strip
			}
			n := simnet.New(t, cfg)
			a, b := n.MustPair(t, false)
			exchange(t, a, b, 100_000, 100_000)
			for _, e := range []*divert.Engine{ea, eb} {
				c := e.Counters()
				if c.ConnsPlain != 1 || c.ConnsEncrypted != 0 {
					t.Fatalf("plain %d, encrypted %d", c.ConnsPlain, c.ConnsEncrypted)
				}
			}
		})
	}
}

func TestDivertOneSideWithoutTcpinc(t *testing.T) {
	for _, side := range []string{"A", "B"} {
		t.Run(side, func(t *testing.T) {
			e, _ := newEngines(t, false)
			cfg := simnet.Config{EngineA: e}
			if side == "B" {
				cfg = simnet.Config{EngineB: e}
			}
			n := simnet.New(t, cfg)
			a, b := n.MustPair(t, false)
			exchange(t, a, b, 200_000, 200_000)
			if c := e.Counters(); c.ConnsPlain != 1 || c.FramesSealed != 0 {
				t.Fatalf("plain %d, frames %d", c.ConnsPlain, c.FramesSealed)
			}
		})
	}
}

func TestDivertResumption(t *testing.T) {
	ea, eb := newEngines(t, true)
	n := simnet.New(t, simnet.Config{EngineA: ea, EngineB: eb, Capture: true})
	for i := 0; i < 3; i++ {
		a, b := n.MustPair(t, false)
		exchange(t, a, b, 50_000, 50_000)
		a.Close()
		b.Close()
	}
	ca, cb := ea.Counters(), eb.Counters()
	if ca.ConnsEncrypted != 3 || ca.KeyAgreements != 1 || cb.KeyAgreements != 1 || ca.ConnsResumed != 2 {
		t.Fatalf("encrypted %d, key agreements %d/%d, resumed %d", ca.ConnsEncrypted, ca.KeyAgreements, cb.KeyAgreements, ca.ConnsResumed)
	}
	if n.WireContains([]byte("PLAINTEXT-MARKER")) {
		t.Fatal("plaintext on the wire")
	}
}

func TestDivertLargeTransfer(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB transfer in -short mode")
	}
	ea, eb := newEngines(t, false)
	n := simnet.New(t, simnet.Config{EngineA: ea, EngineB: eb, Capture: true})
	a, b := n.MustPair(t, false)
	exchange(t, a, b, 64<<20, 64<<20)
	if n.WireContains([]byte("PLAINTEXT-MARKER")) {
		t.Fatal("plaintext on the wire")
	}
	c := ea.Counters()
	t.Logf("64 MiB each way: sim %v, A sealed %d frames, %d retransmits", n.Elapsed(), c.FramesSealed, c.Retransmits)
}

func TestDivertManyConnections(t *testing.T) {
	const conns = 1000
	ea, eb := newEngines(t, true)
	n := simnet.New(t, simnet.Config{EngineA: ea, EngineB: eb})
	l, err := n.Listen(simnet.B, 7000)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	errc := make(chan error, conns)
	sem := make(chan struct{}, 200) // 200 in flight at a time
	for i := 0; i < conns; i++ {
		go func(i int) {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := n.Dial(simnet.A, netip.AddrPortFrom(n.Addr(simnet.B, false), 7000))
			if err != nil {
				errc <- err
				return
			}
			defer c.Close()
			msg := []byte(fmt.Sprintf("connection %d PLAINTEXT-MARKER", i))
			if _, err := c.Write(msg); err != nil {
				errc <- err
				return
			}
			c.(interface{ CloseWrite() error }).CloseWrite()
			got, err := io.ReadAll(c)
			if err == nil && !bytes.Equal(got, msg) {
				err = fmt.Errorf("connection %d: echo %q", i, got)
			}
			errc <- err
		}(i)
	}
	for i := 0; i < conns; i++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	ca := ea.Counters()
	if ca.ConnsEncrypted != conns {
		t.Fatalf("%d of %d connections encrypted (%+v)", ca.ConnsEncrypted, conns, ca)
	}
	// After TIME_WAIT the tables drain (simulated time moves on while
	// the network is idle).
	deadline := time.Now().Add(30 * time.Second)
	for ea.Len()+eb.Len() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("tables still hold %d + %d connections", ea.Len(), eb.Len())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d connections, %d resumed, %d key agreements", ca.ConnsEncrypted, ca.ConnsResumed, ca.KeyAgreements)
}

// TestDivertAttacks plays an on-path attacker: it flips a bit in one
// frame (fixing the TCP checksum, as an attacker would) and injects a RST
// with a wrong sequence number. The transfer must complete intact: the bad
// frame is dropped unacknowledged and the stack's retransmission repairs
// it; the RST is dropped. Both attacks are counted.
func TestDivertAttacks(t *testing.T) {
	ea, eb := newEngines(t, false)
	var seen int
	forged := make(chan []byte, 1)
	tap := func(p simnet.TapPacket) {
		if p.Point != simnet.TapSent || p.From != simnet.A {
			return
		}
		pk, err := packet.Parse(p.Buf)
		if err != nil || pk.PayloadLen() < 200 {
			return
		}
		seen++
		if seen == 20 {
			pk.Payload()[100] ^= 0x20
			pk.UpdateTCPChecksum()
		}
		if seen == 30 {
			// Far behind the window: a blind attacker's guess.
			rst := append([]byte(nil), p.Buf...)
			r, _ := packet.Parse(rst)
			r.SetPayload(nil)
			r.TCP().SetFlags(packet.RST | packet.ACK)
			r.TCP().SetSeq(r.TCP().Seq() - 1_000_000)
			r.UpdateTCPChecksum()
			forged <- r.Bytes()
		}
	}
	n := simnet.New(t, simnet.Config{EngineA: ea, EngineB: eb, Taps: []simnet.Tap{tap}, Capture: true})
	a, b := n.MustPair(t, false)
	injected := make(chan struct{})
	go func() {
		n.InjectOnLink(simnet.A, <-forged)
		close(injected)
	}()
	exchange(t, a, b, 4<<20, 1<<20)
	<-injected
	// Let the driver deliver it.
	deadline := time.Now().Add(5 * time.Second)
	for eb.Counters().DropForgedRST == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cb := eb.Counters()
	if cb.IntegrityFailures == 0 || cb.DropForgedRST == 0 {
		t.Fatalf("attacks not seen: integrity failures %d, forged RSTs %d", cb.IntegrityFailures, cb.DropForgedRST)
	}
	if cb.ConnsAborted != 0 {
		t.Fatal("a single bad frame aborted the connection")
	}
	if n.WireContains([]byte("PLAINTEXT-MARKER")) {
		t.Fatal("plaintext on the wire")
	}
}

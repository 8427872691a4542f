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
	"net"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/core/divert"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
	"tcpinc.dev/tcpinc/tests/simnet"
)

func newEngines(t *testing.T, resume bool) (a, b *divert.Engine) {
	t.Helper()
	cfg := func() divert.Config {
		c := divert.Config{}
		if resume {
			c.Cache = tcpcrypt.NewCache(64)
		}
		return c
	}
	a, err := divert.New(cfg())
	if err != nil {
		t.Fatal(err)
	}
	b, err = divert.New(cfg())
	if err != nil {
		t.Fatal(err)
	}
	return a, b
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

func sessionIDs(t *testing.T, a, b *divert.Engine) (idA, idB []byte) {
	t.Helper()
	ca, cb := a.Conns(nil), b.Conns(nil)
	for _, c := range ca {
		if c.SessionID != nil {
			idA = c.SessionID
		}
	}
	for _, c := range cb {
		if c.SessionID != nil {
			idB = c.SessionID
		}
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
					t.Logf("A: %+v\nB: %+v", ea.Counters(), eb.Counters())
					t.Logf("conns A %+v B %+v", ea.Conns(nil), eb.Conns(nil))
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

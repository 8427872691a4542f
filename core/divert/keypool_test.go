package divert

import (
	"bytes"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

func TestKeyPool(t *testing.T) {
	p := NewKeyPool(4, tcpcrypt.TEPCurve25519, tcpcrypt.TEPCurve25519|tcpcrypt.ResumeBit)
	defer p.Close()
	var got []*tcpcrypt.Ephemeral
	for deadline := time.Now().Add(5 * time.Second); len(got) < 6 && time.Now().Before(deadline); {
		if e := p.Get(tcpcrypt.TEPCurve25519); e != nil {
			got = append(got, e)
		} else {
			time.Sleep(time.Millisecond)
		}
	}
	if len(got) < 6 {
		t.Fatalf("the pool handed out %d keys in 5 s", len(got))
	}
	for i, e := range got {
		if e.Key.TEP() != tcpcrypt.TEPCurve25519 {
			t.Fatalf("key %d is for %v", i, e.Key.TEP())
		}
		for _, f := range got[:i] {
			if bytes.Equal(e.Key.AppendPublic(nil), f.Key.AppendPublic(nil)) || e.Nonce == f.Nonce {
				t.Fatal("the pool handed out a key or nonce twice")
			}
		}
	}
	if p.Get(tcpcrypt.TEPP256) != nil {
		t.Fatal("a key for a TEP the pool does not keep")
	}
	var nilPool *KeyPool
	if nilPool.Get(tcpcrypt.TEPCurve25519) != nil {
		t.Fatal("a nil pool handed out a key")
	}
}

// Handshakes with pooled keys: encrypted, and every pooled key is used
// once.
func TestEngineWithKeyPool(t *testing.T) {
	pa, pb := NewKeyPool(8, tcpcrypt.TEPCurve25519), NewKeyPool(8, tcpcrypt.TEPCurve25519)
	defer pa.Close()
	defer pb.Close()
	time.Sleep(50 * time.Millisecond) // let the pools fill
	var usedA int
	r := newRig(t, Config{Ephemerals: func(tep tcpcrypt.TEP) *tcpcrypt.Ephemeral {
		e := pa.Get(tep)
		if e != nil {
			usedA++
		}
		return e
	}}, Config{Ephemerals: pb.Get})
	for i := range 3 {
		ia, ib, _, _ := r.open(uint16(43000 + i))
		if ia.State != "encrypted" || ib.State != "encrypted" || !bytes.Equal(ia.SessionID, ib.SessionID) {
			t.Fatalf("connection %d: %s / %s", i, ia.State, ib.State)
		}
	}
	if usedA == 0 {
		t.Fatal("no pooled key was used")
	}
}

package redirect

import (
	"io"
	"net/netip"
	"testing"
)

// BenchmarkProxyEncrypted moves data one way through two joined proxies
// over loopback TCP: app → proxy A → (tcpcrypt) → proxy B → app. It
// measures the whole path on this machine, the kernel's loopback copies
// included; compare with BenchmarkLoopbackPlain.
func BenchmarkProxyEncrypted(b *testing.B) {
	a, s := newSide(b, false), newSide(b, false)
	c := connect(b, a, &s, nil)
	benchStream(b, c.client, c.server)
	c.client.Close()
	c.server.Close()
	c.wait(b)
}

// BenchmarkLoopbackPlain is the same transfer over one plain loopback
// TCP connection.
func BenchmarkLoopbackPlain(b *testing.B) {
	x, y := tcpPair(b)
	benchStream(b, x, y)
}

func benchStream(b *testing.B, w io.Writer, r io.Reader) {
	const chunk = 64 << 10
	buf := pattern(chunk, 9)
	b.SetBytes(chunk)
	done := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, r, int64(b.N)*chunk)
		done <- err
	}()
	b.ResetTimer()
	for range b.N {
		if _, err := w.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkHookHandshake runs one connection's SYN, SYN-ACK, ACK and
// first data segments through two hooks and takes both outcomes.
func BenchmarkHookHandshake(b *testing.B) {
	ha, hb := newHook(b, nil), newHook(b, nil)
	b.ReportAllocs()
	for i := range b.N {
		a := netip.AddrPortFrom(addrA.Addr(), uint16(1024+i%60000))
		handshake(b, ha, hb, a, addrB)
		outcome(b, ha, a, addrB)
		outcome(b, hb, addrB, a)
	}
}

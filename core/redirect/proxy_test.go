package redirect

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

// tcpPair returns two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acc <- nil
			return
		}
		acc <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

type side struct {
	hook  *Hook
	proxy *Proxy
	cache *tcpcrypt.Cache
}

func newSide(t testing.TB, resume bool) side {
	var cache *tcpcrypt.Cache
	if resume {
		cache = tcpcrypt.NewCache(16)
	}
	h := newHook(t, cache)
	p, err := NewProxy(Config{Hook: h, Cache: cache, Dialer: loopDialer{}})
	if err != nil {
		t.Fatal(err)
	}
	return side{h, p, cache}
}

// conn is one proxied connection between two sides, the applications'
// ends exposed.
type conn struct {
	client, server net.Conn // the applications' sockets
	wireA          net.Conn // A's wire leg
	errA, errB     chan error
}

// connect builds app ⇄ proxy A ⇄ wire ⇄ proxy B ⇄ app, with the ENO
// handshake run through both hooks at the wire addresses addrA/addrB. A
// nil b is a peer without tcpinc: the wire ends at the server. relay,
// if set, sits on the wire.
func connect(t testing.TB, a side, b *side, relay func(dst, src net.Conn)) *conn {
	t.Helper()
	var hb *Hook
	if b != nil {
		hb = b.hook
	}
	handshake(t, a.hook, hb, addrA, addrB)
	oa := outcome(t, a.hook, addrA, addrB)
	client, localA := tcpPair(t)
	wireA, wireB := tcpPair(t)
	if relay != nil {
		r1, r2 := tcpPair(t)
		go relay(r1, wireB)
		go relay(wireB, r1)
		wireB = r2
	}
	c := &conn{client: client, wireA: wireA, errA: make(chan error, 1), errB: make(chan error, 1)}
	ctx := context.Background()
	go func() { c.errA <- a.proxy.Join(ctx, localA, wireA, oa, Flow{Dir: Outbound, Src: addrA, Dst: addrB}) }()
	if b == nil {
		c.server = wireB
		c.errB <- nil
		return c
	}
	ob := outcome(t, b.hook, addrB, addrA)
	localB, server := tcpPair(t)
	c.server = server
	go func() { c.errB <- b.proxy.Join(ctx, localB, wireB, ob, Flow{Dir: Inbound, Src: addrA, Dst: addrB}) }()
	return c
}

func (c *conn) wait(t testing.TB) (errA, errB error) {
	t.Helper()
	for i, ch := range []chan error{c.errA, c.errB} {
		select {
		case err := <-ch:
			if i == 0 {
				errA = err
			} else {
				errB = err
			}
		case <-time.After(10 * time.Second):
			t.Fatal("proxy did not finish")
		}
	}
	return
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// exchange sends up from client to server and down back, each followed
// by a half-close, and checks both arrive byte for byte.
func exchange(t testing.TB, c *conn, up, down []byte) {
	t.Helper()
	var wg sync.WaitGroup
	var gotUp, gotDown []byte
	var errUp, errDown error
	wg.Add(2)
	go func() {
		defer wg.Done()
		gotUp, errUp = io.ReadAll(c.server)
		if errUp == nil {
			_, errUp = c.server.Write(down)
			c.server.(*net.TCPConn).CloseWrite()
		}
	}()
	go func() {
		defer wg.Done()
		if _, err := c.client.Write(up); err != nil {
			errDown = err
			return
		}
		c.client.(*net.TCPConn).CloseWrite() // half-close: the reply must still come
		gotDown, errDown = io.ReadAll(c.client)
	}()
	wg.Wait()
	if errUp != nil || errDown != nil {
		t.Fatalf("exchange: %v / %v", errUp, errDown)
	}
	if !bytes.Equal(gotUp, up) || !bytes.Equal(gotDown, down) {
		t.Fatalf("data differs: up %d/%d bytes, down %d/%d", len(gotUp), len(up), len(gotDown), len(down))
	}
}

func TestProxyEncrypted(t *testing.T) {
	a, b := newSide(t, false), newSide(t, false)
	c := connect(t, a, &b, nil)
	exchange(t, c, pattern(3<<20, 1), pattern(1<<20, 2))
	if errA, errB := c.wait(t); errA != nil || errB != nil {
		t.Fatalf("proxies: %v / %v", errA, errB)
	}
	ca, cb := a.proxy.Counters(), b.proxy.Counters()
	if ca.Encrypted != 1 || cb.Encrypted != 1 || ca.BytesOut != 3<<20 || cb.BytesIn != 3<<20 || ca.BytesIn != 1<<20 {
		t.Fatalf("counters %+v / %+v", ca, cb)
	}
	// Listed for the linger after both legs are done.
	if cs := a.proxy.Conns(); len(cs) != 1 || cs[0].State != "closed" {
		t.Fatalf("after the end: %+v, want one connection in state closed", cs)
	}
}

// TestProxyLinger: an ended connection stays visible to Lookup (by the
// application's socket) with its session ID for Config.Linger, as the
// application may still read what the proxy handed its socket; then it
// is gone. An aborted one says so.
func TestProxyLinger(t *testing.T) {
	a, b := newSide(t, false), newSide(t, false)
	const linger = 200 * time.Millisecond
	a.proxy.cfg.Linger = linger
	c := connect(t, a, &b, nil)
	live, ok := a.proxy.Lookup(addrA, addrB)
	for i := 0; i < 500 && ok && live.State != "encrypted"; i++ {
		time.Sleep(10 * time.Millisecond)
		live, ok = a.proxy.Lookup(addrA, addrB)
	}
	if !ok || live.State != "encrypted" {
		t.Fatalf("live: %+v %v", live, ok)
	}
	exchange(t, c, pattern(1000, 1), pattern(1000, 2))
	c.wait(t)
	ended := time.Now()
	info, ok := a.proxy.Lookup(addrA, addrB)
	if !ok || info.State != "closed" || !bytes.Equal(info.SessionID, live.SessionID) || info.BytesOut != 1000 {
		t.Fatalf("just after the end: %+v %v, want state closed with the session ID", info, ok)
	}
	for time.Since(ended) < 5*time.Second {
		if _, ok := a.proxy.Lookup(addrA, addrB); !ok {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := time.Since(ended); d < linger {
		t.Errorf("dropped after %v, before the linger of %v", d, linger)
	}
	if _, ok := a.proxy.Lookup(addrA, addrB); ok || len(a.proxy.Conns()) != 0 {
		t.Fatal("still listed 5 s after the end")
	}

	// A reset connection lingers as "reset"; CloseAll does not count
	// it again. Wine's closesocket sometimes sends a FIN for SO_LINGER 0
	// instead of a RST (seen about once in five runs), and then nothing
	// ends the connection: this half needs a real TCP stack's reset.
	if runtime.GOOS == "windows" && os.Getenv("WINEPREFIX") != "" {
		t.Log("under wine: the reset half is left out")
		return
	}
	c = connect(t, a, &b, nil)
	c.client.(*net.TCPConn).SetLinger(0)
	c.client.Close()
	c.wait(t)
	if info, ok := a.proxy.Lookup(addrA, addrB); !ok || info.State != "reset" {
		t.Fatalf("after a reset: %+v %v, want state reset", info, ok)
	}
	n := a.proxy.Counters().Aborted
	a.proxy.CloseAll()
	if m := a.proxy.Counters().Aborted; m != n {
		t.Errorf("CloseAll aborted an ended connection: %d → %d", n, m)
	}
}

func TestProxySessionIDs(t *testing.T) {
	a, b := newSide(t, false), newSide(t, false)
	c := connect(t, a, &b, nil)
	c.client.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c.server, buf); err != nil {
		t.Fatal(err)
	}
	ia, ok1 := a.proxy.Lookup(addrA, addrB)
	ib, ok2 := b.proxy.Lookup(addrB, addrA)
	if !ok1 || !ok2 || ia.State != "encrypted" || len(ia.SessionID) != tcpcrypt.SessionIDLen || !bytes.Equal(ia.SessionID, ib.SessionID) || ia.Role == ib.Role {
		t.Fatalf("infos %+v / %+v", ia, ib)
	}
	// The same connection by A's wire leg and by the server
	// application's own socket (which sees B's proxy as its peer).
	if w, ok := a.proxy.Lookup(addrPort(c.wireA.LocalAddr()), addrPort(c.wireA.RemoteAddr())); !ok || !bytes.Equal(w.SessionID, ia.SessionID) {
		t.Errorf("lookup by the wire leg: %+v %v", w, ok)
	}
	if l, ok := b.proxy.Lookup(addrPort(c.server.LocalAddr()), addrPort(c.server.RemoteAddr())); !ok || !bytes.Equal(l.SessionID, ib.SessionID) {
		t.Errorf("lookup by the server application's socket: %+v %v", l, ok)
	}
	if ia.Local != addrA || ia.Remote != addrB || ib.Local != addrB || ib.Remote != addrA || ia.Mode != "redirect" {
		t.Errorf("addresses: A %v → %v, B %v → %v", ia.Local, ia.Remote, ib.Local, ib.Remote)
	}
	c.client.Close()
	c.server.Close()
	c.wait(t)
}

func TestProxyPlainPeer(t *testing.T) {
	a := newSide(t, false)
	c := connect(t, a, nil, nil)
	exchange(t, c, pattern(1<<20, 3), pattern(1000, 4))
	if errA, _ := c.wait(t); errA != nil {
		t.Fatal(errA)
	}
	if ctr := a.proxy.Counters(); ctr.Plain != 1 || ctr.Encrypted != 0 || ctr.BytesOut != 1<<20 {
		t.Fatalf("counters %+v", ctr)
	}
}

func TestProxyResumption(t *testing.T) {
	a, b := newSide(t, true), newSide(t, true)
	for i := range 3 {
		c := connect(t, a, &b, nil)
		exchange(t, c, pattern(10000, byte(i)), pattern(20000, byte(i+1)))
		if errA, errB := c.wait(t); errA != nil || errB != nil {
			t.Fatalf("connection %d: %v / %v", i, errA, errB)
		}
	}
	ca, cb := a.proxy.Counters(), b.proxy.Counters()
	if ca.Resumed != 2 || cb.Resumed != 2 || ca.Encrypted != 3 {
		t.Fatalf("resumed %d / %d of %d", ca.Resumed, cb.Resumed, ca.Encrypted)
	}
}

// flipAfter is a wire relay that flips one bit of the byte at offset n.
func flipAfter(n int) func(dst, src net.Conn) {
	var once sync.Once
	return func(dst, src net.Conn) {
		buf := make([]byte, 4096)
		off := 0
		for {
			k, err := src.Read(buf)
			if k > 0 {
				if off <= n && n < off+k {
					once.Do(func() { buf[n-off] ^= 0x40 })
				}
				off += k
				if _, err := dst.Write(buf[:k]); err != nil {
					return
				}
			}
			if err != nil {
				if err == io.EOF {
					dst.(*net.TCPConn).CloseWrite()
				} else {
					dst.Close()
				}
				return
			}
		}
	}
}

func TestProxyTamper(t *testing.T) {
	a, b := newSide(t, false), newSide(t, false)
	c := connect(t, a, &b, flipAfter(5000))
	go c.client.Write(pattern(100000, 5))
	got, err := io.ReadAll(c.server)
	if err == nil || !isReset(err) {
		t.Fatalf("server read after tampering: %d bytes, err %v; want a reset", len(got), err)
	}
	if !bytes.Equal(got, pattern(100000, 5)[:len(got)]) {
		t.Fatal("tampered bytes reached the application")
	}
	c.wait(t)
	if b.proxy.Counters().Integrity+a.proxy.Counters().Integrity == 0 {
		t.Fatal("no integrity failure counted")
	}
}

// TestProxyResetPropagates: an application's reset reaches the other
// application as a reset, not an EOF.
func TestProxyResetPropagates(t *testing.T) {
	a, b := newSide(t, false), newSide(t, false)
	c := connect(t, a, &b, nil)
	c.client.Write([]byte("x"))
	io.ReadFull(c.server, make([]byte, 1))
	resetConn(c.client)
	c.server.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadAll(c.server)
	if !isReset(err) {
		t.Fatalf("server saw %v, want a reset", err)
	}
	c.wait(t)
}

// TestProxyTruncated: a wire leg that ends without FINp resets the
// application rather than giving it a clean EOF.
func TestProxyTruncated(t *testing.T) {
	a, b := newSide(t, false), newSide(t, false)
	cut := func(dst, src net.Conn) {
		io.CopyN(dst, src, 2000)
		dst.(*net.TCPConn).CloseWrite() // a clean TCP FIN, but no FINp
		io.Copy(io.Discard, src)
	}
	c := connect(t, a, &b, cut)
	go c.client.Write(pattern(100000, 6))
	_, err := io.ReadAll(c.server)
	if err == nil {
		t.Fatal("truncated stream ended cleanly at the application")
	}
	c.wait(t)
}

type loopDialer struct{}

func (loopDialer) DialContext(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", dst.String())
}

type failDialer struct{ err error }

func (f failDialer) DialContext(context.Context, netip.AddrPort) (net.Conn, error) { return nil, f.err }

func TestPrepareRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dst := addrPort(ln.Addr())
	ln.Close() // now refused
	s := newSide(t, false)
	d, err := s.proxy.Prepare(context.Background(), Flow{Dir: Outbound, Src: addrA, Dst: dst})
	if d != Refused || err == nil {
		t.Fatalf("decision %v, %v; want refused", d, err)
	}
	p, _ := NewProxy(Config{Hook: s.hook, Dialer: failDialer{&net.OpError{Op: "dial", Err: syscall.ETIMEDOUT}}})
	if d, _ := p.Prepare(context.Background(), Flow{Dir: Outbound, Src: addrA, Dst: dst}); d != Unreachable {
		t.Fatalf("decision %v, want unreachable", d)
	}
	if c := p.Counters(); c.Unreachable != 1 {
		t.Fatalf("counters %+v", c)
	}
}

// TestPrepareServe: a prepared outbound leg is paired with the
// redirected connection; the hook never saw the leg's SYN (loopback), so
// it is spliced plain.
func TestPrepareServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c) // echo
		c.Close()
	}()
	s := newSide(t, false)
	s.proxy.cfg.OutcomeTimeout = 50 * time.Millisecond
	f := Flow{Dir: Outbound, Src: addrA, Dst: addrPort(ln.Addr())}
	if d, err := s.proxy.Prepare(context.Background(), f); d != Redirect || err != nil {
		t.Fatalf("decision %v, %v", d, err)
	}
	app, redirected := tcpPair(t)
	done := make(chan error, 1)
	go func() { done <- s.proxy.Serve(context.Background(), redirected, f) }()
	msg := pattern(100000, 7)
	go func() { app.Write(msg); app.CloseWrite() }()
	got, err := io.ReadAll(app)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: %d bytes, %v", len(got), err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c := s.proxy.Counters(); c.Plain != 1 || c.Unpaired != 0 {
		t.Fatalf("counters %+v", c)
	}
}

func TestCloseAll(t *testing.T) {
	a, b := newSide(t, false), newSide(t, false)
	c := connect(t, a, &b, nil)
	c.client.Write([]byte("x"))
	io.ReadFull(c.server, make([]byte, 1))
	a.proxy.CloseAll()
	c.client.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadAll(c.client)
	// Under wine the application sees a FIN here (its SO_LINGER 0 on a
	// socket another thread reads from); on Linux, a reset.
	if !isReset(err) && (runtime.GOOS != "windows" || err != nil) {
		t.Fatalf("client saw %v after CloseAll, want a reset", err)
	}
	if n := a.proxy.Counters().Aborted; n != 1 {
		t.Errorf("%d connections aborted, want 1", n)
	}
	c.wait(t)
	if _, err := a.proxy.Prepare(context.Background(), Flow{Dir: Outbound, Src: addrA, Dst: addrB}); err == nil {
		t.Fatal("Prepare after CloseAll succeeded")
	}
}

// TestPrepareMaxPending: past MaxPending prepared flows, Prepare answers
// Bypass without dialling; claiming a leg makes room again.
func TestPrepareMaxPending(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	s := newSide(t, false)
	s.proxy.cfg.MaxPending = 1
	f1 := Flow{Dir: Outbound, Src: addrA, Dst: addrPort(ln.Addr())}
	f2 := Flow{Dir: Outbound, Src: netip.MustParseAddrPort("10.0.0.1:40001"), Dst: f1.Dst}
	if d, err := s.proxy.Prepare(context.Background(), f1); d != Redirect {
		t.Fatalf("first: %v %v", d, err)
	}
	if d, err := s.proxy.Prepare(context.Background(), f2); d != Bypass || err == nil {
		t.Fatalf("second: %v %v, want bypass", d, err)
	}
	app, redirected := tcpPair(t)
	done := make(chan error, 1)
	go func() { done <- s.proxy.Serve(context.Background(), redirected, f1) }()
	app.Close()
	<-done
	if d, err := s.proxy.Prepare(context.Background(), f2); d != Redirect {
		t.Fatalf("after the first was claimed: %v %v", d, err)
	}
	if c := s.proxy.Counters(); c.Overloaded != 1 {
		t.Fatalf("counters %+v", c)
	}
	s.proxy.CloseAll()
	if n := s.proxy.preparing.Load(); n != 0 {
		t.Fatalf("%d flows still counted as preparing after CloseAll", n)
	}
}

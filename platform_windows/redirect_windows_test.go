package platform_windows

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"tcpinc.dev/tcpinc/core"
)

// newRedirectBackend is a Redirect whose proxy sockets live in the test
// host's gVisor stack (on Windows they are the host's own sockets): its
// listener receives the reflected connections, its dialer's SYNs are
// captured by the same handle as any of the host's packets.
func newRedirectBackend(c Config, h *e2eHost) (core.Backend, error) {
	r, err := NewRedirect(c)
	if err != nil {
		return nil, err
	}
	r.listen = func(network string, port uint16) (net.Listener, error) {
		proto := ipv4.ProtocolNumber
		if network == "tcp6" {
			proto = ipv6.ProtocolNumber
		}
		var wq waiter.Queue
		ep, terr := h.stack.NewEndpoint(tcp.ProtocolNumber, proto, &wq)
		if terr != nil {
			return nil, fmt.Errorf("endpoint: %s", terr)
		}
		if proto == ipv6.ProtocolNumber {
			ep.SocketOptions().SetV6Only(true)
		}
		if terr := ep.Bind(tcpip.FullAddress{NIC: 1, Port: port}); terr != nil {
			ep.Close()
			return nil, fmt.Errorf("bind: %s", terr)
		}
		if terr := ep.Listen(64); terr != nil {
			ep.Close()
			return nil, fmt.Errorf("listen: %s", terr)
		}
		return &lingerListener{ep: ep, wq: &wq, port: port, closed: make(chan struct{})}, nil
	}
	r.dial = func(ctx context.Context, network string, localPort uint16, dst netip.AddrPort) (net.Conn, error) {
		proto := ipv4.ProtocolNumber
		if network == "tcp6" {
			proto = ipv6.ProtocolNumber
		}
		return dialLinger(ctx, h.stack, localPort, dst, proto)
	}
	return r, nil
}

func newRedirectE2E(t *testing.T, bDivert bool) *e2eNet {
	mkB := newDivertBackend
	if !bDivert {
		mkB = nil
	}
	return newMixedE2E(t, newRedirectBackend, mkB)
}

// newMixedE2E runs the given backends on A and B (nil: none).
func newMixedE2E(t *testing.T, mkA, mkB func(Config, *e2eHost) (core.Backend, error)) *e2eNet {
	n := newHosts(t)
	if mkA != nil {
		n.startBackend(n.a, 1, mkA)
	}
	if mkB != nil {
		n.startBackend(n.b, 1, mkB)
	}
	n.startPumps()
	return n
}

func red(h *e2eHost) *Redirect { return h.backend.(*Redirect) }

// TestRedirectEndToEnd: A runs redirect mode, B divert mode. A's
// application connects to B; the connection is reflected into A's proxy,
// whose wire leg negotiates ENO through the hook and speaks tcpcrypt as a
// stream with B's packet engine. The application sees its own 4-tuple,
// the data arrives intact both ways, the wire never carries it in clear,
// and both ends agree on the session ID.
func TestRedirectEndToEnd(t *testing.T) {
	n := newRedirectE2E(t, true)
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("ipv6=%v", v6), func(t *testing.T) {
			c, s := n.dial(v6, 7300+uint16(b2i(v6)))
			n.secretExchange(t, c, s, fmt.Sprintf("REDIRECTED-SECRET-%v-", v6), 128<<10, 32<<10)
			// The application's 4-tuple is its own: the reflection is
			// invisible to it.
			la, ra := addrPort(c, true), addrPort(c, false)
			if ra.Port() != 7300+uint16(b2i(v6)) {
				t.Errorf("the application is connected to %v", ra)
			}
			ci, ok := n.a.backend.Lookup(la, ra)
			if !ok || ci.State != "encrypted" || len(ci.SessionID) == 0 || ci.Mode != core.ModeRedirect {
				t.Fatalf("A's view of %v→%v: %+v %v", la, ra, ci, ok)
			}
			found := false
			for _, cb := range n.b.backend.Conns() {
				if bytes.Equal(cb.SessionID, ci.SessionID) && cb.State == "encrypted" {
					found = true
				}
			}
			if !found {
				t.Errorf("B has no encrypted connection with session ID %x", ci.SessionID)
			}
		})
	}
	halfClose(t, n, 7302)
	st := red(n.a).Snapshot()
	if st.Redirected < 2 || st.Reflected[0] == 0 || st.Reflected[1] == 0 || st.Hook.Enabled < 2 || st.Proxy.Encrypted < 2 {
		t.Errorf("A's counters: %+v", st)
	}
	if st.Unknown != 0 || st.SendErrors != 0 || st.NoOrigDst != 0 {
		t.Errorf("A's error counters: unknown %d send errors %d no original destination %d", st.Unknown, st.SendErrors, st.NoOrigDst)
	}
	t.Logf("A: held %d, reflected %v, hook packets %d, passed %d", st.Held, st.Reflected, st.HookPackets, st.Passed)
}

// TestRedirectPlainPeer: B runs nothing: the proxy's wire leg ends up
// plain and the legs are spliced.
func TestRedirectPlainPeer(t *testing.T) {
	n := newRedirectE2E(t, false)
	c, s := n.dial(false, 7400)
	marker := []byte("plain-through-the-proxy-")
	transfer(t, c, s, marker, 32<<10)
	halfClose(t, n, 7401)
	if !n.wireContains(marker) {
		t.Error("a plain connection's data should cross the wire as it is")
	}
	st := red(n.a).Snapshot()
	if st.Proxy.Plain != 2 || st.Proxy.Encrypted != 0 || st.Redirected != 2 {
		t.Errorf("proxy plain %d encrypted %d redirected %d", st.Proxy.Plain, st.Proxy.Encrypted, st.Redirected)
	}
}

// TestRedirectRefused: a connection to a closed port is refused, as it
// would be without tcpinc (the held SYN is released to meet B's RST),
// not accepted and then closed.
func TestRedirectRefused(t *testing.T) {
	n := newRedirectE2E(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := gonet.DialContextTCP(ctx, n.a.stack, tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFromSlice(n.b.addr4.AsSlice()), Port: 7999}, ipv4.ProtocolNumber)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("dial to a closed port: %v, want connection refused", err)
	}
	if st := red(n.a).Snapshot(); st.Released != 1 || st.Redirected != 0 {
		t.Errorf("released %d redirected %d", st.Released, st.Redirected)
	}
}

// TestRedirectExcluded: an excluded port is not proxied.
func TestRedirectExcluded(t *testing.T) {
	n := newRedirectE2E(t, true)
	p := core.DefaultPolicy()
	p.ExcludePorts = []uint16{7500}
	if err := n.a.backend.Apply(p); err != nil {
		t.Fatal(err)
	}
	c, s := n.dial(false, 7500)
	transfer(t, c, s, []byte("excluded-"), 4<<10)
	if st := red(n.a).Snapshot(); st.Redirected != 0 || st.Released != 1 || st.FastPath == 0 {
		t.Errorf("redirected %d released %d fast path %d", st.Redirected, st.Released, st.FastPath)
	}
}

// TestRedirectInbound: B runs redirect mode and serves; A (divert mode)
// connects to it. B's backend holds the peer's SYN while its proxy
// connects to the local server, then redirects the connection to its
// inbound listener; the hook answers the peer's ENO in the SYN-ACK.
func TestRedirectInbound(t *testing.T) {
	n := newMixedE2E(t, newDivertBackend, newRedirectBackend)
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("ipv6=%v", v6), func(t *testing.T) {
			port := 7800 + uint16(b2i(v6))
			c, s := n.dial(v6, port)
			n.secretExchange(t, c, s, fmt.Sprintf("INBOUND-SECRET-%v-", v6), 96<<10, 32<<10)
			la, ra := addrPort(c, true), addrPort(c, false)
			ca, okA := encryptedConn(n.a.backend, la, ra)
			cb, okB := n.b.backend.Lookup(ra, la)
			if !okA || !okB || cb.State != "encrypted" || !bytes.Equal(ca.SessionID, cb.SessionID) {
				t.Fatalf("A: %+v %v; B: %+v %v", ca, okA, cb, okB)
			}
		})
	}
	st := red(n.b).Snapshot()
	if st.Redirected < 2 || st.Proxy.Encrypted < 2 || st.Foreign != 0 || st.Unknown != 0 {
		t.Errorf("B's counters: %+v", st)
	}
}

// TestRedirectBothEnds: both hosts in redirect mode: A's outbound
// reflection meets B's inbound redirection.
func TestRedirectBothEnds(t *testing.T) {
	n := newMixedE2E(t, newRedirectBackend, newRedirectBackend)
	c, s := n.dial(false, 7900)
	n.secretExchange(t, c, s, "BOTH-ENDS-SECRET-", 64<<10, 16<<10)
	ci, ok := n.a.backend.Lookup(addrPort(c, true), addrPort(c, false))
	if !ok || ci.State != "encrypted" {
		t.Fatalf("A: %+v %v", ci, ok)
	}
	found := false
	for _, cb := range n.b.backend.Conns() {
		found = found || (cb.State == "encrypted" && bytes.Equal(cb.SessionID, ci.SessionID))
	}
	if !found {
		t.Error("B has no encrypted connection with A's session ID")
	}
}

// TestRedirectInboundClosedPort: a peer's connection to a port nobody
// listens on is refused by the host's own stack, as without tcpinc.
func TestRedirectInboundClosedPort(t *testing.T) {
	n := newMixedE2E(t, newDivertBackend, newRedirectBackend)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := gonet.DialContextTCP(ctx, n.a.stack, tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFromSlice(n.b.addr4.AsSlice()), Port: 7998}, ipv4.ProtocolNumber)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("dial to a closed port: %v, want connection refused", err)
	}
	if st := red(n.b).Snapshot(); st.Held != 1 || st.Released != 1 || st.Redirected != 0 {
		t.Errorf("held %d released %d redirected %d", st.Held, st.Released, st.Redirected)
	}
}

// halfClose sends a request, half-closes, and reads the answer the other
// end sends after reading the request to its end: the half-close must
// cross the proxy as a half-close.
func halfClose(t *testing.T, n *e2eNet, port uint16) {
	t.Helper()
	c, s := n.dial(false, port)
	req := bytes.Repeat([]byte("request-"), 4096)
	go func() {
		c.Write(req)
		c.(interface{ CloseWrite() error }).CloseWrite()
	}()
	s.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, req) {
		t.Fatalf("request: %d bytes, %v", len(got), err)
	}
	s.Write([]byte("answer"))
	s.Close()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if ans, err := io.ReadAll(c); err != nil || string(ans) != "answer" {
		t.Fatalf("answer after half-close: %q, %v", ans, err)
	}
}

// lingerConn is a gVisor connection that, like a Windows socket, resets
// the connection on Close after SetLinger(0), which the proxy relies on.
type lingerConn struct {
	*gonet.TCPConn
	ep tcpip.Endpoint
}

func (c *lingerConn) SetLinger(sec int) error {
	c.ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: sec >= 0, Timeout: time.Duration(max(sec, 0)) * time.Second})
	return nil
}

func dialLinger(ctx context.Context, s *stack.Stack, localPort uint16, dst netip.AddrPort, proto tcpip.NetworkProtocolNumber) (net.Conn, error) {
	var wq waiter.Queue
	ep, terr := s.NewEndpoint(tcp.ProtocolNumber, proto, &wq)
	if terr != nil {
		return nil, fmt.Errorf("endpoint: %s", terr)
	}
	entry, ready := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	if terr := ep.Bind(tcpip.FullAddress{NIC: 1, Port: localPort}); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("bind: %s", terr)
	}
	terr = ep.Connect(tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFromSlice(dst.Addr().AsSlice()), Port: dst.Port()})
	if _, started := terr.(*tcpip.ErrConnectStarted); started {
		select {
		case <-ctx.Done():
			ep.Close()
			return nil, ctx.Err()
		case <-ready:
		}
		terr = ep.LastError()
	}
	if terr != nil {
		ep.Close()
		return nil, fmt.Errorf("connect %v: %s", dst, terr)
	}
	return &lingerConn{TCPConn: gonet.NewTCPConn(&wq, ep), ep: ep}, nil
}

// lingerListener accepts lingerConns.
type lingerListener struct {
	ep     tcpip.Endpoint
	wq     *waiter.Queue
	port   uint16
	once   sync.Once
	closed chan struct{}
}

func (l *lingerListener) Accept() (net.Conn, error) {
	entry, ready := waiter.NewChannelEntry(waiter.ReadableEvents)
	l.wq.EventRegister(&entry)
	defer l.wq.EventUnregister(&entry)
	for {
		n, wq, terr := l.ep.Accept(nil)
		if terr == nil {
			return &lingerConn{TCPConn: gonet.NewTCPConn(wq, n), ep: n}, nil
		}
		if _, block := terr.(*tcpip.ErrWouldBlock); !block {
			return nil, fmt.Errorf("accept: %s", terr)
		}
		select {
		case <-l.closed:
			return nil, net.ErrClosed
		case <-ready:
		}
	}
}

func (l *lingerListener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.ep.Close()
	})
	return nil
}

func (l *lingerListener) Addr() net.Addr { return &net.TCPAddr{Port: int(l.port)} }

// TestRedirectStopResets: stopping a redirect backend resets the proxied
// connections at both ends (the reset to the application is reflected
// like the rest of the proxy's packets) instead of leaving them to
// continue in clear.
func TestRedirectStopResets(t *testing.T) {
	n := newRedirectE2E(t, true)
	c, s := n.dial(false, 7350)
	transfer(t, c, s, []byte("before-stop-"), 16<<10)
	if err := n.stop(n.a); err != nil {
		t.Fatalf("Run: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Read(make([]byte, 10)); err == nil || isTimeout(err) {
		t.Errorf("A's application after the stop: %v, want a reset", err)
	}
	s.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := s.Read(make([]byte, 10)); err == nil || isTimeout(err) {
		t.Errorf("B's server after the stop: %v, want a reset", err)
	}
	n.noPlaintextAfterStop(t, c, "AFTER-REDIRECT-STOP-")
}

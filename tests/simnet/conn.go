package simnet

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
)

var errClosed = errors.New("simnet: network closed")

// listener is a gonet listener whose Close also unblocks Accept.
type listener struct {
	*gonet.TCPListener
	net       *Network
	closeOnce sync.Once
}

func (l *listener) Close() error {
	l.closeOnce.Do(func() {
		n := l.net
		n.lnMu.Lock()
		for i, x := range n.listeners {
			if x == l {
				n.listeners = append(n.listeners[:i], n.listeners[i+1:]...)
				break
			}
		}
		n.lnMu.Unlock()
		l.TCPListener.Shutdown()
		l.TCPListener.Close()
	})
	return nil
}

// Listen opens a TCP listener on host h, port port (0 picks one), on both
// IPv4 and IPv6 (IPv4 peers appear as IPv4-mapped addresses). The network
// closes it when it closes.
func (n *Network) Listen(h HostID, port uint16) (net.Listener, error) {
	if n.closed.Load() {
		return nil, errClosed
	}
	gl, err := gonet.ListenTCP(n.hosts[h].stack, tcpip.FullAddress{NIC: nicID, Port: port}, ipv6.ProtocolNumber)
	if err != nil {
		return nil, fmt.Errorf("simnet: listen on %v port %d: %w", h, port, err)
	}
	l := &listener{TCPListener: gl, net: n}
	n.lnMu.Lock()
	n.listeners = append(n.listeners, l)
	n.lnMu.Unlock()
	return l, nil
}

// Dial opens a TCP connection from host from to addr. It gives up after
// two minutes of real time; in simulated time the stack's own SYN
// retransmission limit applies.
func (n *Network) Dial(from HostID, to netip.AddrPort) (net.Conn, error) {
	if n.closed.Load() {
		return nil, errClosed
	}
	proto := ipv4.ProtocolNumber
	if to.Addr().Is6() && !to.Addr().Is4In6() {
		proto = ipv6.ProtocolNumber
	}
	ctx, cancel := context.WithTimeout(context.Background(), realTimeout)
	defer cancel()
	addr := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(to.Addr().Unmap().AsSlice()), Port: to.Port()}
	c, err := gonet.DialContextTCP(ctx, n.hosts[from].stack, addr, proto)
	if err != nil {
		return nil, fmt.Errorf("simnet: dial %v -> %v: %w", from, to, err)
	}
	return c, nil
}

// Pair opens one connection from A to B over IPv4 or IPv6 on a fresh port
// and returns both ends: a is A's (the active opener), b is B's.
func (n *Network) Pair(ipv6 bool) (a, b net.Conn, err error) {
	port := uint16(n.nextPort.Add(1))
	ln, err := n.Listen(B, port)
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	a, err = n.Dial(A, netip.AddrPortFrom(n.Addr(B, ipv6), port))
	if err != nil {
		ln.Close()
		if r := <-ch; r.c != nil {
			r.c.Close()
		}
		return nil, nil, err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			a.Close()
			return nil, nil, fmt.Errorf("simnet: accept: %w", r.err)
		}
		return a, r.c, nil
	case <-time.After(realTimeout):
		a.Close()
		ln.Close()
		<-ch
		return nil, nil, errors.New("simnet: accept timed out")
	}
}

// MustPair is Pair that fails the test on error.
func (n *Network) MustPair(t testing.TB, ipv6 bool) (a, b net.Conn) {
	t.Helper()
	a, b, err := n.Pair(ipv6)
	if err != nil {
		t.Fatalf("%v (%s; %s)", err, n.ReplayHint(), n.describe())
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TransferSpec describes a Transfer.
type TransferSpec struct {
	AtoB, BtoA int64 // bytes each way; both flow at the same time
	IPv6       bool
	// Timeout bounds the transfer in real time (default two minutes).
	Timeout time.Duration
}

// TransferResult reports a verified transfer.
type TransferResult struct {
	AtoB, BtoA  int64
	Real        time.Duration // wall-clock time
	Sim         time.Duration // simulated time
	Retransmits uint64        // segments both stacks retransmitted
}

// Transfer opens a connection from A to B, sends spec.AtoB and spec.BtoA
// pseudo-random bytes (derived from the network's seed) at the same time,
// half-closes each side when it is done, and verifies that each side
// received exactly the bytes sent (length and SHA-256). It fails the test,
// with the seed, on any error.
func (n *Network) Transfer(t testing.TB, spec TransferSpec) TransferResult {
	t.Helper()
	a, b, err := n.Pair(spec.IPv6)
	if err != nil {
		t.Fatalf("%v (%s; %s)", err, n.ReplayHint(), n.describe())
	}
	defer a.Close()
	defer b.Close()
	retx0 := n.retransmits()
	start, sim0 := time.Now(), n.Elapsed()
	if err := Exchange(a, b, spec.AtoB, spec.BtoA, n.seed, spec.Timeout); err != nil {
		t.Fatalf("transfer %d B A->B, %d B B->A (ipv6=%v): %v (%s; %s)",
			spec.AtoB, spec.BtoA, spec.IPv6, err, n.ReplayHint(), n.describe())
	}
	return TransferResult{AtoB: spec.AtoB, BtoA: spec.BtoA, Real: time.Since(start),
		Sim: n.Elapsed() - sim0, Retransmits: n.retransmits() - retx0}
}

func (n *Network) retransmits() uint64 {
	var r uint64
	for _, h := range n.hosts {
		r += h.stack.Stats().TCP.Retransmits.Value()
	}
	return r
}

// Exchange sends aToB pseudo-random bytes from a to b and bToA from b to a
// concurrently over two connected net.Conns, half-closing each writer at
// the end, and verifies length and SHA-256 of what each side reads up to
// EOF. The bytes are derived from seed. The conns must support
// CloseWrite. timeout (0: two minutes) bounds the exchange in real time.
func Exchange(a, b net.Conn, aToB, bToA int64, seed uint64, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = realTimeout
	}
	deadline := time.Now().Add(timeout)
	for _, c := range []net.Conn{a, b} {
		if err := c.SetDeadline(deadline); err != nil {
			return err
		}
	}
	type result struct {
		what string
		n    int64
		sum  [sha256.Size]byte
		err  error
	}
	results := make(chan result, 4)
	send := func(what string, c net.Conn, n int64, stream uint64) {
		h := sha256.New()
		w := io.MultiWriter(c, h)
		m, err := io.Copy(w, io.LimitReader(dataStream(seed, stream), n))
		if err == nil {
			err = closeWrite(c)
		}
		var r result
		r.what, r.n, r.err = what, m, err
		h.Sum(r.sum[:0])
		results <- r
	}
	recv := func(what string, c net.Conn) {
		h := sha256.New()
		m, err := io.Copy(h, c)
		var r result
		r.what, r.n, r.err = what, m, err
		h.Sum(r.sum[:0])
		results <- r
	}
	go send("send A->B", a, aToB, 1)
	go send("send B->A", b, bToA, 2)
	go recv("recv A->B", b)
	go recv("recv B->A", a)
	got := make(map[string]result, 4)
	var errs []error
	for range 4 {
		r := <-results
		got[r.what] = r
		if r.err != nil && len(errs) == 0 {
			// Unblock the others: the first error is the interesting one.
			a.SetDeadline(time.Now())
			b.SetDeadline(time.Now())
		}
		if r.err != nil {
			errs = append(errs, fmt.Errorf("%s after %d bytes: %w", r.what, r.n, r.err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, dir := range []string{"A->B", "B->A"} {
		s, r := got["send "+dir], got["recv "+dir]
		if s.n != r.n || s.sum != r.sum {
			return fmt.Errorf("%s: sent %d bytes (sha256 %x), received %d bytes (sha256 %x)", dir, s.n, s.sum, r.n, r.sum)
		}
	}
	return nil
}

func closeWrite(c net.Conn) error {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return fmt.Errorf("simnet: %T has no CloseWrite", c)
	}
	return cw.CloseWrite()
}

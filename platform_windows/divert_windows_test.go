package platform_windows

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/packet"
)

// The end-to-end tests put two gVisor TCP stacks (real TCP) on either side
// of a simulated wire and run a Divert backend for each host on the
// stand-in WinDivert.dll. The test plays the driver: a packet the host's
// stack sends is "captured" by the host's handle whose filter matches it
// (evaluated with the filter evaluator), as an outbound packet; what the
// backend injects outbound crosses the wire to the other host (captured
// there as inbound, or delivered straight to its stack when it runs no
// backend); what it injects inbound goes into its own stack.

const (
	ifA = 11 // the interface index of each host's captured packets
	ifB = 22
)

type e2eHost struct {
	name  string
	stack *stack.Stack
	ep    *channel.Endpoint
	addr4 netip.Addr
	addr6 netip.Addr
	ifIdx uint32

	backend core.Backend
	runErr  chan error
	hmu     sync.Mutex
	pumps   sync.WaitGroup // taking what the backend injects
	hs      []windows.Handle
	filters []evalNode
	open    atomic.Bool // the backend's handles are open
}

type e2eNet struct {
	t    *testing.T
	m    *mock
	a, b *e2eHost

	mu       sync.Mutex
	wire     [][]byte // every packet that crossed the wire
	failures []string // checks that failed on pump goroutines
	badIf    atomic.Int64
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

func newStack(t *testing.T, name string, v4, v6 string, ifIdx uint32) *e2eHost {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
		// A connection to the host's own address stays inside it, as
		// on Windows (which WinDivert calls loopback and never captures).
		HandleLocal: true,
	})
	h := &e2eHost{name: name, stack: s, ep: channel.New(1024, 1500, ""), ifIdx: ifIdx,
		addr4: netip.MustParseAddr(v4), addr6: netip.MustParseAddr(v6)}
	if err := s.CreateNIC(1, h.ep); err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		proto tcpip.NetworkProtocolNumber
		addr  netip.Addr
		bits  int
	}{{ipv4.ProtocolNumber, h.addr4, 24}, {ipv6.ProtocolNumber, h.addr6, 64}} {
		pa := tcpip.ProtocolAddress{Protocol: a.proto, AddressWithPrefix: tcpip.AddressWithPrefix{
			Address: tcpip.AddrFromSlice(a.addr.AsSlice()), PrefixLen: a.bits}}
		if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
			t.Fatal(err)
		}
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: 1}, {Destination: header.IPv6EmptySubnet, NIC: 1}})
	return h
}

// newHosts builds the two hosts without backends.
func newHosts(t *testing.T) *e2eNet {
	m := loadMock(t)
	n := &e2eNet{t: t, m: m,
		a: newStack(t, "A", "10.99.0.1", "fd00::1", ifA),
		b: newStack(t, "B", "10.99.0.2", "fd00::2", ifB)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	t.Cleanup(n.close)
	return n
}

// newE2E builds the two hosts; withB says whether B runs a backend.
func newE2E(t *testing.T, withB bool, workers int) *e2eNet {
	n := newHosts(t)
	n.startBackend(n.a, workers, newDivertBackend)
	if withB {
		n.startBackend(n.b, workers, newDivertBackend)
	}
	n.startPumps()
	return n
}

func (n *e2eNet) startPumps() {
	for _, h := range []*e2eHost{n.a, n.b} {
		n.wg.Go(func() { n.pumpStack(h) })
	}
}

func newDivertBackend(c Config, _ *e2eHost) (core.Backend, error) { return NewDivert(c) }

// div is a host's divert backend.
func div(h *e2eHost) *Divert { return h.backend.(*Divert) }

func (n *e2eNet) fail(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.failures) < 20 {
		n.failures = append(n.failures, fmt.Sprintf(format, args...))
	}
}

func (n *e2eNet) startBackend(h *e2eHost, workers int, mk func(Config, *e2eHost) (core.Backend, error)) {
	t := n.t
	before := n.m.openHandles()
	d, err := mk(Config{DLLPath: n.m.path, Workers: workers, Policy: core.DefaultPolicy(),
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})).With("host", h.name)}, h)
	if err != nil {
		t.Fatal(err)
	}
	h.backend = d
	h.runErr = make(chan error, 1)
	go func() { h.runErr <- d.Run(n.ctx) }()
	n.addHandles(h, before, workers)
	h.open.Store(true)
}

// addHandles waits for want handles that were not open before to appear,
// and starts taking what the backend injects on them.
func (n *e2eNet) addHandles(h *e2eHost, before []windows.Handle, want int) {
	t := n.t
	deadline := time.Now().Add(10 * time.Second)
	var fresh []windows.Handle
	for {
		fresh = fresh[:0]
		for _, x := range n.m.openHandles() {
			if !slices.Contains(before, x) {
				fresh = append(fresh, x)
			}
		}
		if len(fresh) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d handles opened", h.name, len(fresh), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, x := range fresh {
		f, err := parseFilter(n.m.filterOf(x))
		if err != nil {
			t.Fatalf("%s: filter %q: %v", h.name, n.m.filterOf(x), err)
		}
		h.hmu.Lock()
		h.hs = append(h.hs, x)
		h.filters = append(h.filters, f)
		h.hmu.Unlock()
		h.pumps.Go(func() { n.pumpHandle(h, x) })
	}
}

// stop stops h's backend and waits for Run to return and for what it
// injected on the way out to reach the stacks (as SendEx's completion
// means on Windows).
func (n *e2eNet) stop(h *e2eHost) error {
	h.backend.Close()
	err := <-h.runErr
	h.open.Store(false)
	h.pumps.Wait()
	return err
}

func (n *e2eNet) close() {
	for _, h := range []*e2eHost{n.a, n.b} {
		if h.backend != nil && h.open.Load() {
			n.stop(h)
		}
	}
	n.cancel()
	n.wg.Wait()
	n.a.pumps.Wait()
	n.b.pumps.Wait()
	n.a.stack.Close()
	n.b.stack.Close()
	n.a.stack.Wait()
	n.b.stack.Wait()
	for _, f := range n.failures {
		n.t.Error(f)
	}
}

func (n *e2eNet) other(h *e2eHost) *e2eHost {
	if h == n.a {
		return n.b
	}
	return n.a
}

// capture hands pkt to the handle of h whose filter matches it, as the
// driver would, and reports whether one did.
func (n *e2eNet) capture(h *e2eHost, pkt []byte, outbound bool) bool {
	if !h.open.Load() {
		return false
	}
	ep := evalPacket{}
	pk, err := packet.Parse(pkt)
	if err == nil && pk.HasTCP() {
		ep = evalPacket{tcp: true, outbound: outbound, src: pk.SrcAddr(), dst: pk.DstAddr(), sport: pk.TCP().SrcPort(), dport: pk.TCP().DstPort()}
	} else {
		return false
	}
	h.hmu.Lock()
	hs, filters := h.hs, h.filters
	h.hmu.Unlock()
	for i, f := range filters {
		if !f(&ep) {
			continue
		}
		var a Address
		a.SetOutbound(outbound)
		a.SetIPv6(pk.Version() == 6)
		a.SetInterface(h.ifIdx, 0)
		// Outbound packets look offloaded (the NIC would compute the
		// checksums); inbound ones were checked.
		a.SetIPChecksum(!outbound)
		a.SetTCPChecksum(!outbound)
		r, _, _ := n.m.queueRecv.Call(uintptr(hs[i]), uintptr(unsafe.Pointer(&pkt[0])), uintptr(len(pkt)), uintptr(unsafe.Pointer(&a)))
		return r != 0
	}
	return false
}

// pumpStack moves h's stack's outbound packets to its backend, or
// straight onto the wire when no handle captures them.
func (n *e2eNet) pumpStack(h *e2eHost) {
	for {
		pb := h.ep.ReadContext(n.ctx)
		if pb == nil {
			return
		}
		var b []byte
		for _, s := range pb.AsSlices() {
			b = append(b, s...)
		}
		pb.DecRef()
		if !n.capture(h, b, true) {
			n.toWire(h, b)
		}
	}
}

// pumpHandle takes what h's backend injects on one handle.
func (n *e2eNet) pumpHandle(h *e2eHost, x windows.Handle) {
	buf := make([]byte, MTUMax)
	for n.ctx.Err() == nil {
		var a Address
		r, _, _ := n.m.takeSent.Call(uintptr(x), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(unsafe.Pointer(&a)), 50)
		if int32(r) < 0 {
			return // the handle was closed
		}
		if r == 0 {
			continue
		}
		pkt := slices.Clone(buf[:r])
		pk, err := packet.Parse(pkt)
		if err != nil || !pk.HasTCP() {
			n.fail("%s injected a packet that does not parse: %v", h.name, err)
			continue
		}
		// The flags say "valid checksum": WinDivert then sends the
		// packet as it is, so it had better be.
		if a.TCPChecksum() && !pk.VerifyTCPChecksum() {
			n.fail("%s injected a packet flagged with a valid TCP checksum that is wrong", h.name)
		}
		if pk.Version() == 4 && a.IPChecksum() && !pk.IPv4().VerifyChecksum() {
			n.fail("%s injected a packet flagged with a valid IPv4 checksum that is wrong", h.name)
		}
		if a.Outbound() {
			n.toWire(h, pkt)
			continue
		}
		if idx, _ := a.Interface(); idx != h.ifIdx {
			n.badIf.Add(1)
		}
		n.deliver(h, pkt)
	}
}

// toWire carries a packet from h to the other host.
func (n *e2eNet) toWire(from *e2eHost, pkt []byte) {
	n.mu.Lock()
	n.wire = append(n.wire, slices.Clone(pkt))
	n.mu.Unlock()
	to := n.other(from)
	if !n.capture(to, pkt, false) {
		n.deliver(to, pkt)
	}
}

func (n *e2eNet) deliver(h *e2eHost, pkt []byte) {
	proto := ipv4.ProtocolNumber
	if pkt[0]>>4 == 6 {
		proto = ipv6.ProtocolNumber
	}
	pb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(pkt)})
	h.ep.InjectInbound(proto, pb)
	pb.DecRef()
}

func (n *e2eNet) wireContains(marker []byte) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.wire {
		if bytes.Contains(p, marker) {
			return true
		}
	}
	return false
}

// dial connects A to B's port over IPv4 or IPv6 and returns both ends.
func (n *e2eNet) dial(v6 bool, port uint16) (client, server net.Conn) {
	t := n.t
	proto, baddr := ipv4.ProtocolNumber, n.b.addr4
	if v6 {
		proto, baddr = ipv6.ProtocolNumber, n.b.addr6
	}
	ln, err := gonet.ListenTCP(n.b.stack, tcpip.FullAddress{NIC: 1, Port: port}, proto)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	ctx, cancel := context.WithTimeout(n.ctx, 20*time.Second)
	defer cancel()
	c, err := gonet.DialContextTCP(ctx, n.a.stack, tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFromSlice(baddr.AsSlice()), Port: port}, proto)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// transfer sends size bytes holding marker from c to s and checks them.
func transfer(t *testing.T, c, s net.Conn, marker []byte, size int) {
	data := bytes.Repeat(marker, size/len(marker))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		errc <- err
	}()
	s.SetReadDeadline(time.Now().Add(60 * time.Second))
	got := make([]byte, len(data))
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatalf("reading: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data differs")
	}
	if err := <-errc; err != nil {
		t.Fatalf("writing: %v", err)
	}
}

// secretExchange sends fwd bytes from c to s and back bytes from s to c,
// all repetitions of marker, and fails t if the marker crossed the wire
// in clear (the connection was to be encrypted).
func (n *e2eNet) secretExchange(t *testing.T, c, s net.Conn, marker string, fwd, back int) {
	t.Helper()
	m := []byte(marker)
	transfer(t, c, s, m, fwd)
	transfer(t, s, c, m, back)
	if n.wireContains(m) {
		t.Error("the plaintext crossed the wire")
	}
}

// noPlaintextAfterStop writes marker on c, A's application's end, after
// A's backend stopped, and fails t if it reaches the wire in clear.
func (n *e2eNet) noPlaintextAfterStop(t *testing.T, c net.Conn, marker string) {
	t.Helper()
	m := []byte(marker)
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.Write(bytes.Repeat(m, 100))
	time.Sleep(200 * time.Millisecond)
	if n.wireContains(m) {
		t.Error("plaintext left A after its backend stopped")
	}
}

func encryptedConn(d core.Backend, local, remote netip.AddrPort) (core.ConnInfo, bool) {
	ci, ok := d.Lookup(local, remote)
	return ci, ok && ci.State == "encrypted" && len(ci.SessionID) > 0
}

func addrPort(c net.Conn, local bool) netip.AddrPort {
	a := c.RemoteAddr()
	if local {
		a = c.LocalAddr()
	}
	return netip.MustParseAddrPort(a.String())
}

// TestDivertEndToEnd: two hosts, both running the backend with two
// workers each: IPv4 and IPv6 connections get encrypted, the wire never
// carries the plaintext, both ends report the same session ID.
func TestDivertEndToEnd(t *testing.T) {
	n := newE2E(t, true, 2)
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("ipv6=%v", v6), func(t *testing.T) {
			c, s := n.dial(v6, 7000+uint16(b2i(v6)))
			n.secretExchange(t, c, s, fmt.Sprintf("PLAINTEXT-MARKER-%v-", v6), 256<<10, 64<<10)
			la, ra := addrPort(c, true), addrPort(c, false)
			ca, okA := encryptedConn(n.a.backend, la, ra)
			cb, okB := encryptedConn(n.b.backend, ra, la)
			if !okA || !okB {
				t.Fatalf("not encrypted at both ends: %+v / %+v", ca, cb)
			}
			if !bytes.Equal(ca.SessionID, cb.SessionID) {
				t.Errorf("session IDs differ: %x / %x", ca.SessionID, cb.SessionID)
			}
			if ca.Role == cb.Role {
				t.Errorf("both ends have role %v", ca.Role)
			}
		})
	}
	ctrA := div(n.a).Snapshot()
	if ctrA.Engine.ConnsEncrypted < 2 || ctrA.ChecksumFixed == 0 || ctrA.Received == 0 || ctrA.SendErrors != 0 {
		t.Errorf("A's counters: %+v", ctrA)
	}
	if m := n.a.backend.Counters(); m["engine_conns_encrypted"] < 2 || m["injected_inbound"]+m["injected_outbound"] == 0 {
		t.Errorf("flattened counters: %v", m)
	}
	if n.badIf.Load() != 0 {
		t.Errorf("%d inbound injections carried the wrong interface", n.badIf.Load())
	}
	t.Logf("A: received %d packets in %d batches, injected %v, checksums fixed %d",
		ctrA.Received, ctrA.Batches, ctrA.Injected, ctrA.ChecksumFixed)
}

// TestDivertPlainPeer: B runs nothing; the connection stays plain and,
// after the handshake, A's packets take the fast path.
func TestDivertPlainPeer(t *testing.T) {
	n := newE2E(t, false, 1)
	c, s := n.dial(false, 7100)
	marker := []byte("plain-and-visible-")
	transfer(t, c, s, marker, 64<<10)
	if !n.wireContains(marker) {
		t.Error("a plain connection's data should cross the wire unchanged")
	}
	ctr := div(n.a).Snapshot()
	if ctr.PlainFlows != 1 || ctr.FastPath == 0 || ctr.Engine.ConnsPlain != 1 || ctr.Engine.ConnsEncrypted != 0 {
		t.Errorf("counters: plain flows %d, fast path %d, engine plain %d encrypted %d",
			ctr.PlainFlows, ctr.FastPath, ctr.Engine.ConnsPlain, ctr.Engine.ConnsEncrypted)
	}
	t.Logf("fast path: %d of %d packets", ctr.FastPath, ctr.Received)
}

// TestDivertAdoptsOlderConnections: a connection open before the capture
// started passes unchanged and moves to the fast path.
func TestDivertAdoptsOlderConnections(t *testing.T) {
	n := newHosts(t)
	n.startPumps()
	c, s := n.dial(false, 7600)
	transfer(t, c, s, []byte("before-"), 4<<10)
	n.startBackend(n.a, 1, newDivertBackend)
	transfer(t, c, s, []byte("after-"), 32<<10)
	transfer(t, s, c, []byte("back-"), 8<<10)
	st := div(n.a).Snapshot()
	if st.Adopted != 1 || st.FastPath == 0 || st.Engine.ConnsEncrypted != 0 {
		t.Errorf("adopted %d, fast path %d of %d, encrypted %d", st.Adopted, st.FastPath, st.Received, st.Engine.ConnsEncrypted)
	}
}

// TestDivertStopResets: stopping a backend resets its encrypted
// connections at both ends instead of letting them continue in clear.
func TestDivertStopResets(t *testing.T) {
	n := newE2E(t, true, 1)
	c, s := n.dial(false, 7200)
	marker := []byte("before-stop-")
	transfer(t, c, s, marker, 16<<10)
	la, ra := addrPort(c, true), addrPort(c, false)
	if _, ok := encryptedConn(n.a.backend, la, ra); !ok {
		t.Fatal("not encrypted")
	}
	if err := n.stop(n.a); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Both applications see the reset.
	for _, x := range []net.Conn{c, s} {
		x.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := x.Read(make([]byte, 10)); err == nil || errors.Is(err, io.EOF) || isTimeout(err) {
			t.Errorf("read on %v after A stopped: %v, want a reset", x.LocalAddr(), err)
		}
	}
	// A's application cannot send in clear any more.
	n.noPlaintextAfterStop(t, c, "AFTER-STOP-SECRET-")
	if got := div(n.a).Snapshot().Engine.AbortShutdown; got == 0 {
		t.Error("no connection counted as reset at shutdown")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestDivertNewErrors: NewDivert reports driver problems up front.
func TestDivertNewErrors(t *testing.T) {
	m := loadMock(t)
	m.openError(codeAccessDenied)
	if _, err := NewDivert(Config{DLLPath: m.path}); err == nil || !strings.Contains(err.Error(), "Administrator") {
		t.Errorf("not elevated: %v", err)
	}
	m.openError(0)
	m.version(1, 4)
	if _, err := NewDivert(Config{DLLPath: m.path}); err == nil || !strings.Contains(err.Error(), "needs 2.2") {
		t.Errorf("version 1.4: %v", err)
	}
	m.version(2, 1)
	var logs strings.Builder
	d, err := NewDivert(Config{DLLPath: m.path, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil || !strings.Contains(logs.String(), "older than the 2.2") {
		t.Errorf("version 2.1: %v, log %q", err, logs.String())
	}
	if d != nil {
		d.Close()
	}
	if _, err := NewDivert(Config{DLLPath: m.path, Workers: MaxWorkers + 1}); err == nil {
		t.Error("too many workers accepted")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestDivertApply: a policy applied while running leaves new connections
// on a newly excluded port plain (on the fast path) and keeps the others
// encrypted.
func TestDivertApply(t *testing.T) {
	n := newE2E(t, true, 1)
	p := core.DefaultPolicy()
	p.ExcludePorts = []uint16{7700}
	if err := n.a.backend.Apply(p); err != nil {
		t.Fatal(err)
	}
	if got := div(n.a).Policy(); len(got.ExcludePorts) != 1 {
		t.Errorf("policy in force: %+v", got)
	}
	c, s := n.dial(false, 7700)
	transfer(t, c, s, []byte("excluded-now-"), 16<<10)
	if !n.wireContains([]byte("excluded-now-")) {
		t.Error("the newly excluded port was encrypted")
	}
	c2, s2 := n.dial(false, 7701)
	transfer(t, c2, s2, []byte("still-secret-"), 16<<10)
	if n.wireContains([]byte("still-secret-")) {
		t.Error("another port lost its encryption")
	}
	st := div(n.a).Snapshot()
	if st.Engine.ConnsEncrypted != 1 || st.PlainFlows != 1 || st.FastPath == 0 {
		t.Errorf("encrypted %d, plain flows %d, fast path %d", st.Engine.ConnsEncrypted, st.PlainFlows, st.FastPath)
	}
	bad := core.Policy{ExcludeAddrs: []netip.Prefix{{}}}
	if err := n.a.backend.Apply(bad); err == nil {
		t.Error("an invalid policy was applied")
	}
}

// TestDivertApplyWidens: a port excluded at start is captured after an
// Apply that no longer excludes it, by a handle of its own, while the
// connections the first handles carry go on.
func TestDivertApplyWidens(t *testing.T) {
	n := newHosts(t)
	excl := core.DefaultPolicy()
	excl.ExcludePorts = []uint16{7950, 7952}
	n.startBackend(n.a, 2, func(c Config, _ *e2eHost) (core.Backend, error) {
		c.Policy = excl
		return NewDivert(c)
	})
	n.startBackend(n.b, 1, newDivertBackend)
	n.startPumps()
	c, s := n.dial(false, 7950)
	transfer(t, c, s, []byte("excluded-at-start-"), 8<<10)
	if !n.wireContains([]byte("excluded-at-start-")) {
		t.Fatal("the excluded port was encrypted")
	}
	c2, s2 := n.dial(false, 7951)
	transfer(t, c2, s2, []byte("secret-before-"), 8<<10)

	before := n.m.openHandles()
	if err := n.a.backend.Apply(core.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	n.addHandles(n.a, before, 1)
	c3, s3 := n.dial(false, 7952)
	transfer(t, c3, s3, []byte("SECRET-AFTER-APPLY-"), 16<<10)
	if n.wireContains([]byte("SECRET-AFTER-APPLY-")) {
		t.Error("the port the new policy captures is still sent in clear")
	}
	if _, ok := encryptedConn(n.a.backend, addrPort(c3, true), addrPort(c3, false)); !ok {
		t.Error("the new connection on the formerly excluded port is not encrypted")
	}
	// The connection of the first handles continues, encrypted.
	transfer(t, c2, s2, []byte("SECRET-STILL-"), 8<<10)
	if n.wireContains([]byte("SECRET-STILL-")) {
		t.Error("the older connection lost its encryption")
	}
	// A second widening of nothing opens nothing.
	if err := n.a.backend.Apply(core.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	if got := len(n.m.openHandles()) - len(before); got != 1 {
		t.Errorf("%d handles added, want 1", got)
	}
}

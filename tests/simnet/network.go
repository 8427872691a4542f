package simnet

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"tcpinc.dev/tcpinc/core/divert"
	"tcpinc.dev/tcpinc/core/packet"
)

const (
	nicID = 1
	// queueLen is the depth of each stack's outbound channel. The driver
	// drains it continuously; it only needs to absorb a burst of a full
	// congestion window.
	queueLen = 1 << 14
	// maxBatch bounds how many packets one Process call sees.
	maxBatch = 128
	// maxFree bounds the packet buffer free list.
	maxFree = 4096
	// stuckDeadlinePoll is how often (simulated) an engine whose
	// NextDeadline stays in the past is called again.
	stuckDeadlinePoll = time.Millisecond
	// timerTick is the granularity of stack timers once the network is
	// idle (Linux runs TCP timers on 1-4ms jiffies).
	timerTick = time.Millisecond
)

// Network is two simulated hosts joined by an impaired link. Create it
// with New; it is closed automatically when the test ends.
type Network struct {
	t          testing.TB
	cfg        Config
	seed       uint64
	seedSource string

	clock *simClock
	hosts [2]*host
	links [2]*link
	nat   *nat

	linkStats [2]linkCounters
	capture   *capture
	taps      []Tap

	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closed    atomic.Bool

	injMu sync.Mutex
	injQ  []injection

	lnMu      sync.Mutex
	listeners []*listener

	nextPort  atomic.Uint32
	idleJumps atomic.Uint64

	// driver-goroutine state
	quiet bool // see step
	free  [][]byte
	due   [][]byte
}

type injection struct {
	from HostID
	buf  []byte
}

// host is one gVisor stack with its NIC and optional engine.
type host struct {
	id     HostID
	stack  *stack.Stack
	ep     *channel.Endpoint
	engine Engine
	stats  engineCounters
	notify *channel.NotificationHandle

	// lastTick is the simulated instant of the last deadline call, so a
	// deadline that stays in the past is not called in a tight loop.
	lastTick time.Time

	// scratch, driver goroutine only
	pkts []divert.Packet
	orig [][]byte
	out  []divert.Packet
}

// wakeFunc adapts a function to channel.Notification.
type wakeFunc func()

func (f wakeFunc) WriteNotify() { f() }

// New builds and starts a network. It fails the test on a bad
// configuration and registers Close with t.Cleanup. If the test fails,
// the seed is logged with the way to replay it.
func New(t testing.TB, cfg Config) *Network {
	t.Helper()
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	seed, src, err := resolveSeed(cfg.Seed)
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.withDefaults()
	n := &Network{
		t: t, cfg: cfg, seed: seed, seedSource: src,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	n.nextPort.Store(10000)
	n.clock = newSimClock(n.poke)
	n.taps = append(n.taps, cfg.Taps...)
	if cfg.Capture {
		n.capture = &capture{}
		n.taps = append(n.taps, func(p TapPacket) {
			if p.Point == TapSent {
				n.capture.record(p)
			}
		})
	}
	if cfg.NAT != nil {
		n.nat = newNAT(*cfg.NAT)
	}
	n.links[A] = newLink(n, A, cfg.AtoB, seed, streamLinkAtoB)
	n.links[B] = newLink(n, B, cfg.BtoA, seed, streamLinkBtoA)
	for _, id := range []HostID{A, B} {
		h, err := n.newHost(id)
		if err != nil {
			for _, h := range n.hosts {
				if h != nil {
					h.stack.Destroy()
				}
			}
			t.Fatalf("simnet: host %v: %v", id, err)
		}
		n.hosts[id] = h
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s; %s", replayHint(seed), n.describe())
		}
	})
	t.Cleanup(n.Close)
	go n.run()
	return n
}

func (n *Network) newHost(id HostID) (*host, error) {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
		Clock:              n.clock,
		RandSource:         newLockedSource(n.seed, streamStackA+uint64(id)),
		SecureRNG:          newLockedSource(n.seed, (streamStackA+uint64(id))<<8),
	})
	h := &host{id: id, stack: s, engine: n.engine(id)}
	fail := func(what string, err tcpip.Error) (*host, error) {
		s.Destroy()
		return nil, fmt.Errorf("%s: %s", what, err)
	}
	sack := tcpip.TCPSACKEnabled(!n.cfg.DisableSACK)
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
		return fail("SACK option", err)
	}
	h.ep = channel.New(queueLen, uint32(n.cfg.MTU), "")
	h.notify = h.ep.AddNotify(wakeFunc(n.poke))
	if err := s.CreateNIC(nicID, h.ep); err != nil {
		return fail("CreateNIC", err)
	}
	for _, a := range []struct {
		proto  tcpip.NetworkProtocolNumber
		addr   netip.Addr
		prefix int
	}{
		{ipv4.ProtocolNumber, n.Addr(id, false), 24},
		{ipv6.ProtocolNumber, n.Addr(id, true), 64},
	} {
		pa := tcpip.ProtocolAddress{Protocol: a.proto, AddressWithPrefix: tcpip.AddressWithPrefix{
			Address: tcpip.AddrFromSlice(a.addr.AsSlice()), PrefixLen: a.prefix}}
		if err := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
			return fail("AddProtocolAddress", err)
		}
	}
	// Everything goes out of the one NIC: the peer, and the NAT's public
	// address as B sees it.
	s.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: nicID},
		{Destination: header.IPv6EmptySubnet, NIC: nicID},
	})
	return h, nil
}

func (n *Network) engine(h HostID) Engine {
	if h == A {
		return n.cfg.EngineA
	}
	return n.cfg.EngineB
}

// Seed returns the seed of this network's random decisions.
func (n *Network) Seed() uint64 { return n.seed }

// ReplayHint describes the seed and how to replay it, for error messages.
func (n *Network) ReplayHint() string { return replayHint(n.seed) }

// Now returns the current simulated time.
func (n *Network) Now() time.Time { return n.clock.peek() }

// Elapsed returns the simulated time since the network started.
func (n *Network) Elapsed() time.Duration { return n.clock.elapsed() }

// Stack returns host h's gVisor stack, for tests that need more than
// Listen and Dial.
func (n *Network) Stack(h HostID) *stack.Stack { return n.hosts[h].stack }

// Addr returns host h's own IPv4 or IPv6 address. (Behind a NAT, B sees
// A's connections come from the NAT's address instead.)
func (n *Network) Addr(h HostID, ipv6 bool) netip.Addr {
	switch {
	case h == A && !ipv6:
		return AddrA4
	case h == A:
		return AddrA6
	case !ipv6:
		return AddrB4
	}
	return AddrB6
}

// Stats returns a snapshot of the counters.
func (n *Network) Stats() Stats {
	return Stats{
		AtoB: n.linkStats[A].snapshot(), BtoA: n.linkStats[B].snapshot(),
		A: n.hosts[A].stats.snapshot(), B: n.hosts[B].stats.snapshot(),
		SimTime: n.Elapsed(), IdleJumps: n.idleJumps.Load(),
	}
}

// describe summarises the network's state for failure messages.
func (n *Network) describe() string {
	s := n.Stats()
	return fmt.Sprintf("sim time %v (%d idle jumps); A->B %+v; B->A %+v; engine A %+v; engine B %+v",
		s.SimTime, s.IdleJumps, s.AtoB, s.BtoA, s.A, s.B)
}

// InjectOnLink puts a copy of pkt (a whole IP packet) on the link as if
// host from had sent it past its engine: it goes through the middleboxes
// and impairments to the peer's engine and stack. Use it to play an
// attacker on the path.
func (n *Network) InjectOnLink(from HostID, pkt []byte) {
	b := make([]byte, len(pkt), max(len(pkt), n.cfg.BufferCap))
	copy(b, pkt)
	n.injMu.Lock()
	n.injQ = append(n.injQ, injection{from, b})
	n.injMu.Unlock()
	n.poke()
}

// Captured returns the packets recorded at TapSent (Config.Capture).
func (n *Network) Captured() []CapturedPacket {
	n.t.Helper()
	if n.capture == nil {
		n.t.Fatal("simnet: Captured needs Config.Capture")
	}
	return n.capture.snapshot()
}

// WireContains reports whether needle was seen on the link (at TapSent,
// so after the sender's engine): inside a packet, or across consecutive
// TCP payloads of one flow. It needs Config.Capture.
func (n *Network) WireContains(needle []byte) bool {
	n.t.Helper()
	if n.capture == nil {
		n.t.Fatal("simnet: WireContains needs Config.Capture")
	}
	return n.capture.contains(needle)
}

// Close stops the network: it aborts every connection, stops the driver
// and waits for the stacks' goroutines. It is idempotent and runs
// automatically at the end of the test.
func (n *Network) Close() {
	n.closeOnce.Do(func() {
		n.closed.Store(true)
		n.lnMu.Lock()
		lns := append([]*listener(nil), n.listeners...)
		n.lnMu.Unlock()
		for _, l := range lns {
			l.Close()
		}
		for _, h := range n.hosts {
			h.stack.Close()
		}
		close(n.stop)
		<-n.done
		for _, h := range n.hosts {
			h.ep.RemoveNotify(h.notify)
			h.stack.Wait()
			h.ep.Drain()
		}
		for _, l := range n.links {
			l.drain()
		}
	})
}

// poke wakes the driver.
func (n *Network) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *Network) errorf(format string, args ...any) {
	n.t.Helper()
	n.t.Errorf("simnet: "+format+" ("+replayHint(n.seed)+")", args...)
}

// run is the driver. See the package documentation for the time model.
func (n *Network) run() {
	defer close(n.done)
	defer func() {
		if r := recover(); r != nil {
			n.errorf("driver panic: %v\n%s", r, debug.Stack())
		}
	}()
	grace := time.NewTimer(time.Hour)
	grace.Stop()
	for {
		select {
		case <-n.stop:
			return
		default:
		}
		if n.step() || n.settle() {
			continue
		}
		next, other, stackTimer := n.nextEvent()
		switch {
		case next.IsZero():
			// Nothing scheduled at all: sleep until a stack sends.
			select {
			case <-n.wake:
			case <-n.stop:
				return
			}
			continue
		case stackTimer:
			// A retransmission, TLP, delayed-ACK or TIME-WAIT timer:
			// the network must stay idle for the grace period first, so
			// that an ACK a stack goroutine is about to send does not
			// lose the race against the timer.
			// Within a quiet streak (the last grace period expired and
			// since then timers fired but no packet moved), a tenth of
			// it will do.
			g := n.cfg.IdleGrace
			if n.quiet {
				g /= 10
			}
			grace.Reset(g)
			select {
			case <-n.wake:
				grace.Stop()
				continue
			case <-n.stop:
				grace.Stop()
				return
			case <-grace.C:
				n.idleJumps.Add(1)
				n.quiet = true
			}
			// Timers have the granularity of a kernel tick: fire every
			// timer due before the next millisecond boundary at once,
			// rather than paying a grace period for each.
			// Never past a link event or engine deadline, though.
			next = simEpoch.Add(next.Sub(simEpoch).Truncate(timerTick) + timerTick)
			if !other.IsZero() && other.Before(next) {
				next = other
			}
		}
		// Otherwise a packet due on the link or an engine deadline:
		// jump at once.
		n.clock.advanceTo(next)
	}
}

// settle yields to the stacks' goroutines a few times and reports whether
// they produced work.
func (n *Network) settle() bool {
	for range 3 {
		runtime.Gosched()
		select {
		case <-n.wake:
			return true
		default:
		}
	}
	return false
}

// nextEvent returns the time of the next scheduled event, whether it is a
// stack timer, and the time of the next link event or engine deadline.
func (n *Network) nextEvent() (next, other time.Time, stackTimer bool) {
	now := n.clock.peek()
	var t time.Time
	for _, l := range n.links {
		t = earliest(t, l.nextEvent())
	}
	for _, h := range n.hosts {
		if h.engine == nil {
			continue
		}
		if d := h.engine.NextDeadline(); !d.IsZero() {
			if !d.After(now) {
				d = now.Add(stuckDeadlinePoll)
			}
			t = earliest(t, d)
		}
	}
	timer := n.clock.nextTimer()
	if !timer.IsZero() && (t.IsZero() || timer.Before(t)) {
		return timer, t, true
	}
	return t, t, false
}

// step does everything due at the current simulated instant and reports
// whether anything happened. Moving a packet ends a quiet streak; firing
// timers does not.
func (n *Network) step() bool {
	now := n.clock.Now()
	progressed, fired := false, false

	n.injMu.Lock()
	inj := n.injQ
	n.injQ = nil
	n.injMu.Unlock()
	for _, i := range inj {
		n.links[i.from].send(i.buf, now)
		progressed = true
	}

	for _, h := range n.hosts {
		if n.collectOutbound(h, now) {
			progressed = true
		}
	}
	for _, l := range n.links {
		n.due = l.poll(now, n.due[:0])
		if len(n.due) > 0 {
			progressed = true
			n.deliverInbound(l, n.due, now)
			clear(n.due)
		}
	}
	for _, h := range n.hosts {
		if h.engine == nil {
			continue
		}
		if d := h.engine.NextDeadline(); !d.IsZero() && !d.After(now) && !h.lastTick.Equal(now) {
			h.lastTick = now
			h.stats.ticks.Add(1)
			n.runEngine(h, divert.Outbound, now)
			progressed = true
		}
	}
	if n.clock.fireDue() > 0 {
		fired = true
	}
	if progressed {
		n.quiet = false
	}
	return progressed || fired
}

// collectOutbound takes up to maxBatch packets from h's stack and passes
// them through h's engine to the link.
func (n *Network) collectOutbound(h *host, now time.Time) bool {
	got := false
	for range maxBatch {
		pb := h.ep.Read()
		if pb == nil {
			break
		}
		got = true
		buf := n.getBuf(pb.Size())
		for _, s := range pb.AsSlices() {
			buf = append(buf, s...)
		}
		pb.DecRef()
		n.tap(TapEmitted, h.id, now, buf)
		if h.engine == nil || !isTCP(buf) {
			n.links[h.id].send(buf, now)
			continue
		}
		h.stats.outbound.Add(1)
		h.pkts = append(h.pkts, divert.Packet{Dir: divert.Outbound, Buf: buf})
		h.orig = append(h.orig, buf)
	}
	if len(h.pkts) > 0 {
		n.runEngine(h, divert.Outbound, now)
	}
	return got
}

// deliverInbound hands packets leaving link l to the receiving host's
// engine and stack.
func (n *Network) deliverInbound(l *link, due [][]byte, now time.Time) {
	h := n.hosts[l.to]
	for _, buf := range due {
		if l.from == B && n.nat != nil {
			translated, ok := n.nat.inbound(buf)
			if !ok {
				l.stats.natDropped.Add(1)
				n.putBuf(buf)
				continue
			}
			if translated {
				l.stats.translated.Add(1)
			}
		}
		l.stats.delivered.Add(1)
		n.tap(TapDelivered, l.from, now, buf)
		if h.engine == nil || !isTCP(buf) {
			n.deliverToStack(h, buf, now)
			continue
		}
		h.stats.inbound.Add(1)
		h.pkts = append(h.pkts, divert.Packet{Dir: divert.Inbound, Buf: buf})
		h.orig = append(h.orig, buf)
		if len(h.pkts) == maxBatch {
			n.runEngine(h, divert.Inbound, now)
		}
	}
	if len(h.pkts) > 0 {
		n.runEngine(h, divert.Inbound, now)
	}
}

// runEngine calls h's engine on the batch in h.pkts (possibly empty, for
// a deadline) and routes the results: accepted packets continue in the
// direction dir they were captured in, injected ones by their own Dir.
func (n *Network) runEngine(h *host, dir divert.Direction, now time.Time) {
	out := h.engine.Process(h.pkts, h.out[:0], now)
	for i := range h.pkts {
		p := &h.pkts[i]
		orig := h.orig[i]
		if p.Verdict == divert.Drop {
			h.stats.dropped.Add(1)
			n.putBuf(orig)
			continue
		}
		buf := p.Buf
		if len(buf) == 0 || &buf[0] != &orig[:1][0] {
			// The engine pointed Buf elsewhere; take a copy before
			// its memory is reused.
			buf = append(orig[:0], buf...)
		}
		if p.Modified {
			h.stats.modified.Add(1)
			n.checkEngineOutput(h, "rewrote", buf)
		}
		n.route(h, dir, buf, now)
	}
	for i := range out {
		buf := append(n.getBuf(len(out[i].Buf)), out[i].Buf...)
		h.stats.injected.Add(1)
		n.checkEngineOutput(h, "injected", buf)
		n.route(h, out[i].Dir, buf, now)
	}
	clear(out)
	h.out = out[:0]
	clear(h.pkts)
	h.pkts = h.pkts[:0]
	clear(h.orig)
	h.orig = h.orig[:0]
}

// route sends a packet that h's engine let through or injected on its way:
// Outbound to the link, Inbound into h's own stack.
func (n *Network) route(h *host, dir divert.Direction, buf []byte, now time.Time) {
	if dir == divert.Inbound {
		n.deliverToStack(h, buf, now)
		return
	}
	n.links[h.id].send(buf, now)
}

// checkEngineOutput fails the test if a packet an engine produced is
// malformed or carries a wrong checksum: the receiving stack would drop
// it silently, which shows up much later as a stall.
func (n *Network) checkEngineOutput(h *host, what string, buf []byte) {
	if n.cfg.NoPacketChecks {
		return
	}
	p, err := packet.Parse(buf)
	switch {
	case errors.Is(err, packet.ErrNotTCP):
		return
	case err != nil:
		n.errorf("engine %v %s a malformed packet: %v: % x", h.id, what, err, buf)
	case p.IPv4() != nil && !p.IPv4().VerifyChecksum():
		n.errorf("engine %v %s a packet with a bad IPv4 header checksum: % x", h.id, what, buf)
	case !p.VerifyTCPChecksum():
		n.errorf("engine %v %s a packet with a bad TCP checksum: % x", h.id, what, buf)
	}
}

// deliverToStack injects a packet into h's stack.
func (n *Network) deliverToStack(h *host, buf []byte, now time.Time) {
	n.tap(TapReceived, h.id.Peer(), now, buf)
	var proto tcpip.NetworkProtocolNumber
	switch {
	case len(buf) > 0 && buf[0]>>4 == 4:
		proto = ipv4.ProtocolNumber
	case len(buf) > 0 && buf[0]>>4 == 6:
		proto = ipv6.ProtocolNumber
	default:
		n.putBuf(buf)
		return
	}
	pb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(buf)})
	h.ep.InjectInbound(proto, pb)
	pb.DecRef()
	n.putBuf(buf)
}

func (n *Network) tap(point TapPoint, from HostID, now time.Time, buf []byte) {
	for _, t := range n.taps {
		t(TapPacket{Point: point, From: from, To: from.Peer(), Time: now, Buf: buf})
	}
}

// getBuf returns an empty packet buffer with capacity for size bytes and
// at least BufferCap.
func (n *Network) getBuf(size int) []byte {
	if size > n.cfg.BufferCap {
		return make([]byte, 0, size+256)
	}
	if k := len(n.free); k > 0 {
		b := n.free[k-1]
		n.free[k-1] = nil
		n.free = n.free[:k-1]
		return b[:0]
	}
	return make([]byte, 0, n.cfg.BufferCap)
}

// putBuf recycles a packet buffer; the caller must not use it again.
func (n *Network) putBuf(b []byte) {
	if cap(b) == n.cfg.BufferCap && len(n.free) < maxFree {
		n.free = append(n.free, b[:0])
	}
}

// isTCP reports whether the packet is for the engines: anything but a
// well-formed IP packet of another protocol (a divert filter captures
// TCP only).
func isTCP(buf []byte) bool {
	_, err := packet.Parse(buf)
	return !errors.Is(err, packet.ErrNotTCP)
}

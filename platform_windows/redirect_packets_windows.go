package platform_windows

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sys/windows"

	"tcpinc.dev/tcpinc/core/packet"
	"tcpinc.dev/tcpinc/core/redirect"
)

// The redirect backend's packet path: everything here but prepare's
// goroutine runs on the handle's worker goroutine.

// work is the handle's worker goroutine.
func (r *Redirect) work() error {
	waitSet := []windows.Handle{r.rb.Event(), r.wake}
	nextSweep := time.Now().Add(sweepInterval)
	for {
		if !r.rb.pending {
			done, err := r.h.StartRecv(r.rb)
			if err != nil {
				if errors.Is(err, ErrShutdown) && r.quit.Load() {
					return nil
				}
				return fmt.Errorf("windivert: redirect: receiving: %w", err)
			}
			if done {
				r.batch()
				continue
			}
		}
		ms := uint32(max(time.Until(nextSweep), 0)/time.Millisecond) + 1
		ev, err := windows.WaitForMultipleObjects(waitSet, false, ms)
		if err != nil {
			return fmt.Errorf("windivert: redirect: waiting: %w", err)
		}
		switch ev {
		case windows.WAIT_OBJECT_0:
			if err := r.h.FinishRecv(r.rb, false); err != nil {
				if errors.Is(err, windows.ERROR_IO_INCOMPLETE) {
					continue
				}
				if errors.Is(err, ErrShutdown) && r.quit.Load() {
					return nil
				}
				return fmt.Errorf("windivert: redirect: receiving: %w", err)
			}
			r.batch()
		case windows.WAIT_OBJECT_0 + 1:
			r.applyDecisions()
			if r.quit.Load() {
				r.h.Shutdown(ShutdownRecv)
				r.h.CancelRecv(r.rb, drainTimeout)
				return nil
			}
		case uint32(windows.WAIT_TIMEOUT):
			if time.Now().After(nextSweep) {
				r.sweep()
				nextSweep = time.Now().Add(sweepInterval)
			}
		}
	}
}

// batch handles one received batch.
func (r *Redirect) batch() {
	now := time.Now()
	n := r.rb.Len()
	r.st.Received.Add(uint64(n))
	for i := range n {
		raw, addr := r.rb.Packet(i)
		r.packet(raw, addr, now)
	}
	r.flush()
}

func (r *Redirect) packet(raw []byte, addr *Address, now time.Time) {
	pk, err := packet.Parse(raw)
	if err != nil || !pk.HasTCP() {
		r.pass(raw, addr)
		return
	}
	flags := pk.TCP().Flags()
	if !addr.Outbound() {
		dst := pk.Dst()
		switch {
		case dst.Port() == r.port || dst.Port() == r.portIn:
			// Nobody on the network may reach the proxy directly:
			// its connections come only by reflection or redirection.
			if n := r.st.Foreign.Add(1); n&(n-1) == 0 {
				r.cfg.Log.Info("tcpinc: dropped packets from the network to the proxy's port", "from", pk.Src(), "times", n)
			}
		case r.own.has(dst.Port()):
			r.hookPacket(raw, addr, flowOf(&pk, false), redirect.Inbound, now)
		default:
			r.inbound(raw, addr, flowOf(&pk, false), flags, now)
		}
		return
	}
	f := flowOf(&pk, true)
	switch f.local.Port() {
	case r.port:
		r.fromProxy(raw, addr, f, flags)
		return
	case r.portIn:
		r.fromProxyIn(raw, addr, f, flags, now)
		return
	}
	if r.own.has(f.local.Port()) {
		r.hookPacket(raw, addr, f, redirect.Outbound, now)
		return
	}
	r.fmu.Lock()
	st, ok := r.flows[f]
	var back flow
	held := false
	if ok {
		held = st.held != nil
		back = st.back
		if flags&(packet.FIN|packet.RST) != 0 && st.closing.IsZero() {
			st.closing = now
		}
	}
	r.fmu.Unlock()
	switch {
	case ok && held:
		r.st.HeldDuplicates.Add(1) // a retransmitted SYN: the held one will do
	case ok:
		r.reflect(raw, addr, back.remote, back.local, &r.st.Reflected[0])
	case r.bypass.pass(f, flags, now.Unix()):
		r.st.FastPath.Add(1)
		r.send(raw, addr)
	case flags&(packet.SYN|packet.ACK) == packet.SYN:
		r.holdSYN(raw, addr, f, now)
	default:
		// A connection older than this capture: not ours.
		r.pass(raw, addr)
	}
}

// inbound handles a peer's packet to this host (wire flow f = L:sp,
// R:rp): a new connection's SYN is held while the proxy connects to the
// local server, then redirected to the proxy's inbound listener (the
// destination port rewritten to portIn); the rest of a redirected
// connection follows it there.
func (r *Redirect) inbound(raw []byte, addr *Address, f flow, flags packet.Flags, now time.Time) {
	r.fmu.Lock()
	st, ok := r.inFlows[f]
	held := ok && st.held != nil
	if ok && flags&(packet.FIN|packet.RST) != 0 && st.closing.IsZero() {
		st.closing = now
	}
	r.fmu.Unlock()
	switch {
	case held:
		r.st.HeldDuplicates.Add(1)
	case ok:
		r.toProxyIn(raw, addr, f, now)
	case r.bypass.pass(f, flags, now.Unix()):
		r.st.FastPath.Add(1)
		r.send(raw, addr)
	case flags&(packet.SYN|packet.ACK) == packet.SYN:
		r.holdInboundSYN(raw, addr, f, now)
	default:
		r.pass(raw, addr)
	}
}

// holdInboundSYN: the hook reads the peer's ENO option first; without
// one (or when the policy says so) the connection goes to the server
// untouched. Otherwise the proxy connects to the server while the SYN
// waits, so a closed port still answers with its own reset.
func (r *Redirect) holdInboundSYN(raw []byte, addr *Address, f flow, now time.Time) {
	if r.leftAlone(f) {
		r.release(raw, addr, f, now)
		return
	}
	buf := r.scratch(len(raw))
	copy(buf, raw)
	a := *addr
	fixChecksums(buf, &a)
	r.st.HookPackets.Add(1)
	out, v := r.hook.Process(buf, redirect.Inbound, now)
	switch {
	case v.Action == redirect.Drop:
		r.st.HookDropped.Add(1)
		return
	case v.Done:
		// No ENO to answer: straight to the server, plain.
		r.release(out, &a, f, now)
		return
	}
	r.st.Held.Add(1)
	st := &rflow{held: slices.Clone(out), heldAddr: a}
	r.fmu.Lock()
	r.inFlows[f] = st
	r.fmu.Unlock()
	r.prepare(redirect.Flow{Dir: redirect.Inbound, Src: f.remote, Dst: f.local}, f, true)
}

// toProxyIn sends a redirected connection's packet on to the proxy's
// inbound listener, after the hook has read it (the peer's first ACK
// carries ENO's 45 02).
func (r *Redirect) toProxyIn(raw []byte, addr *Address, f flow, now time.Time) {
	buf := r.scratch(len(raw))
	copy(buf, raw)
	a := *addr
	fixChecksums(buf, &a)
	buf, ok := r.hookOnce(buf, f, redirect.Inbound, now)
	if !ok || !r.readdress(buf, &a, f.remote, netip.AddrPortFrom(f.local.Addr(), r.portIn)) {
		return
	}
	r.st.Reflected[0].Add(1)
	r.send(buf, &a)
}

// fromProxyIn sends the proxy's side of a redirected inbound connection
// to the peer as the server's port, through the hook (ENO in its SYN-ACK).
func (r *Redirect) fromProxyIn(raw []byte, addr *Address, f flow, flags packet.Flags, now time.Time) {
	r.fmu.Lock()
	wire, ok := r.backIn[f]
	if ok && flags&(packet.FIN|packet.RST) != 0 {
		if st := r.inFlows[wire]; st != nil && st.closing.IsZero() {
			st.closing = now
		}
	}
	r.fmu.Unlock()
	if !ok {
		r.unknown(f)
		return
	}
	buf := r.scratch(len(raw))
	copy(buf, raw)
	a := *addr
	if !r.readdress(buf, &a, wire.local, wire.remote) {
		return
	}
	if buf, ok = r.hookOnce(buf, wire, redirect.Outbound, now); !ok {
		return
	}
	r.st.Reflected[1].Add(1)
	r.send(buf, &a)
}

// leftAlone says whether the policy in force leaves the connection f
// plain and untouched.
func (r *Redirect) leftAlone(f flow) bool {
	r.mu.Lock()
	pol := r.policy
	r.mu.Unlock()
	return !pol.Enabled || pol.Excluded(f.local, f.remote)
}

// release sends a held or captured SYN on as it is and lets the rest of
// its connection pass without the proxy.
func (r *Redirect) release(pkt []byte, a *Address, f flow, now time.Time) {
	r.bypass.add(f, now.Unix())
	r.st.Released.Add(1)
	r.send(pkt, a)
}

// holdSYN keeps an application's SYN while the proxy dials its
// destination, unless the policy leaves the connection alone.
func (r *Redirect) holdSYN(raw []byte, addr *Address, f flow, now time.Time) {
	if r.leftAlone(f) {
		r.release(raw, addr, f, now)
		return
	}
	r.st.Held.Add(1)
	st := &rflow{held: slices.Clone(raw), heldAddr: *addr}
	st.ifIdx[0], st.ifIdx[1] = addr.Interface()
	r.fmu.Lock()
	r.flows[f] = st
	r.fmu.Unlock()
	r.prepare(redirect.Flow{Dir: redirect.Outbound, Src: f.local, Dst: f.remote}, f, false)
}

// prepare runs Prepare for a held SYN and hands the decision to the
// worker.
func (r *Redirect) prepare(rf redirect.Flow, f flow, inbound bool) {
	ctx := r.runCtx
	r.prep.Add(1)
	go func() {
		defer r.prep.Done()
		d, err := r.proxy.Prepare(ctx, rf)
		if d != redirect.Redirect {
			r.cfg.Log.Debug("tcpinc: destination not connected; SYN released unredirected", "dir", rf.Dir, "src", rf.Src, "dst", rf.Dst, "decision", d, "err", err)
		}
		r.fmu.Lock()
		r.decided = append(r.decided, decision{f: f, d: d, inbound: inbound})
		r.fmu.Unlock()
		windows.SetEvent(r.wake)
	}()
}

// applyDecisions releases the held SYNs whose Prepare returned:
// reflected or redirected to the proxy, or sent on unchanged so the
// application meets the real refusal or silence.
func (r *Redirect) applyDecisions() {
	now := time.Now()
	r.fmu.Lock()
	ds := r.decided
	r.decided = nil
	type release struct {
		st *rflow
		d  decision
	}
	var rel []release
	for _, d := range ds {
		table := r.flows
		if d.inbound {
			table = r.inFlows
		}
		st, ok := table[d.f]
		if !ok || st.held == nil {
			continue
		}
		switch {
		case d.d != redirect.Redirect:
			delete(table, d.f)
		case d.inbound:
			r.backIn[flow{local: netip.AddrPortFrom(d.f.local.Addr(), r.portIn), remote: d.f.remote}] = d.f
		default:
			st.back = flow{local: netip.AddrPortFrom(d.f.local.Addr(), r.port), remote: netip.AddrPortFrom(d.f.remote.Addr(), d.f.local.Port())}
			r.back[st.back] = d.f
		}
		rel = append(rel, release{st, d})
	}
	r.fmu.Unlock()
	for _, x := range rel {
		held, addr := x.st.held, x.st.heldAddr
		x.st.held = nil
		switch {
		case x.d.d != redirect.Redirect:
			r.release(held, &addr, x.d.f, now)
		case x.d.inbound:
			r.st.Redirected.Add(1)
			if !r.readdress(held, &addr, x.d.f.remote, netip.AddrPortFrom(x.d.f.local.Addr(), r.portIn)) {
				continue
			}
			r.st.Reflected[0].Add(1)
			r.send(held, &addr)
		default:
			r.st.Redirected.Add(1)
			r.reflect(held, &addr, x.st.back.remote, x.st.back.local, &r.st.Reflected[0])
		}
	}
	r.flush()
}

// fromProxy reflects a packet of the proxy's accepted socket back to the
// application it stands in for.
func (r *Redirect) fromProxy(raw []byte, addr *Address, f flow, flags packet.Flags) {
	r.fmu.Lock()
	app, ok := r.back[f]
	if ok && flags&(packet.FIN|packet.RST) != 0 {
		if st := r.flows[app]; st != nil && st.closing.IsZero() {
			st.closing = time.Now()
		}
	}
	r.fmu.Unlock()
	if !ok {
		r.unknown(f)
		return
	}
	r.reflect(raw, addr, app.remote, app.local, &r.st.Reflected[1])
}

// unknown drops a packet of the proxy's listeners that belongs to no
// proxied connection (one forgotten after it closed): sent on, it would
// reach the peer from the proxy's port.
func (r *Redirect) unknown(f flow) {
	if n := r.st.Unknown.Add(1); n&(n-1) == 0 {
		r.cfg.Log.Debug("tcpinc: dropped a proxy packet of no proxied connection", "local", f.local, "remote", f.remote, "times", n)
	}
}

// reflect rewrites a captured outbound packet to src → dst and injects it
// inbound on the interface it was leaving by.
func (r *Redirect) reflect(raw []byte, addr *Address, src, dst netip.AddrPort, ctr *atomic.Uint64) {
	buf := r.scratch(len(raw))
	copy(buf, raw)
	a := *addr
	a.SetOutbound(false)
	if !r.readdress(buf, &a, src, dst) {
		return
	}
	ctr.Add(1)
	r.send(buf, &a)
}

// readdress rewrites buf's addresses to src → dst and has the driver
// compute both checksums when a goes out; false (counted) if buf is not
// a TCP packet it can rewrite.
func (r *Redirect) readdress(buf []byte, a *Address, src, dst netip.AddrPort) bool {
	if err := rewriteFlow(buf, src, dst); err != nil {
		r.st.SendErrors.Add(1)
		return false
	}
	a.SetIPChecksum(true)
	a.SetTCPChecksum(true)
	return true
}

// hookOnce gives buf to the SYN hook in direction dir until the hook is
// done with flow f, and returns what is to be sent on; false (counted):
// the hook drops it.
func (r *Redirect) hookOnce(buf []byte, f flow, dir redirect.Direction, now time.Time) ([]byte, bool) {
	if _, done := r.hookDone[f]; done {
		return buf, true
	}
	r.st.HookPackets.Add(1)
	out, v := r.hook.Process(buf, dir, now)
	if v.Done {
		r.hookDone[f] = now
	}
	if v.Action == redirect.Drop {
		r.st.HookDropped.Add(1)
		return nil, false
	}
	return out, true
}

// hookPacket gives a wire leg's handshake segment to the SYN hook.
func (r *Redirect) hookPacket(raw []byte, addr *Address, f flow, dir redirect.Direction, now time.Time) {
	if _, done := r.hookDone[f]; done {
		r.send(raw, addr)
		return
	}
	r.st.HookPackets.Add(1)
	buf := r.scratch(len(raw))
	copy(buf, raw)
	a := *addr
	fixChecksums(buf, &a)
	out, v := r.hook.Process(buf, dir, now)
	if v.Done {
		r.hookDone[f] = now
	}
	switch v.Action {
	case redirect.Drop:
		r.st.HookDropped.Add(1)
	case redirect.Modified:
		a.SetIPChecksum(true)
		a.SetTCPChecksum(true)
		r.send(out, &a)
	default:
		r.send(buf, &a)
	}
}

// scratch returns a buffer of n bytes with room for the hook's options.
// It is valid until the next call: send copies what it is given.
func (r *Redirect) scratch(n int) []byte {
	if cap(r.slot) < n+headroom {
		r.slot = make([]byte, 0, max(slotSize, n+headroom))
	}
	return r.slot[:n]
}

func (r *Redirect) pass(raw []byte, addr *Address) {
	r.st.Passed.Add(1)
	r.send(raw, addr)
}

func (r *Redirect) send(pkt []byte, a *Address) {
	queueSend(r.h, r.sb, pkt, a, &r.st.SendErrors, r.cfg.Log)
}

func (r *Redirect) flush() { flushSend(r.h, r.sb, &r.st.SendErrors, r.cfg.Log) }

// sweep forgets closed reflected flows and finished wire legs.
func (r *Redirect) sweep() {
	now := time.Now()
	r.bypass.expire(now.Unix())
	r.hook.Sweep(now)
	for f, t := range r.hookDone {
		if _, in := r.inFlows[f]; in {
			continue // a peer's connection: goes with its entry
		}
		if now.Sub(t) > plainIdle || !r.own.has(f.local.Port()) {
			delete(r.hookDone, f)
		}
	}
	r.fmu.Lock()
	for f, st := range r.flows {
		if !st.closing.IsZero() && now.Sub(st.closing) > plainClosed {
			delete(r.back, st.back)
			delete(r.flows, f)
		}
	}
	for f, st := range r.inFlows {
		if !st.closing.IsZero() && now.Sub(st.closing) > plainClosed {
			delete(r.backIn, flow{local: netip.AddrPortFrom(f.local.Addr(), r.portIn), remote: f.remote})
			delete(r.inFlows, f)
			delete(r.hookDone, f)
		}
	}
	r.fmu.Unlock()
}

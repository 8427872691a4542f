package platform_windows

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/windows"

	"tcpinc.dev/tcpinc/core/divert"
	"tcpinc.dev/tcpinc/core/packet"
)

const (
	// headroom is the spare capacity of each packet handed to the
	// engine, so it can grow a packet in place (ENO option, frame header).
	headroom = 256
	// slotSize is the reused buffer of each batch slot.
	slotSize = 2048
	// sweepInterval is how often idle connections are expired.
	sweepInterval = 10 * time.Second
	// drainTimeout bounds the wait for a shut-down handle's queue.
	drainTimeout = 2 * time.Second
)

// workerStats count what a worker sees; read concurrently by Counters.
type workerStats struct {
	Received      atomic.Uint64 // packets from the driver
	Batches       atomic.Uint64
	FastPath      atomic.Uint64 // packets of plain connections re-injected without the engine
	Reinjected    atomic.Uint64 // engine-path packets re-injected (accepted)
	Dropped       atomic.Uint64 // engine verdict drop
	Injected      [2]atomic.Uint64
	SendErrors    atomic.Uint64
	RecvErrors    atomic.Uint64
	BadBatches    atomic.Uint64 // batches that did not split into packets (dropped)
	ChecksumFixed atomic.Uint64 // offloaded checksums computed before the engine saw the packet
	NoInterface   atomic.Uint64 // inbound injections with no known interface
	PlainFlows    atomic.Uint64 // connections put on the fast path
	PlainFull     atomic.Uint64 // ... that did not fit the fast-path table
	Adopted       atomic.Uint64 // connections older than the capture put on the fast path
	DrainDropped  atomic.Uint64 // packets of reset connections dropped while stopping
}

// worker owns one WinDivert handle and one engine. Everything but the
// stats, the counter snapshot and wake runs on the worker's goroutine.
type worker struct {
	id   int
	log  *slog.Logger
	h    *Handle
	eng  *divert.Engine
	user func(divert.Event)

	rb   *RecvBuffer
	sb   *SendBuffer
	wake windows.Handle // auto-reset: stop requested
	stop atomic.Bool

	// Worker goroutine only.
	waitSet [2]windows.Handle
	slots   [BatchMax][]byte
	addrs   []Address
	pkts    []divert.Packet
	out     []divert.Packet
	plain   plainTable
	ifs     map[flow][2]uint32
	now     time.Time
	aborted map[flow]struct{} // while stopping: connections AbortAll reset

	stats workerStats
	mu    sync.Mutex
	snap  divert.Counters
}

func newWorker(id int, h *Handle, cfg *Config, eng *divert.Engine) (*worker, error) {
	w := &worker{
		id: id, h: h, eng: eng, user: cfg.Engine.OnEvent,
		log:   cfg.Log.With("worker", id),
		plain: newPlainTable(plainMax),
		ifs:   make(map[flow][2]uint32),
		addrs: make([]Address, 0, BatchMax),
		pkts:  make([]divert.Packet, 0, BatchMax),
	}
	var err error
	if w.rb, err = NewRecvBuffer(cfg.BatchBytes); err != nil {
		return nil, err
	}
	if w.sb, err = NewSendBuffer(cfg.BatchBytes); err != nil {
		w.rb.Close()
		return nil, err
	}
	if w.wake, err = windows.CreateEvent(nil, 0, 0, nil); err != nil {
		w.rb.Close()
		w.sb.Close()
		return nil, fmt.Errorf("windivert: creating an event: %w", err)
	}
	w.waitSet = [2]windows.Handle{w.rb.Event(), w.wake}
	return w, nil
}

// onEvent runs inside Engine.Process on the worker goroutine.
func (w *worker) onEvent(ev divert.Event) {
	f := flow{local: ev.Local, remote: ev.Remote}
	switch ev.Kind {
	case divert.EventPlain:
		delete(w.ifs, f)
		if w.plain.add(f, w.now.Unix()) {
			w.stats.PlainFlows.Add(1)
		} else {
			w.stats.PlainFull.Add(1)
		}
	case divert.EventClosed:
		delete(w.ifs, f)
	}
	if w.user != nil {
		w.user(ev)
	}
}

// requestStop makes run return (after resetting encrypted connections
// and draining the handle).
func (w *worker) requestStop() {
	w.stop.Store(true)
	windows.SetEvent(w.wake)
}

// run is the worker goroutine: receive a batch (overlapped), process it,
// send the result, and run the engine's timers, until stopped or the
// handle fails. Either way it ends by resetting the encrypted
// connections (as far as the handle still works) before the handle is
// closed: their next packets would otherwise leave in clear.
func (w *worker) run() error {
	err := w.loop()
	w.shutdown()
	return err
}

func (w *worker) loop() error {
	nextSweep := time.Now().Add(sweepInterval)
	for {
		if !w.rb.pending {
			done, err := w.h.StartRecv(w.rb)
			if err != nil {
				return w.recvFailed(err)
			}
			if done {
				w.batch()
				continue
			}
		}
		w.now = time.Now()
		wait := nextSweep.Sub(w.now)
		if d := w.eng.NextDeadline(); !d.IsZero() {
			wait = min(wait, d.Sub(w.now))
		}
		ms := uint32(max(wait+time.Millisecond-1, 0) / time.Millisecond)
		ev, err := windows.WaitForMultipleObjects(w.waitSet[:], false, ms)
		if err != nil {
			return fmt.Errorf("windivert: worker %d: waiting: %w", w.id, err)
		}
		switch ev {
		case windows.WAIT_OBJECT_0:
			if err := w.h.FinishRecv(w.rb, false); err != nil {
				if errors.Is(err, windows.ERROR_IO_INCOMPLETE) {
					continue
				}
				if errors.Is(err, errBatchTruncated) || errors.Is(err, errBatchVersion) ||
					errors.Is(err, errBatchLength) || errors.Is(err, errBatchTrailing) {
					// Fail closed: packets we cannot delimit are not
					// re-injected. TCP retransmits them.
					if n := w.stats.BadBatches.Add(1); n&(n-1) == 0 {
						w.log.Warn("tcpinc: dropped a batch that does not split into IP packets", "err", err, "times", n)
					}
					continue
				}
				return w.recvFailed(err)
			}
			w.batch()
		case windows.WAIT_OBJECT_0 + 1:
			if w.stop.Load() {
				return nil
			}
		case uint32(windows.WAIT_TIMEOUT):
			w.now = time.Now()
			if !w.now.Before(nextSweep) {
				w.sweep()
				nextSweep = w.now.Add(sweepInterval)
			}
			if d := w.eng.NextDeadline(); !d.IsZero() && !w.now.Before(d) {
				w.process(0)
			}
		}
	}
}

func (w *worker) recvFailed(err error) error {
	w.stats.RecvErrors.Add(1)
	if errors.Is(err, ErrShutdown) && w.stop.Load() {
		return nil
	}
	return fmt.Errorf("windivert: worker %d: receiving: %w", w.id, err)
}

// batch handles the completed receive: plain connections' packets go
// straight back, the rest through the engine.
func (w *worker) batch() {
	w.now = time.Now()
	now := w.now.Unix()
	n := w.rb.Len()
	w.stats.Batches.Add(1)
	w.stats.Received.Add(uint64(n))
	w.addrs, w.pkts = w.addrs[:0], w.pkts[:0]
	for i := range n {
		raw, addr := w.rb.Packet(i)
		pk, err := packet.Parse(raw)
		if err == nil && pk.HasTCP() {
			f := flowOf(&pk, addr.Outbound())
			if w.plain.pass(f, pk.TCP().Flags(), now) {
				w.stats.FastPath.Add(1)
				w.send(raw, addr)
				continue
			}
			w.noteInterface(f, addr)
		}
		buf := w.slot(len(w.pkts), len(raw))
		copy(buf, raw)
		a := *addr
		if err == nil && pk.HasTCP() {
			if fixChecksums(buf, &a) {
				w.stats.ChecksumFixed.Add(1)
			}
		}
		dir := divert.Inbound
		if a.Outbound() {
			dir = divert.Outbound
		}
		w.addrs = append(w.addrs, a)
		w.pkts = append(w.pkts, divert.Packet{Dir: dir, Buf: buf})
	}
	w.process(len(w.pkts))
}

// slot returns batch slot i's buffer, n bytes long with headroom.
func (w *worker) slot(i, n int) []byte {
	b := w.slots[i]
	if cap(b) < n+headroom {
		b = make([]byte, 0, max(slotSize, n+headroom))
		w.slots[i] = b
	}
	return b[:n]
}

// noteInterface remembers the interface of a connection's packets, for
// the inbound packets the engine injects (WinDivert needs a valid one).
// Inbound packets tell where the connection's packets arrive; an outbound
// one is the fallback until then.
func (w *worker) noteInterface(f flow, a *Address) {
	idx, sub := a.Interface()
	v := [2]uint32{idx, sub}
	old, ok := w.ifs[f]
	if ok && (old == v || a.Outbound()) {
		return
	}
	if !ok && len(w.ifs) >= plainMax {
		return
	}
	w.ifs[f] = v
}

// process runs the engine on the batch's first n packets (none: timers
// only) and sends everything that leaves.
func (w *worker) process(n int) {
	w.out = w.eng.Process(w.pkts[:n], w.out[:0], w.now)
	for i := range n {
		p := &w.pkts[i]
		if p.Verdict == divert.Drop {
			w.stats.Dropped.Add(1)
			continue
		}
		a := &w.addrs[i]
		if !p.Modified {
			w.adopt(p, a)
		}
		if p.Modified {
			a.SetIPChecksum(true)
			a.SetTCPChecksum(true)
		}
		w.stats.Reinjected.Add(1)
		w.send(p.Buf, a)
	}
	for i := range w.out {
		w.inject(&w.out[i])
	}
	w.flush()
	clear(w.out) // engine memory: do not keep it alive
	for i := range w.pkts[:n] {
		w.pkts[i].Buf = nil
	}
	w.snapshot()
}

// snapshot publishes the engine's counters for Counters.
func (w *worker) snapshot() {
	c := w.eng.Counters()
	w.mu.Lock()
	w.snap = c
	w.mu.Unlock()
}

// adopt puts on the fast path a connection the engine passed without
// knowing it: one that was open before the capture started. Only a
// packet the engine accepted unchanged, without SYN, of a connection the
// engine has no entry for (not even a tombstone: those are dropped)
// qualifies.
func (w *worker) adopt(p *divert.Packet, a *Address) {
	pk, err := packet.Parse(p.Buf)
	if err != nil || !pk.HasTCP() || pk.TCP().Flags()&packet.SYN != 0 {
		return
	}
	f := flowOf(&pk, a.Outbound())
	if _, done := w.plain.m[f]; done {
		return // adopted by an earlier packet of this batch
	}
	if _, known := w.eng.Lookup(f.local, f.remote); known {
		return
	}
	if w.plain.add(f, w.now.Unix()) {
		w.stats.Adopted.Add(1)
		delete(w.ifs, f)
	}
}

// inject sends a packet the engine made, in its direction.
func (w *worker) inject(p *divert.Packet) {
	var a Address
	a.SetLayer(LayerNetwork)
	a.SetIPChecksum(true)
	a.SetTCPChecksum(true)
	pk, err := packet.Parse(p.Buf)
	if err != nil {
		w.stats.SendErrors.Add(1)
		return
	}
	a.SetIPv6(pk.Version() == 6)
	if p.Dir == divert.Outbound {
		a.SetOutbound(true)
	} else if v, ok := w.ifs[flowOf(&pk, false)]; ok {
		a.SetInterface(v[0], v[1])
	} else {
		w.stats.NoInterface.Add(1)
	}
	w.stats.Injected[p.Dir&1].Add(1)
	w.send(p.Buf, &a)
}

// send queues a packet for the next SendEx, sending first if full.
func (w *worker) send(pkt []byte, a *Address) {
	queueSend(w.h, w.sb, pkt, a, &w.stats.SendErrors, w.log)
}

func (w *worker) flush() { flushSend(w.h, w.sb, &w.stats.SendErrors, w.log) }

// queueSend adds pkt to the batch sb for h, sending the batch first if
// pkt does not fit; a packet no batch can take counts in errs. The
// divert workers and the redirect backend send through it alike.
func queueSend(h *Handle, sb *SendBuffer, pkt []byte, a *Address, errs *atomic.Uint64, log *slog.Logger) {
	if !sb.Fits(len(pkt)) {
		flushSend(h, sb, errs, log)
	}
	if !sb.Add(pkt, a) {
		errs.Add(1)
	}
}

// flushSend sends the batch sb through h. Packets the driver refused
// count in errs; the warning is logged at the first refusal and then at
// each power of two of the count.
func flushSend(h *Handle, sb *SendBuffer, errs *atomic.Uint64, log *slog.Logger) {
	if failed, err := h.Send(sb); failed > 0 {
		if n := errs.Add(uint64(failed)); n&(n-1) == 0 || n == uint64(failed) {
			log.Warn("tcpinc: WinDivert did not inject packets", "err", err, "times", n)
		}
	}
}

// sweep expires idle connections in the engine and the fast path.
func (w *worker) sweep() {
	w.eng.Sweep(w.now)
	w.plain.expire(w.now.Unix())
	for f := range w.ifs {
		if _, ok := w.eng.Lookup(f.local, f.remote); !ok {
			delete(w.ifs, f)
		}
	}
}

// shutdown resets every connection that is exchanging keys or encrypted
// (both ends, with engine-made RSTs) while the handle still captures,
// then shuts the handle's receive side and drains its queue: packets of
// the reset connections are dropped, everything else passes unchanged.
func (w *worker) shutdown() {
	w.aborted = make(map[flow]struct{})
	rst := w.eng.AbortAll()
	for i := range rst {
		if pk, err := packet.Parse(rst[i].Buf); err == nil && pk.HasTCP() {
			w.aborted[flowOf(&pk, rst[i].Dir == divert.Outbound)] = struct{}{}
		}
		w.inject(&rst[i])
	}
	w.flush()
	w.snapshot()
	if len(rst) > 0 {
		w.log.Info("tcpinc: reset encrypted connections before releasing the capture", "packets", len(rst))
	}
	if err := w.h.Shutdown(ShutdownRecv); err != nil {
		w.log.Warn("tcpinc: shutting down the WinDivert handle", "err", err)
		w.h.CancelRecv(w.rb, drainTimeout)
		return
	}
	deadline := time.Now().Add(drainTimeout)
	for {
		if !w.rb.pending {
			done, err := w.h.StartRecv(w.rb)
			if err != nil {
				return // ErrShutdown: the queue is empty
			}
			if done {
				w.drainBatch()
				continue
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			w.h.CancelRecv(w.rb, drainTimeout)
			return
		}
		ev, _ := windows.WaitForSingleObject(w.rb.Event(), uint32(left/time.Millisecond)+1)
		if ev != windows.WAIT_OBJECT_0 {
			continue
		}
		if err := w.h.FinishRecv(w.rb, false); err != nil {
			if errors.Is(err, windows.ERROR_IO_INCOMPLETE) {
				continue
			}
			return
		}
		w.drainBatch()
	}
}

func (w *worker) drainBatch() {
	for i := range w.rb.Len() {
		raw, addr := w.rb.Packet(i)
		if pk, err := packet.Parse(raw); err == nil && pk.HasTCP() {
			if _, ok := w.aborted[flowOf(&pk, addr.Outbound())]; ok {
				w.stats.DrainDropped.Add(1)
				continue
			}
		}
		w.send(raw, addr)
	}
	w.flush()
}

// close releases the handle and buffers; the engine is closed by the
// backend.
func (w *worker) close() error {
	err := w.h.Close()
	w.rb.Close()
	w.sb.Close()
	windows.CloseHandle(w.wake)
	return err
}

func (w *worker) counters() divert.Counters {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snap
}

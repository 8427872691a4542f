package platform_linux

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"tcpinc.dev/tcpinc/core/divert"
	"tcpinc.dev/tcpinc/core/packet"
)

const (
	// maxBatch bounds the packets received, and handed to the engine, at
	// once.
	maxBatch = 64
	// rcvBuf is the netlink receive buffer of a queue: room for bursts
	// while the engine works, set past rmem_max with SO_RCVBUFFORCE.
	rcvBuf = 16 << 20
)

// flow identifies a connection from the local host's point of view.
type flow struct{ local, remote netip.AddrPort }

// worker serves one NFQUEUE with one engine. Its goroutine receives a
// batch (recvmmsg), runs the engine on it, sends all verdicts in one
// sendmsg and injects the engine's packets; a second goroutine runs the
// engine's timers and the idle sweep. mu serialises the two, and the
// control API's queries.
type worker struct {
	num   uint16
	marks marks
	log   *slog.Logger
	eng   *divert.Engine
	q     *nfq
	inj   *injector
	user  func(divert.Event) // the daemon's OnEvent

	wake    chan struct{} // the engine's deadline may have moved earlier
	armed   atomic.Int64  // the deadline the timer goroutine waits for (UnixNano), 0: none
	stopped chan struct{} // closed when run returns

	mu      sync.Mutex
	pending map[flow]uint32 // connection mark to set with the flow's next verdict
	lens    []int
	meta    []nfqPacket
	orig    [][]byte // each packet's buffer in its slot, before the engine
	pkts    []divert.Packet
	out     []divert.Packet

	stats   backendStats
	running atomic.Bool
}

// backendStats count what the backend itself sees.
type backendStats struct {
	Queued        atomic.Uint64 // packets received from the queue
	Batches       atomic.Uint64 // receive calls that returned packets
	Verdicts      atomic.Uint64
	VerdictErrors atomic.Uint64    // sendmsg failures, and verdicts the kernel refused
	Injected      [2]atomic.Uint64 // by divert.Direction
	InjectErrors  atomic.Uint64
	RecvENOBUFS   atomic.Uint64 // the kernel dropped queued packets: the socket was full
	RecvBad       atomic.Uint64 // messages that did not parse (dropped if they had an id)
	MarkedPlain   atomic.Uint64
	MarkedCapture atomic.Uint64
	GSO           atomic.Uint64 // GSO/GRO super-packets queued whole
	CsumFixed     atomic.Uint64 // partial checksums completed after an in-place rewrite
	DropTruncated atomic.Uint64 // packets longer than a netlink attribute holds

	DropUnknownCaptured atomic.Uint64 // captured connection unknown to the engine (restart)
}

func newWorker(num uint16, cfg *Config, m marks, inj *injector) (*worker, error) {
	w := &worker{
		num: num, marks: m, inj: inj, user: cfg.Engine.OnEvent,
		log:     cfg.Log.With("queue", num),
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
		pending: map[flow]uint32{},
		lens:    make([]int, maxBatch),
	}
	ec := cfg.Engine
	ec.OnEvent = w.onEvent
	if ec.Log == nil {
		ec.Log = w.log
	}
	var err error
	if w.eng, err = divert.New(ec); err != nil {
		return nil, fmt.Errorf("tcpinc: engine: %w", err)
	}
	if err := w.eng.SetPolicy(cfg.Policy); err != nil {
		return nil, fmt.Errorf("tcpinc: policy: %w", err)
	}
	if w.q, err = openNFQ(num, cfg.QueueMaxLen, maxBatch, cfg.QueueRcvBuf); err != nil {
		w.eng.Close()
		return nil, queueError(num, "binding", err)
	}
	return w, nil
}

// queueError explains a failure to open or bind a queue.
func queueError(num uint16, what string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EBUSY):
		// Binding a queue another socket holds fails with EPERM; so does
		// a caller without CAP_NET_ADMIN, which NewDivert ruled out.
		return fmt.Errorf("tcpinc: queue %d is in use by another process (another tcpincd, or an IPS such as suricata or snort); stop it or choose other queue numbers: %s: %w", num, what, err)
	case isMissing(err):
		return fmt.Errorf("tcpinc: the kernel has no NFQUEUE support (needs CONFIG_NETFILTER_NETLINK_QUEUE): %s: %w", what, err)
	}
	return fmt.Errorf("tcpinc: queue %d: %s: %w", num, what, err)
}

// sweepInterval is how often idle connections are expired.
const sweepInterval = 10 * time.Second

// run is the worker's packet loop; it returns when ctx ends (seen within
// recvTimeout) or on a fatal receive error.
func (w *worker) run(ctx context.Context, fatal func(error)) {
	w.running.Store(true)
	defer close(w.stopped)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { w.timers(ctx) })
	for {
		n, err := w.q.recv(w.lens)
		if ctx.Err() != nil {
			return
		}
		if err == unix.EAGAIN { // the receive timeout: nothing queued
			continue
		}
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				// The kernel could not queue to our socket and dropped
				// packets (never accepted them: no fail-open): TCP
				// retransmits them, encrypted connections included.
				if n := w.stats.RecvENOBUFS.Add(1); n&(n-1) == 0 {
					w.log.Warn("tcpinc: netlink receive buffer overflowed; the kernel dropped queued packets", "times", n)
				}
				continue
			}
			if errors.Is(err, unix.EINTR) {
				continue
			}
			fatal(fmt.Errorf("tcpinc: queue %d: receiving: %w", w.num, err))
			return
		}
		w.stats.Batches.Add(1)
		w.mu.Lock()
		w.process(n)
		w.mu.Unlock()
		// Wake the timer goroutine only when the engine now needs it
		// sooner than it is armed for (a wake-up per batch costs a
		// thread switch).
		if d := w.eng.NextDeadline(); !d.IsZero() {
			if a := w.armed.Load(); a == 0 || d.UnixNano() < a {
				select {
				case w.wake <- struct{}{}:
				default:
				}
			}
		}
	}
}

// timers runs the engine when its next deadline passes, and the sweep.
func (w *worker) timers(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	sweep := time.NewTicker(sweepInterval)
	defer sweep.Stop()
	var out []divert.Packet
	for {
		if d := w.eng.NextDeadline(); !d.IsZero() {
			w.armed.Store(d.UnixNano())
			timer.Reset(max(time.Until(d), 0))
		} else {
			w.armed.Store(0)
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case now := <-sweep.C:
			w.mu.Lock()
			w.eng.Sweep(now)
			w.mu.Unlock()
		case <-timer.C:
			w.mu.Lock()
			out = w.eng.Process(nil, out[:0], time.Now())
			w.inject(out)
			clear(out)
			w.mu.Unlock()
		}
	}
}

// process parses the n received messages, runs the engine on the
// packets, and answers every one of them in one sendmsg.
func (w *worker) process(n int) {
	w.pkts, w.meta, w.orig = w.pkts[:0], w.meta[:0], w.orig[:0]
	for i := range n {
		slot := w.q.slots[i]
		m := slot[:w.lens[i]]
		for len(m) >= nlmsgHdrLen {
			l := int(binary.NativeEndian.Uint32(m))
			if l < nlmsgHdrLen || l > len(m) {
				w.stats.RecvBad.Add(1)
				break
			}
			typ := binary.NativeEndian.Uint16(m[4:])
			switch {
			case typ == msgTypeQueue|nfqnlMsgPacket:
				w.addPacket(slot, m[:l], len(m) == (l+3)&^3 || len(m) == l)
			case typ == nlmsgError:
				if errno := netlinkError(m[:l]); errno != 0 {
					// A verdict the kernel refused (the packet is gone:
					// ENOENT after a queue flush).
					if c := w.stats.VerdictErrors.Add(1); c&(c-1) == 0 {
						w.log.Warn("tcpinc: the kernel refused a verdict", "err", errno, "times", c)
					}
				}
			}
			m = m[min((l+3)&^3, len(m)):]
		}
	}
	w.stats.Queued.Add(uint64(len(w.pkts)))
	if len(w.pkts) > 0 {
		w.out = w.eng.Process(w.pkts, w.out[:0], time.Now())
	}
	for i := range w.pkts {
		w.verdict(&w.meta[i], &w.pkts[i], w.orig[i])
	}
	if err := w.q.flush(); err != nil {
		// The packets stay queued until the queue is torn down; TCP
		// retransmits them.
		if c := w.stats.VerdictErrors.Add(uint64(len(w.pkts))); c&(c-1) == 0 || len(w.pkts) > 1 {
			w.log.Warn("tcpinc: sending verdicts failed", "err", err, "packets", len(w.pkts))
		}
	} else {
		w.stats.Verdicts.Add(uint64(len(w.pkts)))
	}
	w.inject(w.out)
	clear(w.pkts)
	clear(w.orig)
	clear(w.out) // engine memory: do not keep it alive
}

// addPacket takes one packet message of a slot for the batch. The
// engine gets the packet where the kernel wrote it, with the rest of the
// slot as room to grow when the payload is the slot's last message.
func (w *worker) addPacket(slot, m []byte, last bool) {
	mp, err := parsePacketMsg(m[nlmsgHdrLen:])
	if err != nil {
		if c := w.stats.RecvBad.Add(1); c&(c-1) == 0 {
			w.log.Warn("tcpinc: a queued packet message did not parse", "err", err, "times", c)
		}
		if errors.Is(err, errNoID) {
			return
		}
		// With an id the packet can still be refused: fail closed.
		w.q.verdict(mp.id, false, 0, false, nil)
		return
	}
	base := cap(slot) - cap(m) // offset of m in slot
	var buf []byte
	if mp.hasPayload {
		start, end := base+nlmsgHdrLen+mp.payStart, base+nlmsgHdrLen+mp.payEnd
		limit := len(slot)
		if !last {
			limit = end
		}
		buf = slot[start:end:limit]
	}
	dir := divert.Inbound
	if mp.hook == unix.NF_INET_LOCAL_OUT {
		dir = divert.Outbound
	}
	// An outbound super-packet is segmented after the verdict, and the
	// kernel computes each segment's checksum (tcp_gso_segment).
	p := divert.Packet{Dir: dir, Buf: buf, SegmentedLater: dir == divert.Outbound && mp.skbInfo&nfqaSkbGSO != 0}
	if buf == nil || mp.truncated() {
		// Copy mode is "packet": no payload, or only part of it, means
		// the engine cannot see it all. Dropping is the fail-closed
		// answer (TCP retransmits).
		if buf != nil {
			w.stats.DropTruncated.Add(1)
		}
		p = divert.Packet{Dir: dir, Verdict: divert.Drop}
	}
	if mp.skbInfo&nfqaSkbGSO != 0 {
		w.stats.GSO.Add(1)
	}
	w.pkts = append(w.pkts, p)
	w.meta = append(w.meta, mp)
	w.orig = append(w.orig, buf)
}

// inject sends the engine's packets.
func (w *worker) inject(out []divert.Packet) {
	for _, p := range out {
		if err := w.inj.send(p.Buf); err != nil {
			if n := w.stats.InjectErrors.Add(1); n&(n-1) == 0 {
				w.log.Warn("tcpinc: injecting a packet failed", "dir", p.Dir, "len", len(p.Buf), "err", err, "times", n)
			}
			continue
		}
		w.stats.Injected[p.Dir&1].Add(1)
	}
}

// verdict adds the verdict for one packet to the batch.
func (w *worker) verdict(mp *nfqPacket, p *divert.Packet, orig []byte) {
	switch {
	case p.Buf == nil || p.Verdict == divert.Drop:
		w.q.verdict(mp.id, false, 0, false, nil)
		return
	case !p.Modified && mp.mark&w.marks.mask == w.marks.capture && !w.known(p):
		// A captured connection's packet the engine does not know (its
		// state died with a previous run): passing it would send the
		// stack's plaintext. Fail closed.
		w.stats.DropUnknownCaptured.Add(1)
		w.q.verdict(mp.id, false, 0, false, nil)
		return
	}
	m, setMark := w.connMark(p)
	if setMark {
		m = mp.mark&^w.marks.mask | m
	}
	var payload []byte
	if p.Modified {
		payload = p.Buf
		if mp.skbInfo&nfqaSkbCsumNotReady != 0 && len(p.Buf) > 0 && len(orig) > 0 && &p.Buf[0] == &orig[0] {
			// The kernel left the checksum partial (offload) and will
			// treat the rewritten packet as complete: an in-place rewrite
			// that updated the partial sum incrementally must be summed
			// in full. Packets the engine built (in its own memory) have
			// complete checksums already.
			if pk, err := packet.Parse(p.Buf); err == nil && pk.HasTCP() {
				pk.UpdateTCPChecksum()
				w.stats.CsumFixed.Add(1)
			}
		}
	}
	w.q.verdict(mp.id, true, m, setMark, payload)
}

// known reports whether the engine tracks the packet's connection.
func (w *worker) known(p *divert.Packet) bool {
	pk, err := packet.Parse(p.Buf)
	if err != nil || !pk.HasTCP() {
		return false
	}
	if p.Dir == divert.Inbound {
		_, ok := w.eng.Lookup(pk.Dst(), pk.Src())
		return ok
	}
	_, ok := w.eng.Lookup(pk.Src(), pk.Dst())
	return ok
}

// connMark returns the connection mark this packet's verdict should set,
// if any: plain for a connection the engine gave up on, capture for a
// SYN or SYN-ACK of a connection the engine negotiates.
func (w *worker) connMark(p *divert.Packet) (uint32, bool) {
	pk, err := packet.Parse(p.Buf)
	if err != nil || !pk.HasTCP() {
		return 0, false
	}
	syn := pk.TCP().Flags()&packet.SYN != 0
	if len(w.pending) == 0 && !syn {
		return 0, false
	}
	f := flow{local: pk.Src(), remote: pk.Dst()}
	if p.Dir == divert.Inbound {
		f = flow{local: pk.Dst(), remote: pk.Src()}
	}
	if m, ok := w.pending[f]; ok {
		delete(w.pending, f)
		w.countMark(m)
		return m, true
	}
	if syn {
		if ci, ok := w.eng.Lookup(f.local, f.remote); ok && ci.State != "plain" && ci.State != "closed" {
			w.countMark(w.marks.capture)
			return w.marks.capture, true
		}
	}
	return 0, false
}

func (w *worker) countMark(m uint32) {
	if m == w.marks.plain {
		w.stats.MarkedPlain.Add(1)
	} else {
		w.stats.MarkedCapture.Add(1)
	}
}

// onEvent runs inside Engine.Process, on the worker goroutine.
func (w *worker) onEvent(ev divert.Event) {
	f := flow{local: ev.Local, remote: ev.Remote}
	switch ev.Kind {
	case divert.EventPlain:
		w.pending[f] = w.marks.plain
	case divert.EventClosed:
		delete(w.pending, f)
	}
	if w.user != nil {
		w.user(ev)
	}
}

// do runs fn with the worker's engine between batches and reports
// whether it ran (not when the worker is not running).
func (w *worker) do(fn func(*divert.Engine)) bool {
	if !w.running.Load() {
		return false
	}
	select {
	case <-w.stopped:
		return false
	default:
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	fn(w.eng)
	return true
}

// counters reads the engine's counters (the engine locks itself; no
// copy is kept per batch).
func (w *worker) counters() divert.Counters { return w.eng.Counters() }

// close unbinds the queue (run must have returned) and erases the
// engine's secrets.
func (w *worker) close() {
	if w.q != nil {
		w.q.close()
	}
	w.mu.Lock()
	w.eng.Close()
	w.mu.Unlock()
}

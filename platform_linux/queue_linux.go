package platform_linux

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"golang.org/x/sys/unix"

	"tcpinc.dev/tcpinc/core/divert"
	"tcpinc.dev/tcpinc/core/packet"
)

const (
	// maxBatch bounds the packets handed to the engine at once.
	maxBatch = 64
	// rcvBuf is the netlink receive buffer of a queue: room for bursts
	// while the engine works, set past rmem_max with SO_RCVBUFFORCE.
	rcvBuf = 16 << 20
	// headroom is the spare capacity each packet buffer gets, so the
	// engine can grow a packet in place (ENO option, frame header).
	headroom = 256
	// maxPacket is the copy range: whole packets.
	maxPacket = 0xffff
)

// queued is one packet the kernel holds until its verdict.
type queued struct {
	id   uint32
	mark uint32
	dir  divert.Direction
	buf  []byte
}

// flow identifies a connection from the local host's point of view.
type flow struct{ local, remote netip.AddrPort }

// worker serves one NFQUEUE with one engine: the netlink reader hands
// packets over a channel; the worker goroutine batches them, runs the
// engine, sets the verdicts and injects the engine's packets. All engine
// calls happen on the worker goroutine.
type worker struct {
	num   uint16
	marks marks
	log   *slog.Logger
	eng   *divert.Engine
	nf    *nfqueue.Nfqueue
	inj   *injector
	user  func(divert.Event) // the daemon's OnEvent

	in      chan queued
	reqs    chan func(*divert.Engine)
	stopped chan struct{} // closed when run returns

	// Worker goroutine only.
	pending map[flow]uint32 // connection mark to set with the flow's next verdict
	batch   []queued
	pkts    []divert.Packet
	out     []divert.Packet

	stats   backendStats
	mu      sync.Mutex
	snap    divert.Counters
	running atomic.Bool
}

// backendStats count what the backend itself sees.
type backendStats struct {
	Queued        atomic.Uint64 // packets received from the queue
	Verdicts      atomic.Uint64
	VerdictErrors atomic.Uint64
	Injected      [2]atomic.Uint64 // by divert.Direction
	InjectErrors  atomic.Uint64
	RecvENOBUFS   atomic.Uint64 // the kernel dropped queued packets: the socket was full
	MarkedPlain   atomic.Uint64
	MarkedCapture atomic.Uint64

	DropUnknownCaptured atomic.Uint64 // captured connection unknown to the engine (restart)
}

func newWorker(num uint16, cfg *Config, m marks, inj *injector) (*worker, error) {
	w := &worker{
		num: num, marks: m, inj: inj, user: cfg.Engine.OnEvent,
		log:     cfg.Log.With("queue", num),
		in:      make(chan queued, 4*maxBatch),
		reqs:    make(chan func(*divert.Engine)),
		stopped: make(chan struct{}),
		pending: map[flow]uint32{},
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
	w.nf, err = nfqueue.Open(&nfqueue.Config{
		NfQueue:      num,
		MaxPacketLen: maxPacket,
		MaxQueueLen:  cfg.QueueMaxLen,
		Copymode:     nfqueue.NfQnlCopyPacket,
		AfFamily:     unix.AF_INET,
		WriteTimeout: time.Second,
		Logger:       nfLogger{w.log},
	})
	if err != nil {
		return nil, queueError(num, "opening the netfilter netlink socket", err)
	}
	if err := setRcvBufForce(w.nf); err != nil {
		w.log.Warn("tcpinc: could not enlarge the queue's netlink receive buffer; bursts may overflow it", "err", err)
	}
	return w, nil
}

func setRcvBufForce(nf *nfqueue.Nfqueue) error {
	rc, err := nf.Con.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf)
	}); err != nil {
		return err
	}
	return serr
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

// start binds the queue; from now on the kernel queues packets to us.
// The reader stops when ctx ends or on a fatal receive error (fatal).
func (w *worker) start(ctx context.Context, fatal func(error)) error {
	err := w.nf.RegisterWithErrorFunc(ctx, func(a nfqueue.Attribute) int {
		return w.receive(ctx, a)
	}, func(err error) int {
		if ctx.Err() != nil {
			return 1
		}
		if errors.Is(err, unix.ENOBUFS) {
			// The kernel could not queue to our socket and dropped
			// packets; TCP retransmits them. Keep reading.
			if n := w.stats.RecvENOBUFS.Add(1); n&(n-1) == 0 {
				w.log.Warn("tcpinc: netlink receive buffer overflowed; the kernel dropped queued packets", "times", n)
			}
			return 0
		}
		fatal(fmt.Errorf("tcpinc: queue %d: receiving: %w", w.num, err))
		return 1
	})
	if err != nil {
		return queueError(w.num, "binding", err)
	}
	return nil
}

// receive runs on the netlink reader goroutine for each queued packet.
func (w *worker) receive(ctx context.Context, a nfqueue.Attribute) int {
	if a.PacketID == nil {
		return 0
	}
	q := queued{id: *a.PacketID, dir: divert.Inbound}
	if a.Hook != nil && *a.Hook == unix.NF_INET_LOCAL_OUT {
		q.dir = divert.Outbound
	}
	if a.Mark != nil {
		q.mark = *a.Mark
	}
	if a.Payload != nil {
		q.buf = getBuf(len(*a.Payload))
		copy(q.buf, *a.Payload)
	}
	w.stats.Queued.Add(1)
	select {
	case w.in <- q:
		return 0
	case <-ctx.Done():
		return 1
	}
}

// sweepInterval is how often idle connections are expired.
const sweepInterval = 10 * time.Second

// run is the worker goroutine.
func (w *worker) run(ctx context.Context) {
	w.running.Store(true)
	defer close(w.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	sweep := time.NewTicker(sweepInterval)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-sweep.C:
			w.eng.Sweep(now)
			continue
		case q := <-w.in:
			w.batch = append(w.batch[:0], q)
		drain:
			for len(w.batch) < maxBatch {
				select {
				case q := <-w.in:
					w.batch = append(w.batch, q)
				default:
					break drain
				}
			}
			w.process()
		case <-timer.C:
			w.batch = w.batch[:0]
			w.process()
		case req := <-w.reqs:
			req(w.eng)
			continue
		}
		if d := w.eng.NextDeadline(); !d.IsZero() {
			timer.Reset(max(time.Until(d), 0))
		}
	}
}

// process runs the engine on w.batch and applies its decisions.
func (w *worker) process() {
	w.pkts = w.pkts[:0]
	for _, q := range w.batch {
		if q.buf == nil {
			// Copy mode is "packet": no payload means something is
			// badly wrong. Dropping is the fail-closed answer.
			w.pkts = append(w.pkts, divert.Packet{Dir: q.dir, Verdict: divert.Drop})
			continue
		}
		w.pkts = append(w.pkts, divert.Packet{Dir: q.dir, Buf: q.buf})
	}
	w.out = w.eng.Process(w.pkts, w.out[:0], time.Now())

	for i := range w.pkts {
		w.verdict(&w.batch[i], &w.pkts[i])
	}
	for _, p := range w.out {
		if err := w.inj.send(p.Buf); err != nil {
			if n := w.stats.InjectErrors.Add(1); n&(n-1) == 0 {
				w.log.Warn("tcpinc: injecting a packet failed", "dir", p.Dir, "len", len(p.Buf), "err", err, "times", n)
			}
			continue
		}
		w.stats.Injected[p.Dir&1].Add(1)
	}
	for i := range w.batch {
		putBuf(w.batch[i].buf)
		w.batch[i] = queued{}
	}
	clear(w.pkts)
	clear(w.out) // engine memory: do not keep it alive
	c := w.eng.Counters()
	w.mu.Lock()
	w.snap = c
	w.mu.Unlock()
}

func (w *worker) verdict(q *queued, p *divert.Packet) {
	var err error
	switch {
	case p.Buf == nil || p.Verdict == divert.Drop:
		err = w.nf.SetVerdict(q.id, nfqueue.NfDrop)
	case !p.Modified && q.mark&w.marks.mask == w.marks.capture && !w.known(p):
		// A captured connection's packet the engine does not know (its
		// state died with a previous run): passing it would send the
		// stack's plaintext. Fail closed.
		w.stats.DropUnknownCaptured.Add(1)
		err = w.nf.SetVerdict(q.id, nfqueue.NfDrop)
	default:
		var opts []nfqueue.VerdictOption
		if m, ok := w.connMark(p); ok {
			opts = append(opts, nfqueue.WithMark(q.mark&^w.marks.mask|m))
		}
		if p.Modified {
			opts = append(opts, nfqueue.WithAlteredPacket(p.Buf))
		}
		if len(opts) == 0 {
			err = w.nf.SetVerdict(q.id, nfqueue.NfAccept)
		} else {
			err = w.nf.SetVerdictWithOption(q.id, nfqueue.NfAccept, opts...)
		}
	}
	if err != nil {
		// The packet stays queued until the queue is torn down; TCP
		// retransmits it.
		if n := w.stats.VerdictErrors.Add(1); n&(n-1) == 0 {
			w.log.Warn("tcpinc: setting a verdict failed", "err", err, "times", n)
		}
		return
	}
	w.stats.Verdicts.Add(1)
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

// do runs fn on the worker goroutine with its engine and reports
// whether it ran (not when the worker is not running).
func (w *worker) do(fn func(*divert.Engine)) bool {
	if !w.running.Load() {
		return false
	}
	done := make(chan struct{})
	select {
	case w.reqs <- func(e *divert.Engine) { fn(e); close(done) }:
		<-done
		return true
	case <-w.stopped:
		return false
	}
}

func (w *worker) counters() divert.Counters {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snap
}

// close unbinds the queue and waits for the reader goroutine.
func (w *worker) close() {
	if w.nf != nil {
		w.nf.Close()
	}
	w.eng.Close()
}

// Packet buffers: whole packets plus headroom for the engine.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func getBuf(n int) []byte {
	if n+headroom > 2048 {
		return make([]byte, n, n+headroom)
	}
	return (*bufPool.Get().(*[]byte))[:n]
}

func putBuf(b []byte) {
	if cap(b) == 2048 {
		b = b[:0]
		bufPool.Put(&b)
	}
}

// nfLogger routes go-nfqueue's logs to slog.
type nfLogger struct{ l *slog.Logger }

func (l nfLogger) Debugf(format string, args ...any) { l.l.Debug(fmt.Sprintf(format, args...)) }
func (l nfLogger) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.HasPrefix(msg, "Stop receiving") || strings.HasPrefix(msg, "Could not unbind") {
		// Shutdown: the reader's deadline also fails the explicit unbind;
		// closing the socket unbinds the queue all the same.
		l.l.Debug(msg)
		return
	}
	l.l.Warn(msg)
}

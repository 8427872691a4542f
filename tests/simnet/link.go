package simnet

import (
	"container/heap"
	"math/rand/v2"
	"time"

	"tcpinc.dev/tcpinc/core/packet"
)

// link is one direction of the wire between the hosts, with its
// middleboxes and impairments. It is used only from the driver goroutine.
type link struct {
	net      *Network
	from, to HostID
	cfg      LinkConfig
	rng      *rand.Rand
	stats    *linkCounters

	queue    deliveryHeap // packets in flight, by delivery time
	seq      uint64       // FIFO tie-break for the queue
	busyTill time.Time    // when the transmitter finishes its current packet

	held []heldPacket // packets held back for reordering

	coalesce     []byte    // segment held by the resegmenter, or nil
	coalesceTill time.Time // when the held segment is released anyway
}

type heldPacket struct {
	buf     []byte
	passes  int       // later packets still to pass before release
	release time.Time // release time if fewer packets pass
}

type delivery struct {
	at  time.Time
	seq uint64
	buf []byte
}

func newLink(n *Network, from HostID, cfg LinkConfig, seed, stream uint64) *link {
	return &link{net: n, from: from, to: from.Peer(), cfg: cfg,
		rng: rand.New(rand.NewPCG(seed, stream)), stats: &n.linkStats[from]}
}

// chance draws a decision with probability p. It consumes randomness only
// when the impairment is configured, so turning one impairment on does
// not change the decisions of a run without it.
func (l *link) chance(p float64) bool {
	return p > 0 && l.rng.Float64() < p
}

// send puts a packet from the sending host (after its engine) onto the
// link. The link owns buf from now on.
func (l *link) send(buf []byte, now time.Time) {
	n := l.net
	l.stats.sent.Add(1)
	n.tap(TapSent, l.from, now, buf)
	if len(buf) > n.cfg.MTU && !n.cfg.AllowOversize {
		l.stats.oversize.Add(1)
		n.putBuf(buf)
		return
	}
	tcp := isTCP(buf)
	if !tcp {
		l.stats.nonTCP.Add(1)
	}
	if tcp && l.from == A && n.nat != nil && n.nat.outbound(buf) {
		l.stats.translated.Add(1)
	}
	if tcp {
		var k int
		buf, k = stripOptions(buf, l.cfg.StripOptions)
		l.stats.stripped.Add(uint64(k))
		if l.cfg.ClampMSS != 0 && clampMSS(buf, l.cfg.ClampMSS) {
			l.stats.clamped.Add(1)
		}
		l.resegment(buf, now)
		return
	}
	l.impair(buf, now)
}

// resegment runs the resegmenting middlebox: it may cut the segment in
// two, and each resulting piece may be merged with the held segment
// before it or held to be merged with the next, so that segment
// boundaries on the far side differ from the sender's. Its output goes on
// to impair.
func (l *link) resegment(buf []byte, now time.Time) {
	if l.cfg.Split == 0 && l.cfg.Coalesce == 0 {
		l.impair(buf, now)
		return
	}
	p, intact := parseIntact(buf)
	if intact && splittable(p) && l.chance(l.cfg.Split) {
		k := 1 + l.rng.IntN(p.PayloadLen()-1)
		second := l.net.getBuf(len(buf))
		first, rest, err := splitSegment(buf, k, second)
		if err == nil {
			l.stats.split.Add(1)
			// The first piece may join a held segment but is not held
			// itself: merging it with its own second half would only
			// undo the split.
			l.coalesceStage(first, now, false)
			l.coalesceStage(rest, now, true)
			return
		}
		l.net.putBuf(second)
	}
	l.coalesceStage(buf, now, true)
}

// coalesceStage merges buf into the held segment if it directly follows
// it, else releases the held segment and then, if holdable and the dice
// say so, holds buf.
func (l *link) coalesceStage(buf []byte, now time.Time, holdable bool) {
	p, intact := parseIntact(buf)
	if l.coalesce != nil {
		held, _ := packet.Parse(l.coalesce)
		if intact && mergeable(held, p, l.net.cfg.MTU) {
			if merged, err := mergeSegments(held, p); err == nil {
				l.stats.coalesced.Add(1)
				l.coalesce = nil
				l.net.putBuf(buf)
				l.impair(merged, now)
				return
			}
		}
		l.flushCoalesce(now)
	}
	if holdable && intact && coalescible(p) && l.chance(l.cfg.Coalesce) {
		l.coalesce = buf
		l.coalesceTill = now.Add(l.cfg.CoalesceHold)
		return
	}
	l.impair(buf, now)
}

func (l *link) flushCoalesce(now time.Time) {
	if b := l.coalesce; b != nil {
		l.coalesce = nil
		l.impair(b, now)
	}
}

// impair applies loss, duplication, reordering and delay.
func (l *link) impair(buf []byte, now time.Time) {
	if l.chance(l.cfg.Loss) {
		l.stats.lost.Add(1)
		l.net.putBuf(buf)
		l.passed(now)
		return
	}
	if l.chance(l.cfg.Duplicate) {
		l.stats.duplicated.Add(1)
		dup := append(l.net.getBuf(len(buf)), buf...)
		l.schedule(dup, now)
	}
	if l.chance(l.cfg.Reorder) {
		l.stats.reordered.Add(1)
		l.held = append(l.held, heldPacket{buf: buf, passes: l.cfg.ReorderDepth,
			release: now.Add(l.cfg.ReorderMaxHold)})
		return
	}
	l.schedule(buf, now)
	l.passed(now)
}

// passed counts one packet past the held ones and releases those whose
// count ran out, so that they arrive after it.
func (l *link) passed(now time.Time) {
	kept := l.held[:0]
	for _, h := range l.held {
		h.passes--
		if h.passes <= 0 {
			l.schedule(h.buf, now)
			continue
		}
		kept = append(kept, h)
	}
	clear(l.held[len(kept):])
	l.held = kept
}

// schedule transmits buf: it waits for the transmitter, takes its
// serialization time at the link's bandwidth, then propagates for Delay
// plus jitter.
func (l *link) schedule(buf []byte, now time.Time) {
	at := now
	if l.cfg.Bandwidth > 0 {
		if l.busyTill.After(at) {
			at = l.busyTill
		}
		at = at.Add(time.Duration(int64(len(buf)) * 8 * int64(time.Second) / l.cfg.Bandwidth))
		l.busyTill = at
	}
	at = at.Add(l.cfg.Delay)
	if l.cfg.Jitter > 0 {
		at = at.Add(time.Duration(l.rng.Int64N(int64(l.cfg.Jitter))))
	}
	l.seq++
	heap.Push(&l.queue, delivery{at: at, seq: l.seq, buf: buf})
}

// poll releases held packets whose time has come and returns, in order,
// the packets due for delivery at now.
func (l *link) poll(now time.Time, due [][]byte) [][]byte {
	if l.coalesce != nil && !l.coalesceTill.After(now) {
		l.flushCoalesce(now)
	}
	if len(l.held) > 0 {
		kept := l.held[:0]
		for _, h := range l.held {
			if !h.release.After(now) {
				l.schedule(h.buf, now)
				continue
			}
			kept = append(kept, h)
		}
		clear(l.held[len(kept):])
		l.held = kept
	}
	for len(l.queue) > 0 && !l.queue[0].at.After(now) {
		d := heap.Pop(&l.queue).(delivery)
		due = append(due, d.buf)
	}
	return due
}

// nextEvent returns when the link next has something to do (zero if
// nothing is in flight or held).
func (l *link) nextEvent() time.Time {
	var t time.Time
	if len(l.queue) > 0 {
		t = l.queue[0].at
	}
	for _, h := range l.held {
		t = earliest(t, h.release)
	}
	if l.coalesce != nil {
		t = earliest(t, l.coalesceTill)
	}
	return t
}

// drain returns every buffer the link holds to the pool.
func (l *link) drain() {
	for _, d := range l.queue {
		l.net.putBuf(d.buf)
	}
	l.queue = nil
	for _, h := range l.held {
		l.net.putBuf(h.buf)
	}
	l.held = nil
	if l.coalesce != nil {
		l.net.putBuf(l.coalesce)
		l.coalesce = nil
	}
}

// earliest returns the earlier of two times, treating zero as "never".
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero():
		return a
	case b.Before(a):
		return b
	}
	return a
}

type deliveryHeap []delivery

func (h deliveryHeap) Len() int { return len(h) }
func (h deliveryHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h deliveryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *deliveryHeap) Push(x any)   { *h = append(*h, x.(delivery)) }
func (h *deliveryHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = delivery{}
	*h = old[:len(old)-1]
	return d
}

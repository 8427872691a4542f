package simnet

import (
	"container/heap"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// simEpoch is simulated time zero. A fixed, recognisable instant keeps
// timestamps in logs and engine state reproducible.
var simEpoch = time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)

// simClock is the simulated clock shared by both stacks, the link and the
// engines. It implements tcpip.Clock.
//
// Time moves only when the network's driver calls advanceTo, and timers
// fire only when the driver calls fireDue, on the driver's goroutine (the
// callbacks gVisor installs are short: they wake a worker goroutine).
// Unlike faketime.ManualClock it reports when its next timer is due, so
// the driver can jump straight to the next event.
type simClock struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers timerHeap
	// wake is poked when a timer becomes due without time moving (a zero
	// or negative duration), so that the driver does not sleep on it.
	wake func()
}

var _ tcpip.Clock = (*simClock)(nil)

func newSimClock(wake func()) *simClock {
	return &simClock{now: simEpoch, wake: wake}
}

// Now implements tcpip.Clock. Every reading moves the clock on by a
// nanosecond, as a real clock moves while the code that reads it runs:
// two events are never simultaneous. (gVisor's RACK loss detection, for
// one, misorders segments sent at exactly the same instant and would
// declare them lost.)
func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Nanosecond)
	return c.now
}

// peek returns the current time without moving it.
func (c *simClock) peek() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NowMonotonic implements tcpip.Clock.
func (c *simClock) NowMonotonic() tcpip.MonotonicTime {
	var m tcpip.MonotonicTime
	return m.Add(c.Now().Sub(simEpoch))
}

// AfterFunc implements tcpip.Clock.
func (c *simClock) AfterFunc(d time.Duration, f func()) tcpip.Timer {
	t := &simTimer{c: c, f: f, index: -1}
	t.Reset(d)
	return t
}

// elapsed returns the simulated time since the epoch.
func (c *simClock) elapsed() time.Duration { return c.peek().Sub(simEpoch) }

// nextTimer returns when the earliest pending timer fires (zero if none).
func (c *simClock) nextTimer() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return time.Time{}
	}
	return c.timers[0].when
}

// advanceTo moves the clock forward to t (never backwards). It does not
// fire timers; fireDue does.
func (c *simClock) advanceTo(t time.Time) {
	c.mu.Lock()
	if t.After(c.now) {
		c.now = t
	}
	c.mu.Unlock()
}

// fireDue runs the callbacks of every timer due at the current time, in
// order of deadline then creation, and reports how many ran. Timers that
// callbacks arm for "now" run in the same call.
func (c *simClock) fireDue() int {
	n := 0
	for {
		c.mu.Lock()
		if len(c.timers) == 0 || c.timers[0].when.After(c.now) {
			c.mu.Unlock()
			return n
		}
		t := heap.Pop(&c.timers).(*simTimer)
		c.mu.Unlock()
		t.f()
		n++
	}
}

// simTimer implements tcpip.Timer on a simClock.
type simTimer struct {
	c     *simClock
	f     func()
	when  time.Time
	seq   uint64
	index int // position in the clock's heap, -1 when not pending
}

// Stop implements tcpip.Timer.
func (t *simTimer) Stop() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&c.timers, t.index)
	return true
}

// Reset implements tcpip.Timer.
func (t *simTimer) Reset(d time.Duration) {
	c := t.c
	c.mu.Lock()
	if t.index >= 0 {
		heap.Remove(&c.timers, t.index)
	}
	if d < 0 {
		d = 0
	}
	t.when = c.now.Add(d)
	c.seq++
	t.seq = c.seq
	heap.Push(&c.timers, t)
	due := d == 0
	c.mu.Unlock()
	if due && c.wake != nil {
		c.wake()
	}
}

// timerHeap orders timers by deadline, then by arming order, so that
// timers due at the same instant fire in a reproducible order.
type timerHeap []*simTimer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if !h[i].when.Equal(h[j].when) {
		return h[i].when.Before(h[j].when)
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *timerHeap) Push(x any) {
	t := x.(*simTimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	t.index = -1
	*h = old[:len(old)-1]
	return t
}

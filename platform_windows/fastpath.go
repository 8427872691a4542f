package platform_windows

import (
	"net/netip"
	"time"

	"tcpinc.dev/tcpinc/core/packet"
)

// flow identifies a connection from this host's point of view.
type flow struct{ local, remote netip.AddrPort }

// flowOf is the flow of a parsed TCP packet travelling out (from the
// local stack) or in.
func flowOf(pk *packet.Packet, outbound bool) flow {
	if outbound {
		return flow{local: pk.Src(), remote: pk.Dst()}
	}
	return flow{local: pk.Dst(), remote: pk.Src()}
}

// The fast path. WinDivert has no per-connection mark and a handle's
// filter cannot change, so a connection that stayed plain cannot leave
// the capture path the way it does on Linux. The worker remembers it
// instead and re-injects its packets in the same batch they came in,
// without the engine: one map lookup per packet on top of the driver's
// round trip. Replacing the handle with one whose filter leaves out the
// plain connections was rejected: WinDivert compiles at most 256 filter
// tests, does not optimise them, and while two handles overlap a packet
// is captured by both or by neither, which an encrypted connection
// cannot afford (fail closed).

// plainTable is the fast path's set of plain connections.
type plainTable struct {
	m   map[flow]plainEntry
	max int
}

type plainEntry struct {
	seen    int64 // unix seconds of the last packet
	closing bool  // a FIN or RST went by
}

// Plain connections are forgotten after this long without packets, or
// this long after their FIN or RST. A forgotten connection's packets go
// through the engine again, which passes them unchanged.
const (
	plainIdle   = 2 * time.Hour
	plainClosed = 2 * time.Minute
	plainMax    = 1 << 18
)

func newPlainTable(max int) plainTable {
	return plainTable{m: make(map[flow]plainEntry), max: max}
}

// add puts a connection on the fast path; false when the table is full.
func (t *plainTable) add(f flow, now int64) bool {
	if _, ok := t.m[f]; !ok && len(t.m) >= t.max {
		return false
	}
	t.m[f] = plainEntry{seen: now}
	return true
}

// pass reports whether a packet of f with the given TCP flags takes the
// fast path, and notes it. A SYN without ACK opens a new connection on
// the same 4-tuple: the old entry goes and the engine sees the SYN.
func (t *plainTable) pass(f flow, flags packet.Flags, now int64) bool {
	e, ok := t.m[f]
	if !ok {
		return false
	}
	if flags&(packet.SYN|packet.ACK) == packet.SYN {
		delete(t.m, f)
		return false
	}
	e.seen = now
	if flags&(packet.FIN|packet.RST) != 0 {
		e.closing = true
	}
	t.m[f] = e
	return true
}

// expire forgets idle and closed connections and returns how many.
func (t *plainTable) expire(now int64) int {
	n := 0
	for f, e := range t.m {
		age := time.Duration(now-e.seen) * time.Second
		if age > plainIdle || (e.closing && age > plainClosed) {
			delete(t.m, f)
			n++
		}
	}
	return n
}

func (t *plainTable) len() int { return len(t.m) }

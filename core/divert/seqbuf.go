package divert

// seqBuf holds the bytes of a window of a TCP sequence space: those from
// start up to start+len(data). It backs both the send side (wire bytes
// sent but not yet acknowledged, for retransmission) and the receive
// side (wire bytes received, in or out of order, until the local stack
// has acknowledged their plaintext). Holes are tracked by the receive
// side's interval list; seqBuf only stores bytes. The backing array is
// reused, so steady-state operation does not allocate.
type seqBuf struct {
	start uint32
	buf   []byte // backing store; data is buf[off : off+n]
	off   int
	n     int
	max   int // most bytes the buffer may hold
}

func (b *seqBuf) reset(start uint32, max int) {
	b.start, b.off, b.n, b.max = start, 0, 0, max
}

func (b *seqBuf) end() uint32 { return b.start + uint32(b.n) }

func (b *seqBuf) len() int { return b.n }

// ensure makes room for the window to extend to n bytes. It reports false
// if that exceeds max.
func (b *seqBuf) ensure(n int) bool {
	if n > b.max {
		return false
	}
	if b.off+n <= len(b.buf) {
		return true
	}
	if n <= len(b.buf) {
		// Slide the live bytes to the front.
		copy(b.buf, b.buf[b.off:b.off+b.n])
		b.off = 0
		return true
	}
	size := 2 * len(b.buf)
	if size < 4096 {
		size = 4096
	}
	for size < n {
		size *= 2
	}
	nb := make([]byte, size)
	copy(nb, b.buf[b.off:b.off+b.n])
	b.buf, b.off = nb, 0
	return true
}

// write stores p at sequence number seq, which must not be before start.
// The window grows to cover it (bytes in any gap are left as they are).
func (b *seqBuf) write(seq uint32, p []byte) bool {
	rel := int(seq - b.start)
	if rel < 0 {
		return false
	}
	need := rel + len(p)
	if need > b.n {
		if !b.ensure(need) {
			return false
		}
		b.n = need
	}
	copy(b.buf[b.off+rel:], p)
	return true
}

// slice returns the stored bytes [seq, seq+n). The caller must ensure the
// range is inside the window.
func (b *seqBuf) slice(seq uint32, n int) []byte {
	rel := int(seq - b.start)
	return b.buf[b.off+rel : b.off+rel+n]
}

// contains reports whether [seq, seq+n) lies in the window.
func (b *seqBuf) contains(seq uint32, n int) bool {
	rel := int(seq - b.start)
	return rel >= 0 && rel+n <= b.n && !seqLT(seq, b.start)
}

// advance drops bytes before seq.
func (b *seqBuf) advance(seq uint32) {
	if !seqGT(seq, b.start) {
		return
	}
	d := int(seq - b.start)
	if d >= b.n {
		b.off, b.n = 0, 0
	} else {
		b.off += d
		b.n -= d
	}
	b.start = seq
}

// truncate forgets bytes from seq on.
func (b *seqBuf) truncate(seq uint32) {
	if rel := int(seq - b.start); rel >= 0 && rel < b.n {
		b.n = rel
	}
}

// wipe zeroes the backing array (it may hold plaintext-derived bytes).
func (b *seqBuf) wipe() {
	clear(b.buf)
	b.buf, b.off, b.n = nil, 0, 0
}

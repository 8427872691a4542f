package divert

// frameRec maps one frame between the local stack's sequence space (the
// plaintext stream it sends or receives) and the wire's (Init message and
// frames). Init messages are recorded as frames with no local bytes.
type frameRec struct {
	local uint32 // local sequence number of the frame's first data byte
	llen  uint32 // data bytes (plus 1 if the frame carries the FIN)
	wire  uint32 // wire sequence number of the frame's first byte
	wlen  uint32 // frame bytes on the wire (plus 1 for the FIN)
	fin   bool   // the frame carries FINp and its segment the TCP FIN
	gen   uint32 // key generation (receive side: to open it again)
	off   uint64 // stream offset of the frame (receive side)
}

func (r *frameRec) localEnd() uint32 { return r.local + r.llen }
func (r *frameRec) wireEnd() uint32  { return r.wire + r.wlen }

// frameQueue is a FIFO of frame records in sequence order, reusing its
// backing array.
type frameQueue struct {
	recs []frameRec
	head int
}

func (q *frameQueue) len() int { return len(q.recs) - q.head }

func (q *frameQueue) at(i int) *frameRec { return &q.recs[q.head+i] }

func (q *frameQueue) last() *frameRec {
	if q.len() == 0 {
		return nil
	}
	return &q.recs[len(q.recs)-1]
}

func (q *frameQueue) push(r frameRec) {
	if q.head > 0 && len(q.recs) == cap(q.recs) {
		n := copy(q.recs, q.recs[q.head:])
		q.recs = q.recs[:n]
		q.head = 0
	}
	q.recs = append(q.recs, r)
}

func (q *frameQueue) pop() {
	q.head++
	if q.head == len(q.recs) {
		q.recs = q.recs[:0]
		q.head = 0
	}
}

func (q *frameQueue) clear() {
	q.recs = q.recs[:0]
	q.head = 0
}

// findLocal returns the index of the first record carrying local bytes
// at or after seq (the one containing seq if any), or -1. Zero-length
// records (Init messages, empty rekey frames) are never returned.
func (q *frameQueue) findLocal(seq uint32) int {
	lo, hi := 0, q.len()
	for lo < hi { // first record whose localEnd is after seq
		m := (lo + hi) / 2
		if seqGT(q.at(m).localEnd(), seq) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	for ; lo < q.len(); lo++ {
		if q.at(lo).llen > 0 {
			return lo
		}
	}
	return -1
}

// findWire returns the index of the record whose wire range contains seq,
// or -1.
func (q *frameQueue) findWire(seq uint32) int {
	lo, hi := 0, q.len()
	for lo < hi {
		m := (lo + hi) / 2
		r := q.at(m)
		switch {
		case seqLT(seq, r.wire):
			hi = m
		case seqGEQ(seq, r.wireEnd()):
			lo = m + 1
		default:
			return m
		}
	}
	return -1
}

package divert

import (
	"errors"
	"time"

	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/packet"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

// Sequence mapping. The local stack sees a plain byte stream; the wire
// carries the Init message and frames (RFC 8548 §3.3, §3.6), so every
// frame adds bytes. Both directions keep frame records that map local
// sequence numbers to wire ones; ISNs are not changed.

// sendSide maps the local stack's outbound stream to the wire.
type sendSide struct {
	wireNxt    uint32 // next wire sequence number
	localNxt   uint32 // next new local sequence number
	una        uint32 // oldest wire byte the peer has not acknowledged
	ackedLocal uint32 // local acknowledgment given to the local stack
	buf        seqBuf // wire bytes of unacknowledged frames, for retransmission
	frames     frameQueue
	streamOff  uint64 // stream offset of wireNxt (Init counted)
	appBytes   uint64
}

func (s *sendSide) reset(start uint32, max int) {
	s.wireNxt, s.localNxt, s.una, s.ackedLocal = start, start, start, start
	s.buf.reset(start, max)
	s.frames.clear()
	s.streamOff, s.appBytes = 0, 0
}

func (s *sendSide) wipe() { s.buf.wipe() }

// mapLocalSeq maps a local sequence number to the wire.
func (s *sendSide) mapLocalSeq(seq uint32) uint32 {
	if seqGEQ(seq, s.localNxt) {
		return s.wireNxt + (seq - s.localNxt)
	}
	if i := s.frames.findLocal(seq); i >= 0 {
		r := s.frames.at(i)
		if seqGEQ(seq, r.local) {
			return r.wire + (seq - r.local)
		}
		return r.wire
	}
	return s.wireNxt
}

// room reports whether n more wire bytes fit the send buffer.
func (s *sendSide) room(n int) bool {
	return int(s.wireNxt-s.buf.start)+n <= s.buf.max
}

// push records a frame (or Init message) sent at wireNxt.
func (s *sendSide) push(local, llen uint32, wire []byte, fin bool) (frameRec, bool) {
	r := frameRec{local: local, llen: llen, wire: s.wireNxt, wlen: uint32(len(wire)), fin: fin}
	if !s.buf.write(s.wireNxt, wire) {
		return r, false
	}
	if fin {
		r.llen++
		r.wlen++
	}
	s.frames.push(r)
	s.wireNxt += r.wlen
	s.localNxt = local + r.llen
	s.streamOff += uint64(len(wire))
	return r, true
}

// onAck processes the peer's acknowledgment of wire bytes and returns
// the local acknowledgment: the end of the last frame fully acknowledged.
func (s *sendSide) onAck(wireAck uint32) uint32 {
	if seqGT(wireAck, s.wireNxt) {
		wireAck = s.wireNxt
	}
	if seqGT(wireAck, s.una) {
		s.una = wireAck
	}
	for s.frames.len() > 0 {
		r := s.frames.at(0)
		if !seqLEQ(r.wireEnd(), s.una) {
			break
		}
		s.ackedLocal = seqMax(s.ackedLocal, r.localEnd())
		s.frames.pop()
	}
	if s.frames.len() > 0 {
		s.buf.advance(s.frames.at(0).wire)
	} else {
		s.buf.advance(s.wireNxt)
	}
	return s.ackedLocal
}

// recvSide maps the peer's wire stream to the local stack.
type recvSide struct {
	wireNxt    uint32 // next wire byte to consume (frame boundary)
	localNxt   uint32 // next local sequence number to deliver
	localAcked uint32 // the local stack's latest acknowledgment
	ackedWire  uint32 // wire acknowledgment matching localAcked
	buf        seqBuf // wire bytes from the oldest frame not acked by the local stack
	have       []span // received wire ranges at or after wireNxt
	delivered  frameQueue
	streamOff  uint64
	initDone   bool
	finp       bool   // a FINp frame was delivered
	tcpFIN     bool   // a TCP FIN arrived ...
	finSeq     uint32 // ... at this wire sequence number
	appBytes   uint64
	// partEnd ends the wire bytes received in order past wireNxt: the
	// start of a frame still incomplete. maxAck is the highest wire
	// acknowledgment given to the peer.
	partEnd, maxAck uint32
}

type span struct{ s, e uint32 }

func (r *recvSide) reset(start uint32, max int) {
	r.wireNxt, r.localNxt, r.localAcked, r.ackedWire = start, start, start, start
	r.partEnd, r.maxAck = start, start
	r.buf.reset(start, max)
	r.have = r.have[:0]
	r.delivered.clear()
	r.streamOff, r.appBytes = 0, 0
	r.initDone, r.finp, r.tcpFIN = false, false, false
}

func (r *recvSide) wipe() { r.buf.wipe() }

// onLocalAck takes the local stack's acknowledgment and returns the wire
// acknowledgment to send: the end of the last frame whose plaintext the
// stack has acknowledged. Frames are acknowledged on the wire only once
// the stack has their plaintext, so a segment the stack lost can be
// delivered again from the buffer.
func (r *recvSide) onLocalAck(ack uint32) uint32 {
	if seqGT(ack, r.localNxt) {
		ack = r.localNxt
	}
	if seqGT(ack, r.localAcked) {
		r.localAcked = ack
	}
	for r.delivered.len() > 0 {
		d := r.delivered.at(0)
		if !seqLEQ(d.localEnd(), r.localAcked) {
			break
		}
		r.ackedWire = d.wireEnd()
		r.delivered.pop()
	}
	if r.delivered.len() == 0 {
		r.ackedWire = r.wireNxt
		r.buf.advance(r.wireNxt)
	} else {
		r.buf.advance(r.delivered.at(0).wire)
	}
	return r.wireAck()
}

// wireAck is the acknowledgment for the peer: the end of the frames the
// stack has acknowledged and, once it has them all, the received start
// of an incomplete frame too. A frame may be larger than the peer's
// congestion window (another implementation's 60 KiB frames, a GSO
// super-packet's frame): not acknowledging its first part until the rest
// arrives would stall the connection. Those bytes stay in the buffer,
// and the stack's receive buffer still paces the peer one frame later.
// It never goes back.
func (r *recvSide) wireAck() uint32 {
	a := r.ackedWire
	if r.delivered.len() == 0 && seqGT(r.partEnd, a) {
		a = r.partEnd
	}
	if seqGT(a, r.maxAck) {
		r.maxAck = a
	}
	return r.maxAck
}

// addSpan records received wire bytes [s, e).
func (r *recvSide) addSpan(s, e uint32) {
	if !seqLT(s, e) {
		return
	}
	i := 0
	for i < len(r.have) && seqLT(r.have[i].e, s) {
		i++
	}
	j := i
	for j < len(r.have) && seqLEQ(r.have[j].s, e) {
		s, e = seqMin(s, r.have[j].s), seqMax(e, r.have[j].e)
		j++
	}
	if i == j {
		r.have = append(r.have, span{})
		copy(r.have[i+1:], r.have[i:])
		r.have[i] = span{s, e}
		return
	}
	r.have[i] = span{s, e}
	r.have = append(r.have[:i+1], r.have[j:]...)
}

// contiguous returns how many bytes are available at wireNxt.
func (r *recvSide) contiguous() int {
	k := 0
	for k < len(r.have) && seqLEQ(r.have[k].e, r.wireNxt) {
		k++
	}
	if k > 0 {
		// Shift in place so the backing array keeps its capacity.
		r.have = r.have[:copy(r.have, r.have[k:])]
	}
	if len(r.have) == 0 || seqGT(r.have[0].s, r.wireNxt) {
		return 0
	}
	return int(r.have[0].e - r.wireNxt)
}

// delivery is plaintext for the local stack.
type delivery struct {
	seq    uint32
	data   []byte
	fin    bool
	urg    bool
	urgent uint16
	// buf and off: data is buf[off:off+len(data)], opened with
	// hdrRoom bytes before it, so the segment's headers can be written
	// in front of the plaintext instead of copying it (buf nil: no room).
	buf []byte
	off int
}

// hdrRoom is the room left before an opened frame for the headers of
// the segment that delivers it: IPv6 and the largest TCP header.
const hdrRoom = packet.IPv6HeaderLen + 60

// openRoom copies a frame from the receive buffer into engine memory
// with hdrRoom bytes before it, ready to be opened in place.
func (c *conn) openRoom(frame []byte) (buf, ct []byte) {
	buf = c.e.buffer(hdrRoom + len(frame))[:hdrRoom+len(frame)]
	copy(buf[hdrRoom:], frame)
	return buf, buf[hdrRoom:]
}

// dataOffset is where data (which aliases buf) starts in buf.
func dataOffset(buf, data []byte) int {
	if len(data) == 0 {
		return -1
	}
	off := cap(buf) - cap(data)
	if off < 0 || off+len(data) > len(buf) || &buf[off] != &data[0] {
		return -1 // not where expected: build by copying
	}
	return off
}

// ---- outbound data --------------------------------------------------

// sendInit puts an Init message at the start of our data stream and
// sends it; the engine retransmits it until the peer acknowledges it.
func (c *conn) sendInit(msg []byte) {
	s := &c.snd
	r, ok := s.push(s.localNxt, 0, msg, false)
	if !ok {
		c.abort(&c.e.ctr.AbortInternal, "send buffer", nil)
		return
	}
	b := c.build(Outbound, r.wire, c.rcv.wireAck(), packet.ACK|packet.PSH, msg)
	if p := c.carrier; p != nil {
		// The stack's bare ACK that completed the handshake: Init1
		// takes its place (it acknowledges the same), one packet less.
		c.carrier = nil
		first := true
		c.place(p, &first, Outbound, b)
	} else {
		c.e.inject(Outbound, b)
	}
	c.initRTO = c.e.cfg.InitRTO
	c.initTimer = c.e.now.Add(c.initRTO)
	c.e.setTimer(c.initTimer)
}

// retransmitInit resends our Init message if the peer has not
// acknowledged it yet.
func (c *conn) retransmitInit() {
	s := &c.snd
	if s.frames.len() == 0 || s.frames.at(0).llen != 0 || s.frames.at(0).wire != c.localISN+1 {
		c.initTimer = time.Time{}
		return
	}
	r := s.frames.at(0)
	if !s.buf.contains(r.wire, int(r.wlen)) {
		c.initTimer = time.Time{}
		return
	}
	c.e.ctr.InitRetransmits++
	c.e.inject(Outbound, c.build(Outbound, r.wire, c.rcv.wireAck(), packet.ACK|packet.PSH, s.buf.slice(r.wire, int(r.wlen))))
	c.initRTO *= 2
	if c.initRTO > 4*time.Second {
		c.initRTO = 4 * time.Second
	}
	c.initTimer = c.e.now.Add(c.initRTO)
}

// sendData encrypts an outbound data segment, or re-sends the frames of
// a retransmitted one exactly as they first went out.
func (c *conn) sendData(p *Packet, pk *packet.Packet, wireAck uint32) {
	tcp := pk.TCP()
	flags := tcp.Flags()
	seq := tcp.Seq()
	s := &c.snd
	if seqLT(seq, s.localNxt) {
		c.retransmit(p, pk, wireAck)
		return
	}
	if seq != s.localNxt {
		c.e.ctr.DropUnexpected++
		p.Verdict = Drop
		return
	}
	fin := flags&packet.FIN != 0
	if c.localFIN && !fin {
		c.e.ctr.DropUnexpected++
		p.Verdict = Drop
		return
	}
	data := pk.Payload()
	first := true
	var head []byte
	for len(data) > 0 || fin {
		// The first frame replaces the segment (a GSO super-packet keeps
		// its size: the kernel segments it after the verdict); what does
		// not fit the IP length field goes out in injected segments no
		// larger than the stack's own.
		chunk := data
		if lim := maxFrameChunk; len(chunk) > lim {
			chunk = chunk[:lim]
		}
		if !first || c.replaying {
			// Injected: no larger than the stack's own segments.
			if lim := c.segData(); len(chunk) > lim {
				chunk = chunk[:lim]
			}
		}
		last := len(chunk) == len(data)
		var ff byte
		if fin && last {
			ff = tcpcrypt.FlagFIN
		}
		var urgent *uint16
		if flags&packet.URG != 0 && first {
			u := tcp.Urgent()
			urgent = &u
		}
		if !s.room(tcpcrypt.FrameLen(len(chunk), urgent != nil)) {
			c.e.ctr.DropBufferFull++
			if first {
				p.Verdict = Drop
			}
			break
		}
		e := c.e
		k, control := c.sess.SendKey()
		out := packet.ACK | packet.PSH
		if ff != 0 {
			out |= packet.FIN
		}
		// Sealed from where the data is straight into the outgoing
		// segment (which never aliases the captured packet), then kept
		// for retransmission.
		sum := !first || c.replaying || !p.SegmentedLater
		b, wire, err := c.buildSealed(s.wireNxt, wireAck, out, k, s.streamOff, control, ff, urgent, chunk, sum)
		if err != nil {
			c.abort(&e.ctr.AbortInternal, "seal frame", err)
			p.Verdict = Drop
			return
		}
		c.sess.FrameSent()
		s.push(s.localNxt, uint32(len(chunk)), wire, ff != 0)
		e.ctr.FramesSealed++
		e.ctr.BytesEncrypted += uint64(len(chunk))
		s.appBytes += uint64(len(chunk))
		if ff != 0 {
			c.localFIN = true
			c.closeSoon()
		}
		data = data[len(chunk):]
		if first {
			// data aliases p.Buf: the first frame replaces it only
			// once every frame is sealed.
			head, first = b, false
			if head == nil {
				p.Verdict = Drop
			}
		} else {
			c.e.inject(Outbound, b)
		}
		if ff != 0 {
			break
		}
	}
	if head != nil {
		first = true
		c.place(p, &first, Outbound, head)
	}
}

// retransmit re-sends the frames covering a retransmitted local range
// from the send buffer: the same wire bytes for the same sequence
// numbers (RFC 8548 §3.6), however the local stack split or coalesced the
// range this time.
func (c *conn) retransmit(p *Packet, pk *packet.Packet, wireAck uint32) {
	s := &c.snd
	tcp := pk.TCP()
	seq := tcp.Seq()
	end := seq + uint32(pk.PayloadLen())
	if tcp.Flags()&packet.FIN != 0 {
		end++
	}
	if seqGT(end, s.localNxt) {
		// New bytes appended to a retransmission: send the old part now;
		// the stack retransmits the rest.
		end = s.localNxt
	}
	i := s.frames.findLocal(seq)
	if i < 0 {
		// All acknowledged already: tell the stack.
		p.Verdict = Drop
		c.e.inject(Inbound, c.build(Inbound, c.rcv.localNxt, s.ackedLocal, packet.ACK, nil))
		return
	}
	// Unacknowledged empty frames just before (a rekey reply) go too.
	for i > 0 && s.frames.at(i-1).llen == 0 && seqGT(s.frames.at(i-1).wireEnd(), s.una) {
		i--
	}
	// Each frame's wire bytes from the one holding the first
	// retransmitted local byte are sent again, cut into pieces no larger
	// than the stack's segment: the same bytes at the same sequence
	// numbers as before (RFC 8548 §3.6). A frame's header goes with its
	// first data byte.
	piece := c.pieceSize(pk.PayloadLen())
	first := true
	for j := i; j < s.frames.len(); j++ {
		r := s.frames.at(j)
		if !seqLT(r.local, end) && r.llen > 0 {
			break
		}
		ws, _, _ := r.wireRange(seq, end)
		// The rest of the frame goes too: the stack cannot move past
		// the frame until the peer acknowledges all of it, so it would
		// never retransmit a lost later part of a large frame itself.
		// Bytes the peer acknowledged already are skipped.
		_, we, fin := r.wireRange(r.local, r.localEnd())
		if seqLT(ws, s.una) {
			ws = seqMin(s.una, we)
		}
		if !s.buf.contains(ws, int(we-ws)) {
			c.abort(&c.e.ctr.AbortInternal, "retransmission outside the send buffer", nil)
			p.Verdict = Drop
			return
		}
		c.e.ctr.Retransmits++
		for ws != we || fin {
			n := min(int(we-ws), piece)
			out := packet.ACK | packet.PSH
			last := ws+uint32(n) == we
			if fin && last {
				out |= packet.FIN
			}
			c.place(p, &first, Outbound, c.build(Outbound, ws, wireAck, out, s.buf.slice(ws, n)))
			ws += uint32(n)
			if last {
				break
			}
		}
	}
	if first {
		p.Verdict = Drop
	}
}

// maxFrameChunk is the most data one frame of a segment carries: the
// frame must fit a segment whose IP length field (16 bits) also covers
// the largest IPv4 and TCP headers.
const maxFrameChunk = 0xffff - 60 - 60 - tcpcrypt.FrameOverhead - 2

// pieceSize is the most wire bytes an engine-made segment of this
// connection carries besides the one replacing a captured segment: n
// (the captured segment's payload) or the stack's segment size, plus a
// frame's overhead, since the peer's MSS was lowered by that much.
func (c *conn) pieceSize(n int) int {
	return min(max(n, c.segData())+tcpcrypt.FrameOverhead+2, maxFrameChunk)
}

// segData is the most data the local stack puts in a segment: the MSS
// it was given (lowered by the engine) less the timestamp option that
// every segment then carries (RFC 7323), as engine-made segments do.
func (c *conn) segData() int {
	seg := int(c.segSize)
	if seg == 0 {
		seg = 536 // RFC 9293's default MSS
	}
	if c.outTS.ok {
		seg -= 12
	}
	return max(seg, 64)
}

// wireRange maps the local range [seq, end) onto the frame's wire bytes:
// the bytes holding that data, with the frame's header (and flags,
// urgent) if the range covers its first data byte, and the tag if it
// covers the last. Frames without data map whole. fin reports that the
// range covers the frame's FIN.
func (r *frameRec) wireRange(seq, end uint32) (ws, we uint32, fin bool) {
	wlen, llen := r.wlen, r.llen
	if r.fin {
		wlen--
		llen--
		fin = seqGT(end, r.local+llen)
	}
	if llen == 0 {
		return r.wire, r.wire + wlen, fin
	}
	hdr := wlen - llen - tcpcrypt.TagLen // header, flags, urgent
	at := func(x uint32) uint32 {
		switch {
		case seqLEQ(x, r.local):
			return r.wire
		case seqGEQ(x, r.local+llen):
			return r.wire + wlen
		}
		return r.wire + hdr + (x - r.local)
	}
	return at(seq), at(end), fin
}

// sendEmptyFrame sends a frame with no data now: the reply §3.8 requires
// when the peer's rekey moved our generation.
func (c *conn) sendEmptyFrame() {
	if c.localFIN {
		return
	}
	s := &c.snd
	k, control := c.sess.SendKey()
	wire, err := k.AppendFrame(c.e.frameBuf[:0], s.streamOff, control, 0, nil, nil)
	if err != nil || !s.room(len(wire)) {
		return
	}
	c.e.frameBuf = wire[:0]
	c.sess.FrameSent()
	r, _ := s.push(s.localNxt, 0, wire, false)
	c.e.ctr.FramesSealed++
	c.e.inject(Outbound, c.build(Outbound, r.wire, c.rcv.wireAck(), packet.ACK|packet.PSH, wire))
}

// ---- inbound data ---------------------------------------------------

func (c *conn) inData(p *Packet, pk *packet.Packet) {
	tcp := pk.TCP()
	flags := tcp.Flags()
	if flags&packet.SYN != 0 {
		return // a retransmitted SYN or SYN-ACK: the stack answers it
	}
	if c.needENO && flags&packet.ACK != 0 && seqGT(tcp.Ack(), c.localISN+1) && seqLEQ(tcp.Ack(), c.snd.wireNxt) {
		// The peer acknowledges part of our stream (Init1, or a frame
		// when resuming), and everything we sent after the SYN carried
		// ENO: it has one.
		c.peerHasENO()
	}
	prevAck := c.snd.ackedLocal
	localAck := prevAck
	// A duplicate acknowledgment on the wire (the peer saw data beyond
	// a hole, RFC 5681) goes to the stack as one, so that it retransmits
	// without waiting for its timer. An ack that moved within a frame
	// does not: to the stack it would look like a duplicate and cause a
	// spurious retransmission.
	dupAck := flags&(packet.ACK|packet.SYN|packet.FIN|packet.RST) == packet.ACK && pk.PayloadLen() == 0 &&
		tcp.Ack() == c.snd.una && c.snd.una != c.snd.wireNxt
	if flags&packet.ACK != 0 {
		localAck = c.snd.onAck(tcp.Ack())
		if !c.initTimer.IsZero() && (c.snd.frames.len() == 0 || c.snd.frames.at(0).wire != c.localISN+1) {
			c.initTimer = time.Time{}
		}
	}
	seq := tcp.Seq()
	r := &c.rcv
	if flags&packet.RST != 0 {
		// RFC 5961 spirit: an exact RST resets; one elsewhere in the
		// window becomes a challenge for the stack; others are dropped.
		lseq := r.localNxt
		switch {
		case seq == r.wireNxt:
			c.phase = phaseGone
		case seqGT(seq, r.wireNxt) && seqLT(seq, r.wireNxt+uint32(r.buf.max)):
			lseq++
		default:
			c.e.ctr.DropForgedRST++
			p.Verdict = Drop
			return
		}
		first := true
		c.place(p, &first, Inbound, c.build(Inbound, lseq, localAck, flags&(packet.RST|packet.ACK), nil))
		return
	}
	c.deliv = c.deliv[:0]
	dup := false
	prevWireAck := r.maxAck
	if n := pk.PayloadLen(); n > 0 || flags&packet.FIN != 0 {
		dup = c.receive(seq, pk.Payload(), flags&packet.FIN != 0)
		if c.phase == phaseGone {
			p.Verdict = Drop
			return
		}
	}
	first := true
	for k := 0; k < len(c.deliv); k++ {
		d := c.deliv[k]
		// Frames of one segment (a GRO super-packet, or a peer that
		// coalesced) reach the stack as one segment, not one each.
		if k+1 < len(c.deliv) && !d.urg && !d.fin {
			j := c.e.joinBuf[:0]
			j = append(j, d.data...)
			for k+1 < len(c.deliv) {
				n := c.deliv[k+1]
				if n.urg || n.seq != d.seq+uint32(len(j)) || len(j)+len(n.data) > maxFrameChunk {
					break
				}
				j = append(j, n.data...)
				d.fin = n.fin
				k++
				if n.fin {
					break
				}
			}
			c.e.joinBuf = j[:0]
			d.data, d.buf = j, nil
		}
		out := packet.ACK | packet.PSH
		if d.fin {
			out |= packet.FIN
		}
		b := c.buildAround(d, localAck, out)
		if d.urg {
			if q, err := packet.Parse(b); err == nil {
				q.TCP().SetFlags(out | packet.URG)
				q.TCP().SetUrgent(d.urgent)
				q.UpdateTCPChecksum()
			}
		}
		c.place(p, &first, Inbound, b)
	}
	if first {
		// Nothing to deliver: pass the acknowledgment on if it says
		// something new, else drop the segment.
		if localAck != prevAck || tcp.Window() != c.lastInWnd || flags&packet.FIN != 0 && r.finp || dupAck {
			c.place(p, &first, Inbound, c.build(Inbound, r.localNxt, localAck, packet.ACK, nil))
		} else {
			p.Verdict = Drop
			if dup {
				c.e.ctr.DropDuplicate++
				// The peer retransmitted what we already acknowledged:
				// its ACK was lost. Acknowledge again.
				c.e.inject(Outbound, c.build(Outbound, c.snd.wireNxt, r.wireAck(), packet.ACK, nil))
			}
		}
	}
	if len(c.deliv) == 0 && c.phase != phaseGone {
		if wa := r.wireAck(); seqGT(wa, prevWireAck) {
			// Part of a frame arrived and the stack gets nothing to
			// acknowledge: acknowledge it here, so the peer sends the
			// rest.
			c.e.inject(Outbound, c.build(Outbound, c.snd.wireNxt, wa, packet.ACK, nil))
		} else if pk.PayloadLen() > 0 && seqGT(seq, r.partEnd) {
			// Data beyond a hole: a duplicate acknowledgment, as a TCP
			// receiver sends for out-of-order data (RFC 5681), so the
			// peer's stack retransmits the hole soon.
			c.e.ctr.DupAcksSent++
			c.e.inject(Outbound, c.build(Outbound, c.snd.wireNxt, wa, packet.ACK, nil))
		}
	}
	c.lastInWnd = tcp.Window()
	if c.sess != nil && c.sess.RekeyReplyDue() {
		c.sendEmptyFrame()
	}
}

// receive stores a segment's wire bytes and consumes every complete Init
// message or frame at wireNxt, filling c.deliv. It reports whether the
// segment held nothing new.
func (c *conn) receive(seq uint32, payload []byte, fin bool) (dup bool) {
	r := &c.rcv
	e := c.e
	end := seq + uint32(len(payload))
	if fin {
		if !r.tcpFIN {
			r.tcpFIN, r.finSeq = true, end
		}
	}
	if seqLEQ(end, r.wireNxt) {
		if len(payload) > 0 {
			c.redeliver(seq, end)
		}
		return len(c.deliv) == 0
	}
	if seqLT(seq, r.wireNxt) {
		payload = payload[r.wireNxt-seq:]
		seq = r.wireNxt
	}
	if len(payload) > 0 {
		if !r.buf.write(seq, payload) {
			e.ctr.DropBufferFull++
			return false
		}
		r.addSpan(seq, end)
	}
	for {
		avail := r.contiguous()
		if avail == 0 {
			break
		}
		b := r.buf.slice(r.wireNxt, avail)
		if !r.initDone {
			isInit1 := c.result.Role() == eno.RoleB
			m, err := tcpcrypt.InitLen(b, isInit1)
			if err == tcpcrypt.ErrNeedMore {
				break
			}
			if err != nil {
				c.abort(&e.ctr.AbortBadInit, "Init message", err)
				return false
			}
			if avail < m {
				break
			}
			if !c.gotInit(b[:m]) {
				return false
			}
			continue
		}
		_, flen, err := tcpcrypt.PeekFrame(b)
		if err == tcpcrypt.ErrNeedMore {
			break
		}
		if err == nil && avail < flen {
			break
		}
		var f tcpcrypt.Frame
		var gen uint64
		var room []byte
		if err == nil {
			var ct []byte
			room, ct = c.openRoom(b[:flen])
			f, _, err = c.sess.OpenFrame(ct, r.streamOff)
			_, gen = c.sess.Generations() // the frame's generation
		}
		if err != nil {
			// Drop, do not acknowledge: nothing of this frame was
			// acknowledged, so a retransmission can repair it
			// (RFC 8548 §3.6 MAY). Too many in a row: abort.
			e.ctr.IntegrityFailures++
			c.badFrames++
			r.buf.truncate(r.wireNxt)
			r.have = r.have[:0]
			r.partEnd = r.wireNxt
			if seqGT(r.maxAck, r.wireNxt) {
				// Part of the frame was acknowledged already: the
				// peer will not send it again.
				c.abort(&e.ctr.AbortIntegrity, "frame fails authentication", err)
				return false
			}
			if c.badFrames >= e.cfg.MaxIntegrityFailures {
				c.abort(&e.ctr.AbortIntegrity, "frames fail authentication", err)
			}
			return false
		}
		c.badFrames = 0
		if c.needENO {
			// An authentic frame: the peer enabled encryption, so it
			// received a segment of ours with ENO.
			c.peerHasENO()
		}
		e.ctr.FramesOpened++
		e.ctr.BytesDecrypted += uint64(len(f.Data))
		r.appBytes += uint64(len(f.Data))
		rec := frameRec{local: r.localNxt, llen: uint32(len(f.Data)), wire: r.wireNxt, wlen: uint32(flen), gen: uint32(gen), off: r.streamOff}
		if f.FIN() {
			rec.fin, rec.llen, rec.wlen = true, rec.llen+1, rec.wlen+1
			r.finp = true
			c.peerFIN = true
			c.closeSoon()
		}
		d := delivery{seq: r.localNxt, data: f.Data, fin: f.FIN(), buf: room, off: dataOffset(room, f.Data)}
		if f.Flags&tcpcrypt.FlagURG != 0 {
			d.urg, d.urgent = true, f.Urgent
		}
		if len(f.Data) > 0 || d.fin {
			c.deliv = append(c.deliv, d)
		}
		r.delivered.push(rec)
		r.wireNxt += rec.wlen
		r.localNxt += rec.llen
		r.streamOff += uint64(flen)
		if r.finp {
			break
		}
	}
	r.partEnd = r.wireNxt + uint32(r.contiguous())
	if r.tcpFIN && !r.finp && r.finSeq == r.wireNxt {
		// A TCP FIN with no FINp frame: RFC 8548 §3.7 SHOULD abort, and
		// the application must not see a clean end of stream.
		c.abort(&e.ctr.AbortFINWithoutFINp, "FIN without FINp", nil)
	}
	return false
}

// gotInit handles the peer's complete Init message.
func (c *conn) gotInit(msg []byte) bool {
	r := &c.rcv
	e := c.e
	m := uint32(len(msg))
	rec := frameRec{local: r.localNxt, wire: r.wireNxt, wlen: m}
	r.delivered.push(rec)
	r.wireNxt += m
	r.streamOff += uint64(m)
	r.initDone = true
	r.onLocalAck(r.localAcked) // the stack has nothing to acknowledge: Init is ours
	if c.result.Role() == eno.RoleB {
		init2, s, err := c.hs.ReadInit1(msg)
		if err != nil {
			c.abort(&e.ctr.AbortBadInit, "Init1", err)
			return false
		}
		e.ctr.KeyAgreements++
		c.sendInit(init2)
		c.ready(s)
		return c.phase != phaseGone
	}
	s, err := c.hs.ReadInit2(msg)
	if err != nil {
		c.abort(&e.ctr.AbortBadInit, "Init2", err)
		return false
	}
	// B sends Init2 only in answer to Init1, which carried ENO: the
	// ACK of Init2 and held data need it no more.
	c.peerHasENO()
	e.ctr.KeyAgreements++
	injected := len(e.out)
	c.ready(s)
	if c.phase == phaseGone {
		return false
	}
	if len(e.out) == injected {
		// Acknowledge Init2 now: the stack has nothing to acknowledge
		// (held data, when there is some, acknowledges it).
		c.e.inject(Outbound, c.build(Outbound, c.snd.wireNxt, r.wireAck(), packet.ACK, nil))
	}
	return true
}

// peerHasENO records proof that the peer received one of our non-SYN
// segments with ENO, so that we stop adding the option.
//
// RFC 8547 §4.6 lets a host stop at the peer's first non-SYN segment,
// on the premise that the passive opener sends one only once the third
// segment of the handshake (which carries ENO) reached it. A stack in
// SYN-RECEIVED breaks that premise: it answers a retransmitted SYN with
// an ACK (RFC 5961 §4). When A's third segment (Init1, which replaces
// the stack's bare ACK) is lost and that ACK arrives, stopping there
// would send Init1's retransmission without ENO, and B, seeing a first
// non-SYN segment without ENO, would fall back to plain TCP (rule 1)
// while A waits for Init2. So A sends ENO longer than the RFC's minimum
// (the option is harmless in later segments, whose ENO contents are
// ignored) and stops only on proof that B got it: B acknowledges part of
// A's stream, sends Init2, or sends an authentic frame.
func (c *conn) peerHasENO() {
	if !c.needENO {
		return
	}
	c.needENO = false
	// The tracker stops its non-SYN option once it has seen a non-SYN
	// segment: one from the peer, the option's contents ignored.
	c.tracker.Recv(eno.Segment{ACK: true})
}

// redeliver opens again the frames in [seq, end) whose plaintext the
// local stack has not acknowledged, for a stack that lost them.
func (c *conn) redeliver(seq, end uint32) {
	r := &c.rcv
	for i := 0; i < r.delivered.len(); i++ {
		d := r.delivered.at(i)
		if !seqLT(d.wire, end) {
			break
		}
		if seqLEQ(d.wireEnd(), seq) || d.llen == 0 {
			continue
		}
		n := int(d.wlen)
		if d.fin {
			n--
		}
		k := c.sess.RecvKeyFor(uint64(d.gen))
		if k == nil || !r.buf.contains(d.wire, n) {
			continue
		}
		room, ct := c.openRoom(r.buf.slice(d.wire, n))
		f, _, err := k.OpenFrame(ct, d.off)
		if err != nil {
			continue
		}
		c.e.ctr.Redeliveries++
		c.deliv = append(c.deliv, delivery{seq: d.local, data: f.Data, fin: d.fin, buf: room, off: dataOffset(room, f.Data)})
	}
}

// ---- packet building ------------------------------------------------

// place makes an engine-built packet the captured packet p's new
// contents if it is the first output for p; otherwise injects it.
func (c *conn) place(p *Packet, first *bool, dir Direction, b []byte) {
	if b == nil {
		// Building failed (logged): the captured packet must not go
		// out as it is, in plaintext. TCP retransmits it.
		if *first {
			p.Verdict = Drop
			*first = false
		}
		return
	}
	if *first && p.Dir == dir {
		// No copy: Buf may point to engine memory (Packet's contract).
		p.Buf = b
		p.Verdict, p.Modified = Accept, true
		*first = false
		return
	}
	if *first {
		p.Verdict = Drop
		*first = false
	}
	c.e.inject(dir, b)
}

// emitOut sends an outbound segment without data, its sequence and
// acknowledgment numbers mapped to the wire.
func (c *conn) emitOut(p *Packet, seq, ack uint32, flags packet.Flags) {
	first := true
	c.place(p, &first, Outbound, c.build(Outbound, seq, ack, flags&(packet.ACK|packet.RST|packet.FIN), nil))
}

// build makes a TCP segment of this connection in engine memory. It
// carries the timestamps of the latest packet in that direction and, from
// an active opener still in the handshake, the non-SYN ENO option.
func (c *conn) build(dir Direction, seq, ack uint32, flags packet.Flags, payload []byte) []byte {
	return c.buildN(dir, seq, ack, flags, payload, 0, len(payload))
}

// errBuild: an engine-made segment could not be built (logged).
var errBuild = errors.New("divert: building a segment failed")

// buildSealed makes an outbound segment whose payload is one frame
// sealed straight into it, and returns the segment and the frame within
// it: no copy of the frame from a scratch buffer. Without sum the TCP
// checksum is left stale (Packet.SegmentedLater).
func (c *conn) buildSealed(seq, ack uint32, flags packet.Flags, k *tcpcrypt.TrafficKey, off uint64, control, ff byte, urgent *uint16, data []byte, sum bool) (pkt, frame []byte, err error) {
	n := tcpcrypt.FrameLen(len(data), urgent != nil)
	h := c.buildN(Outbound, seq, ack, flags, nil, n, n)
	if h == nil {
		return nil, nil, errBuild
	}
	hl := len(h)
	if pkt, err = k.AppendFrame(h, off, control, ff, urgent, data); err != nil {
		return nil, nil, err
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) > packet.IPv4MaxTotalLen {
			return nil, nil, packet.ErrTooLong
		}
		ip := packet.IPv4(pkt)
		ip.SetTotalLen(uint16(len(pkt)))
		ip.UpdateChecksum()
	default:
		if len(pkt)-packet.IPv6HeaderLen > 0xffff {
			return nil, nil, packet.ErrTooLong
		}
		packet.IPv6(pkt).SetPayloadLen(uint16(len(pkt) - packet.IPv6HeaderLen))
	}
	if sum {
		pk, err := packet.Parse(pkt)
		if err != nil {
			return nil, nil, err
		}
		pk.UpdateTCPChecksum()
	}
	return pkt, pkt[hl:], nil
}

// buildAround makes the inbound segment delivering d: when d's plaintext
// has room before it, the headers are written in front of it, not the
// plaintext copied behind them.
func (c *conn) buildAround(d delivery, ack uint32, flags packet.Flags) []byte {
	if d.buf == nil || d.off < 0 {
		return c.build(Inbound, d.seq, ack, flags, d.data)
	}
	h := c.buildN(Inbound, d.seq, ack, flags, nil, 0, len(d.data))
	if h == nil || len(h) > d.off {
		return c.build(Inbound, d.seq, ack, flags, d.data)
	}
	pkt := d.buf[d.off-len(h) : d.off+len(d.data)]
	copy(pkt, h)
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) > packet.IPv4MaxTotalLen {
			return nil
		}
		ip := packet.IPv4(pkt)
		ip.SetTotalLen(uint16(len(pkt)))
		ip.UpdateChecksum()
	default:
		if len(pkt)-packet.IPv6HeaderLen > 0xffff {
			return nil
		}
		packet.IPv6(pkt).SetPayloadLen(uint16(len(pkt) - packet.IPv6HeaderLen))
	}
	pk, err := packet.Parse(pkt)
	if err != nil {
		return nil
	}
	pk.UpdateTCPChecksum()
	return pkt
}

// buildN is build with room for extra more payload bytes in the buffer;
// dataLen is the payload length the segment will have (for the ENO
// tracker).
func (c *conn) buildN(dir Direction, seq, ack uint32, flags packet.Flags, payload []byte, extra, dataLen int) []byte {
	// Engine scratch, not a local array: through the interfaces below a
	// local would escape and allocate on every packet.
	opts := c.e.optBuf[:0]
	seg := packet.Segment{Seq: seq, Ack: ack, Flags: flags, Payload: payload}
	ts := &c.inTS
	if dir == Outbound {
		seg.Src, seg.Dst, seg.Window = c.key.local, c.key.remote, c.peerWindow(ack)
		ts = &c.outTS
		if c.needENO && flags&packet.RST == 0 {
			opt, _ := c.tracker.Send(opts, eno.Segment{ACK: true, DataLen: dataLen})
			if len(opt) == 0 {
				c.needENO = false
			}
			opts = opt
		}
	} else {
		seg.Src, seg.Dst, seg.Window = c.key.remote, c.key.local, c.localWindow()
	}
	if ts.ok {
		opts = packet.AppendNOP(opts)
		opts = packet.AppendNOP(opts)
		opts = packet.AppendTimestamps(opts, ts.val, ts.ecr)
	}
	for len(opts)%4 != 0 {
		opts = append(opts, 0)
	}
	seg.Options = opts
	b, err := packet.AppendTCP(c.e.buffer(80+len(payload)+extra), seg)
	if err != nil {
		c.e.cfg.Log.Error("divert: build packet", "err", err)
		return nil
	}
	return b
}

// peerWindow is the window an outbound segment acknowledging ack gives
// the peer: the stack's, less what ack covers beyond the wire bytes the
// stack has acknowledged (the start of an incomplete frame, see
// recvSide.wireAck), so that the right edge of the window stays where
// the stack put it and the peer never sends more than the stack can
// hold.
func (c *conn) peerWindow(ack uint32) uint16 {
	extra := ack - c.rcv.ackedWire
	if c.phase != phaseKeys && c.phase != phaseEncrypted || !seqGT(ack, c.rcv.ackedWire) {
		return c.outWnd
	}
	shift := uint8(0)
	if c.localWS && c.peerWS {
		shift = c.localShift
	}
	w := uint64(c.outWnd) << shift
	if w <= uint64(extra) {
		return 0
	}
	return uint16((w - uint64(extra)) >> shift)
}

// localWindow is the peer's latest window as the local stack gets it:
// lowered by the frame overhead the stack's data gains on the wire, so
// that the frames of a window's worth of data still fit the peer's
// window (a peer whose TCP stack receives the wire bytes itself, as a
// redirect-mode peer's does, drops what exceeds it). The bound assumes
// segments of at least segData bytes; the stack sends smaller ones only
// when it has less to send.
func (c *conn) localWindow() uint16 {
	shift := uint8(0)
	if c.localWS && c.peerWS {
		shift = c.peerShift
	}
	w := uint64(c.inWnd) << shift
	over := (w/uint64(c.segData()) + 1) * (tcpcrypt.FrameOverhead + 2)
	if w <= over {
		return 0
	}
	return uint16((w - over) >> shift)
}

// tsOption remembers a direction's latest TCP timestamps (RFC 7323), so
// that engine-made segments pass PAWS checks.
type tsOption struct {
	val, ecr uint32
	ok       bool
}

func (t *tsOption) from(pk *packet.Packet) {
	if v, e, ok := pk.TCP().Options().Timestamps(); ok {
		t.val, t.ecr, t.ok = v, e, true
	}
}

package packet

import "encoding/binary"

// optEdit describes one change to the option list.
type optEdit uint8

const (
	editNone    optEdit = iota // keep every option (compaction)
	editInsert                 // append kind/data after the last option
	editReplace                // replace the first option of kind by kind/data
	editRemove                 // drop every option of kind
)

// optWriter accumulates rebuilt options in a fixed array, remembering
// whether they overflowed the option space.
type optWriter struct {
	b        [MaxOptionsLen]byte
	n        int
	overflow bool
}

func (w *optWriter) put(p ...byte) {
	if w.n+len(p) > len(w.b) {
		w.overflow = true
		return
	}
	w.n += copy(w.b[w.n:], p)
}

func (w *optWriter) putOption(kind uint8, data []byte) {
	if w.n+2+len(data) > len(w.b) {
		w.overflow = true
		return
	}
	w.b[w.n] = kind
	w.b[w.n+1] = uint8(2 + len(data))
	w.n += 2 + copy(w.b[w.n+2:], data)
}

// buildOptions rebuilds src with edit applied into w, never reordering or
// changing the other options. NOPs between options are kept (they may
// align the next option) unless dropNOP; trailing NOPs, the EOL and what
// follows it are padding and are dropped, and the result is padded with
// zeros (an EOL and its padding) to a multiple of 4. It returns how many
// options of kind it matched.
func buildOptions(w *optWriter, src Options, edit optEdit, kind uint8, data []byte, dropNOP bool) (matched int, err error) {
	*w = optWriter{}
	nops := 0 // NOPs seen but not yet written: they are padding if nothing follows
	it := src.Iter()
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		switch {
		case o.Kind == OptEOL:
			continue // the iterator stops after it
		case o.Kind == OptNOP:
			if !dropNOP {
				nops++
			}
			continue
		}
		if o.Kind == kind && edit == editRemove {
			matched++
			nops = 0 // they aligned the removed option
			continue
		}
		for ; nops > 0; nops-- {
			w.put(OptNOP)
		}
		switch {
		case o.Kind == kind && edit == editReplace && matched == 0:
			matched++
			w.putOption(kind, data)
		default:
			w.put(src[o.Offset : o.Offset+o.Len()]...)
		}
	}
	if err := it.Err(); err != nil {
		return 0, err
	}
	if edit == editInsert {
		w.putOption(kind, data)
	}
	for w.n%4 != 0 && !w.overflow {
		w.put(OptEOL)
	}
	return matched, nil
}

// editOptions applies an option edit, compacting NOPs if that is what it
// takes to fit, and installs the result.
func (p *Packet) editOptions(edit optEdit, kind uint8, data []byte) error {
	if p.tcpHdrLen == 0 {
		return ErrNotTCP
	}
	if edit != editNone {
		if kind <= OptNOP {
			return errOptKind
		}
		if edit != editRemove && 2+len(data) > MaxOptionsLen {
			return errOptData
		}
	}
	var w optWriter
	matched, err := buildOptions(&w, p.Options(), edit, kind, data, edit == editNone)
	if err != nil {
		return err
	}
	if (edit == editReplace || edit == editRemove) && matched == 0 {
		return ErrOptionNotFound
	}
	if w.overflow {
		if _, err := buildOptions(&w, p.Options(), edit, kind, data, true); err != nil {
			return err
		}
		if w.overflow {
			return ErrNoOptionSpace
		}
	}
	return p.setOptions(w.b[:w.n])
}

// InsertOption appends an option (kind, length, data) after the existing
// options, padding the option space to a multiple of 4 bytes. If it does
// not fit, NOP padding between the existing options is dropped first; if
// it still does not fit (more than MaxOptionsLen bytes) it fails with
// ErrNoOptionSpace and leaves the packet unchanged.
//
// The TCP header grows by a multiple of 4, the payload moves within the
// buffer (whose capacity must allow the growth, else ErrShortBuffer), and
// the data offset, IP length fields, IPv4 header checksum and TCP checksum
// are updated. The TCP checksum is adjusted incrementally: valid stays
// valid.
//
// A typical Linux SYN (MSS, SACK permitted, timestamps, NOP, window scale:
// 20 bytes) leaves 20 bytes for new options.
func (p *Packet) InsertOption(kind uint8, data []byte) error {
	return p.editOptions(editInsert, kind, data)
}

// ReplaceOption replaces the first option of the given kind by (kind,
// length, data), which may be longer or shorter; the options that follow
// move and are otherwise unchanged. It fails with ErrOptionNotFound if
// there is no such option, and otherwise behaves like InsertOption.
func (p *Packet) ReplaceOption(kind uint8, data []byte) error {
	return p.editOptions(editReplace, kind, data)
}

// RemoveOption removes every option of the given kind (a SYN may carry a
// kind twice; RFC 8547 §4.1 treats two ENO options as none). It fails with
// ErrOptionNotFound if there is none. The header shrinks when whole 4-byte
// words become free.
func (p *Packet) RemoveOption(kind uint8) error {
	return p.editOptions(editRemove, kind, nil)
}

// CompactOptions drops NOP padding, the EOL and trailing padding from the
// options, keeping every other option in order, and shrinks the header to
// the smallest multiple of 4 that holds them.
func (p *Packet) CompactOptions() error {
	return p.editOptions(editNone, 0, nil)
}

// setOptions installs opts (a multiple of 4 bytes, at most MaxOptionsLen)
// as the TCP options, resizing the header and fixing lengths and
// checksums. opts must not alias the packet.
func (p *Packet) setOptions(opts []byte) error {
	oldHL := int(p.tcpHdrLen)
	newHL := TCPMinHeaderLen + len(opts)
	delta := newHL - oldHL
	if err := p.checkResize(delta); err != nil {
		return err
	}
	tcpOff := int(p.tcpOff)
	oldSeg := len(p.buf) - tcpOff

	// The header's contribution to the checksum, except the checksum
	// field itself, before and after; the payload moves by a multiple of
	// 4 bytes, so its contribution does not change.
	hdr := p.buf[tcpOff : tcpOff+oldHL]
	oldSum := OnesSum(hdr[tcpChecksumOff+2:], OnesSum(hdr[:tcpChecksumOff], 0))
	csum := binary.BigEndian.Uint16(hdr[tcpChecksumOff:])

	p.resize(delta)
	seg := p.buf[tcpOff:]
	copy(seg[TCPMinHeaderLen:newHL], opts)
	seg[12] = seg[12]&0x0f | uint8(newHL/4)<<4
	p.tcpHdrLen = uint8(newHL)

	hdr = seg[:newHL]
	newSum := OnesSum(hdr[tcpChecksumOff+2:], OnesSum(hdr[:tcpChecksumOff], 0))
	s := add16(^csum, ^oldSum)
	s = add16(s, newSum)
	// The pseudo-header length word changes with the segment.
	s = add16(s, ^uint16(oldSeg))
	s = add16(s, uint16(len(seg)))
	binary.BigEndian.PutUint16(hdr[tcpChecksumOff:], ^s)
	return nil
}

// checkResize reports whether the packet can grow or shrink by delta
// bytes at its payload offset.
func (p *Packet) checkResize(delta int) error {
	n := len(p.buf) + delta
	if delta > 0 && n > cap(p.buf) {
		return ErrShortBuffer
	}
	switch p.version {
	case 4:
		if n > IPv4MaxTotalLen {
			return ErrTooLong
		}
	case 6:
		if n-IPv6HeaderLen > IPv6MaxPayloadLen {
			return ErrTooLong
		}
	}
	return nil
}

// resize grows or shrinks the packet by delta bytes at the payload offset
// (the current payload moves with its end), then fixes the IP length
// fields. Bytes that open up are left as they were in the buffer. The
// caller has checked checkResize.
func (p *Packet) resize(delta int) {
	if delta == 0 {
		return
	}
	old := len(p.buf)
	pay := p.PayloadOffset()
	if delta > 0 {
		p.buf = p.buf[:old+delta]
		copy(p.buf[pay+delta:], p.buf[pay:old])
	} else {
		copy(p.buf[pay+delta:], p.buf[pay:old])
		p.buf = p.buf[:old+delta]
	}
	p.fixIPLength()
}

// fixIPLength stores len(p.buf) in the IP header.
func (p *Packet) fixIPLength() {
	switch p.version {
	case 4:
		IPv4(p.buf).setTotalLenFixChecksum(len(p.buf))
	case 6:
		IPv6(p.buf).SetPayloadLen(uint16(len(p.buf) - IPv6HeaderLen))
	}
}

// ResizePayload changes the payload length to n and returns the payload
// for the caller to fill. Existing payload bytes are kept up to n; when
// growing, the new tail holds whatever the buffer held. IP lengths and
// the IPv4 header checksum are fixed; the TCP checksum is not (the payload
// is not final yet): call UpdateTCPChecksum after writing it.
//
// This is the zero-copy path of the encrypting rewriter: seal the frame
// straight into the returned slice.
func (p *Packet) ResizePayload(n int) ([]byte, error) {
	if p.tcpHdrLen == 0 {
		return nil, ErrNotTCP
	}
	if n < 0 {
		return nil, ErrInvalid
	}
	delta := n - p.PayloadLen()
	if err := p.checkResize(delta); err != nil {
		return nil, err
	}
	end := len(p.buf) + delta
	p.buf = p.buf[:end]
	p.fixIPLength()
	return p.buf[p.PayloadOffset():], nil
}

// SetPayload replaces the payload by payload (any length the buffer's
// capacity and the IP length field allow), fixes the lengths and
// recomputes the TCP checksum in full. payload may alias the buffer.
func (p *Packet) SetPayload(payload []byte) error {
	if p.tcpHdrLen == 0 {
		return ErrNotTCP
	}
	delta := len(payload) - p.PayloadLen()
	if err := p.checkResize(delta); err != nil {
		return err
	}
	p.buf = p.buf[:len(p.buf)+delta]
	copy(p.buf[p.PayloadOffset():], payload)
	p.fixIPLength()
	p.UpdateTCPChecksum()
	return nil
}

// The package-level functions below are the byte-slice forms of the
// Packet methods: they parse b, apply the change, and return the new
// packet slice (b's backing array, possibly longer). A packet that does
// not parse is returned unchanged with the parse error, including one
// with malformed options.

// InsertOption is [Packet.InsertOption] on a packet in b.
func InsertOption(b []byte, kind uint8, data []byte) ([]byte, error) {
	p, err := Parse(b)
	if err != nil {
		return b, err
	}
	err = p.InsertOption(kind, data)
	return p.Bytes(), err
}

// ReplaceOption is [Packet.ReplaceOption] on a packet in b.
func ReplaceOption(b []byte, kind uint8, data []byte) ([]byte, error) {
	p, err := Parse(b)
	if err != nil {
		return b, err
	}
	err = p.ReplaceOption(kind, data)
	return p.Bytes(), err
}

// RemoveOption is [Packet.RemoveOption] on a packet in b.
func RemoveOption(b []byte, kind uint8) ([]byte, error) {
	p, err := Parse(b)
	if err != nil {
		return b, err
	}
	err = p.RemoveOption(kind)
	return p.Bytes(), err
}

// SetPayload is [Packet.SetPayload] on a packet in b.
func SetPayload(b []byte, payload []byte) ([]byte, error) {
	p, err := Parse(b)
	if err != nil {
		return b, err
	}
	err = p.SetPayload(payload)
	return p.Bytes(), err
}

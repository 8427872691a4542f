package tcpcrypt

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Frame layout (RFC 8548 §4.2):
//
//	control(1) | clen(2, BE) | ciphertext(clen)
//
// The ciphertext is AEAD(plaintext) with AD = the 3 header bytes; the
// plaintext is flags(1) | [urgent(2) if URGp] | data.
const (
	FrameHeaderLen = 3
	// FrameOverhead is the wire cost of a frame without URGp: header,
	// flags byte and tag.
	FrameOverhead = FrameHeaderLen + 1 + TagLen
	// MaxFrameCiphertext is the largest clen (clen < 2^16).
	MaxFrameCiphertext = math.MaxUint16
	// MaxFrameData is the most application data one frame can carry
	// without URGp.
	MaxFrameData = MaxFrameCiphertext - TagLen - 1
)

// Control byte bits. Bits 7..1 (cres) are sent as zero and ignored.
const ControlRekey = 0x01

// Plaintext flag bits. Bits 7..2 (fres) are sent as zero and ignored.
const (
	FlagFIN = 0x01 // FINp: last frame of the stream
	FlagURG = 0x02 // URGp: an urgent field follows the flags
)

// Frame is an opened frame. Data aliases the buffer it was opened in.
type Frame struct {
	Control byte
	Flags   byte
	Urgent  uint16 // valid only when Flags&FlagURG != 0
	Data    []byte
}

// Rekey reports whether the frame starts a new key generation.
func (f *Frame) Rekey() bool { return f.Control&ControlRekey != 0 }

// FIN reports whether the frame is the sender's last (FINp).
func (f *Frame) FIN() bool { return f.Flags&FlagFIN != 0 }

// FrameLen returns the wire length of a frame carrying n data bytes.
func FrameLen(n int, urgent bool) int {
	if urgent {
		return n + FrameOverhead + 2
	}
	return n + FrameOverhead
}

// PeekFrame reads a frame header. It returns the control byte and the
// frame's total wire length, or ErrNeedMore if b holds fewer than 3 bytes.
// It does not need the whole frame.
func PeekFrame(b []byte) (control byte, frameLen int, err error) {
	if len(b) < FrameHeaderLen {
		return 0, 0, ErrNeedMore
	}
	clen := int(binary.BigEndian.Uint16(b[1:3]))
	if clen < TagLen+1 {
		// A frame must hold at least the flags byte and the tag; shorter
		// can never authenticate.
		return 0, 0, fmt.Errorf("%w: clen %d below minimum", ErrIntegrity, clen)
	}
	return b[0], FrameHeaderLen + clen, nil
}

// AppendFrame seals one frame and appends it to dst, starting at stream
// offset offset. control and flags must not have reserved bits set
// (pass ControlRekey / FlagFIN; FlagURG is set from urgent != nil).
// It does not allocate when dst has capacity for the frame.
func (k *TrafficKey) AppendFrame(dst []byte, offset uint64, control, flags byte, urgent *uint16, data []byte) ([]byte, error) {
	if k.ae == nil {
		return dst, ErrSessionClosed
	}
	if control&^ControlRekey != 0 || flags&^(FlagFIN) != 0 {
		return dst, fmt.Errorf("tcpcrypt: reserved frame bits set (control %#x flags %#x)", control, flags)
	}
	ptLen := 1 + len(data)
	if urgent != nil {
		ptLen += 2
		flags |= FlagURG
	}
	clen := ptLen + TagLen
	if clen > MaxFrameCiphertext {
		return dst, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, len(data))
	}
	if offset+uint64(FrameHeaderLen+clen) < offset {
		return dst, ErrOffsetWrap
	}
	start := len(dst)
	dst = growSlice(dst, FrameHeaderLen+clen)
	frame := dst[start:]
	frame[0] = control
	binary.BigEndian.PutUint16(frame[1:3], uint16(clen))
	pt := frame[FrameHeaderLen : FrameHeaderLen+ptLen]
	pt[0] = flags
	p := 1
	if urgent != nil {
		binary.BigEndian.PutUint16(pt[1:3], *urgent)
		p = 3
	}
	copy(pt[p:], data)
	k.ae.Seal(pt[:0], k.nonceFor(offset), pt, frame[:FrameHeaderLen])
	return dst, nil
}

// OpenFrame authenticates and decrypts the frame at the start of b, which
// begins at stream offset offset, in place: b's ciphertext bytes are
// overwritten with plaintext, and f.Data aliases b. It returns the number
// of bytes consumed. A buffer that ends inside the frame gives ErrNeedMore
// and leaves b untouched. On ErrIntegrity b's frame bytes are unspecified.
func (k *TrafficKey) OpenFrame(b []byte, offset uint64) (f Frame, n int, err error) {
	if k.ae == nil {
		return f, 0, ErrSessionClosed
	}
	control, n, err := PeekFrame(b)
	if err != nil {
		return f, 0, err
	}
	if len(b) < n {
		return f, 0, ErrNeedMore
	}
	ct := b[FrameHeaderLen:n]
	pt, err := k.ae.Open(ct[:0], k.nonceFor(offset), ct, b[:FrameHeaderLen])
	if err != nil {
		return f, 0, ErrIntegrity
	}
	f.Control = control
	f.Flags = pt[0]
	data := pt[1:]
	if f.Flags&FlagURG != 0 {
		if len(data) < 2 {
			return f, 0, fmt.Errorf("%w: URGp frame too short for urgent field", ErrIntegrity)
		}
		f.Urgent = binary.BigEndian.Uint16(data)
		data = data[2:]
	}
	f.Data = data
	return f, n, nil
}

// growSlice extends b by n bytes, reallocating only if capacity is short.
func growSlice(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*cap(b)+n)
	copy(nb, b)
	return nb
}

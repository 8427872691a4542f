package packet

import (
	"encoding/binary"
	"strings"
)

// TCP header constants.
const (
	TCPMinHeaderLen = 20
	TCPMaxHeaderLen = 60
	// MaxOptionsLen is the TCP option space: 60 - 20 bytes.
	MaxOptionsLen = TCPMaxHeaderLen - TCPMinHeaderLen

	tcpChecksumOff = 16
)

// Flags are the TCP control bits of header byte 13.
type Flags uint8

// TCP control bits (RFC 9293, RFC 3168).
const (
	FIN Flags = 1 << iota
	SYN
	RST
	PSH
	ACK
	URG
	ECE
	CWR
)

var flagNames = [8]string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}

// String returns the set flags joined by "|", e.g. "SYN|ACK".
func (f Flags) String() string {
	if f == 0 {
		return "0"
	}
	var sb strings.Builder
	for i, name := range flagNames {
		if f&(1<<i) != 0 {
			if sb.Len() > 0 {
				sb.WriteByte('|')
			}
			sb.WriteString(name)
		}
	}
	return sb.String()
}

// Has reports whether all bits of g are set in f.
func (f Flags) Has(g Flags) bool { return f&g == g }

// TCP is a view of a TCP segment: header, options and payload.
//
// Views returned by [ParseTCP] and [Packet.TCP] are at least
// TCPMinHeaderLen bytes long and hold the whole header.
type TCP []byte

// ParseTCP validates the TCP header at the start of segment b (which must
// extend exactly to the end of the segment) and its options. On an
// options error the view is returned together with an error matching
// ErrBadOptions, so the caller can still pass the segment on.
func ParseTCP(b []byte) (TCP, error) {
	if len(b) < TCPMinHeaderLen {
		return nil, errTCPShort
	}
	hl := int(b[12]>>4) * 4
	if hl < TCPMinHeaderLen {
		return nil, errTCPDataOffset
	}
	if hl > len(b) {
		return nil, errTCPHeaderBuf
	}
	t := TCP(b)
	return t, Options(b[TCPMinHeaderLen:hl]).Validate()
}

// SrcPort returns the source port.
func (t TCP) SrcPort() uint16 { return binary.BigEndian.Uint16(t[0:2]) }

// SetSrcPort sets the source port.
func (t TCP) SetSrcPort(v uint16) { binary.BigEndian.PutUint16(t[0:2], v) }

// DstPort returns the destination port.
func (t TCP) DstPort() uint16 { return binary.BigEndian.Uint16(t[2:4]) }

// SetDstPort sets the destination port.
func (t TCP) SetDstPort(v uint16) { binary.BigEndian.PutUint16(t[2:4], v) }

// Seq returns the sequence number.
func (t TCP) Seq() uint32 { return binary.BigEndian.Uint32(t[4:8]) }

// SetSeq sets the sequence number.
func (t TCP) SetSeq(v uint32) { binary.BigEndian.PutUint32(t[4:8], v) }

// Ack returns the acknowledgment number.
func (t TCP) Ack() uint32 { return binary.BigEndian.Uint32(t[8:12]) }

// SetAck sets the acknowledgment number.
func (t TCP) SetAck(v uint32) { binary.BigEndian.PutUint32(t[8:12], v) }

// DataOffset returns the data offset field: the header length in 32-bit
// words.
func (t TCP) DataOffset() uint8 { return t[12] >> 4 }

// HeaderLen returns the header length in bytes (data offset * 4).
func (t TCP) HeaderLen() int { return int(t[12]>>4) * 4 }

// SetHeaderLen sets the data offset to n/4 words; n must be a multiple of
// 4 in [20, 60]. It only writes the field; [Packet.InsertOption] and
// friends resize headers properly.
func (t TCP) SetHeaderLen(n int) { t[12] = t[12]&0x0f | uint8(n/4)<<4 }

// Flags returns the control bits.
func (t TCP) Flags() Flags { return Flags(t[13]) }

// SetFlags sets the control bits.
func (t TCP) SetFlags(f Flags) { t[13] = uint8(f) }

// Window returns the (unscaled) window field.
func (t TCP) Window() uint16 { return binary.BigEndian.Uint16(t[14:16]) }

// SetWindow sets the window field.
func (t TCP) SetWindow(v uint16) { binary.BigEndian.PutUint16(t[14:16], v) }

// Checksum returns the checksum field.
func (t TCP) Checksum() uint16 { return binary.BigEndian.Uint16(t[16:18]) }

// SetChecksum sets the checksum field.
func (t TCP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(t[16:18], v) }

// Urgent returns the urgent pointer.
func (t TCP) Urgent() uint16 { return binary.BigEndian.Uint16(t[18:20]) }

// SetUrgent sets the urgent pointer.
func (t TCP) SetUrgent(v uint16) { binary.BigEndian.PutUint16(t[18:20], v) }

// headerLen is HeaderLen clamped to [20, len(t)], for slicing.
func (t TCP) headerLen() int {
	return min(max(t.HeaderLen(), TCPMinHeaderLen), len(t))
}

// Options returns the option bytes (between the fixed header and the
// data offset).
func (t TCP) Options() Options { return Options(t[TCPMinHeaderLen:t.headerLen()]) }

// Payload returns the segment data after the header.
func (t TCP) Payload() []byte { return t[t.headerLen():] }

// The Rewrite methods set a field and adjust the checksum per RFC 1624,
// so a valid checksum stays valid without touching the payload. They are
// what sequence-number mapping uses on every packet.

// RewriteSeq sets the sequence number and adjusts the checksum.
func (t TCP) RewriteSeq(v uint32) {
	old := t.Seq()
	t.SetSeq(v)
	t.SetChecksum(ChecksumUpdate32(t.Checksum(), old, v))
}

// RewriteAck sets the acknowledgment number and adjusts the checksum.
func (t TCP) RewriteAck(v uint32) {
	old := t.Ack()
	t.SetAck(v)
	t.SetChecksum(ChecksumUpdate32(t.Checksum(), old, v))
}

// RewriteWindow sets the window and adjusts the checksum.
func (t TCP) RewriteWindow(v uint16) {
	old := t.Window()
	t.SetWindow(v)
	t.SetChecksum(ChecksumUpdate16(t.Checksum(), old, v))
}

// RewriteUrgent sets the urgent pointer and adjusts the checksum.
func (t TCP) RewriteUrgent(v uint16) {
	old := t.Urgent()
	t.SetUrgent(v)
	t.SetChecksum(ChecksumUpdate16(t.Checksum(), old, v))
}

// RewriteFlags sets the control bits and adjusts the checksum.
func (t TCP) RewriteFlags(f Flags) {
	old := binary.BigEndian.Uint16(t[12:14])
	t.SetFlags(f)
	t.SetChecksum(ChecksumUpdate16(t.Checksum(), old, binary.BigEndian.Uint16(t[12:14])))
}

// RewriteOptionData overwrites the data of option o (found in t's
// options, e.g. by [Options.Find]) with data of the same length and
// adjusts the checksum; options may sit at odd offsets, which this
// handles. data must not alias o.Data: the old bytes are needed for the
// update. It fails with ErrInvalid if the lengths differ or o does not lie
// inside t's options; use [Packet.ReplaceOption] to change an option's
// length.
func (t TCP) RewriteOptionData(o Option, data []byte) error {
	opts := t.Options()
	start := o.Offset + 2
	if o.Kind <= OptNOP || len(data) != len(o.Data) || o.Offset < 0 || start+len(data) > len(opts) {
		return ErrInvalid
	}
	dst := opts[start : start+len(data)]
	var old [MaxOptionsLen]byte
	copy(old[:], dst)
	copy(dst, data)
	t.SetChecksum(checksumUpdateBytes(t.Checksum(), TCPMinHeaderLen+start, old[:len(data)], dst))
	return nil
}

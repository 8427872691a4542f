package packet

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// Segment describes a TCP packet for [AppendTCP]. The IP version follows
// the addresses: both IPv4 gives IPv4, both IPv6 (IPv4-mapped included)
// gives IPv6.
type Segment struct {
	Src, Dst netip.AddrPort
	Seq, Ack uint32
	Flags    Flags
	Window   uint16
	Urgent   uint16
	// Options are raw option bytes (see AppendMSS and friends), padded
	// with zeros to a multiple of 4; at most MaxOptionsLen bytes.
	Options []byte
	Payload []byte

	TTL       uint8  // IPv4 TTL or IPv6 hop limit; 0 means 64
	TOS       uint8  // IPv4 TOS or IPv6 traffic class
	ID        uint16 // IPv4 identification
	FlowLabel uint32 // IPv6 flow label (low 20 bits)
}

// AppendTCP appends the IP packet described by s to dst and returns the
// extended slice, with DF set on IPv4 and every length and checksum
// correct. It does not allocate if dst has enough spare capacity.
func AppendTCP(dst []byte, s Segment) ([]byte, error) {
	src, dstAddr := s.Src.Addr(), s.Dst.Addr()
	var ipLen int
	switch {
	case src.Is4() && dstAddr.Is4():
		ipLen = IPv4MinHeaderLen
	case src.Is6() && dstAddr.Is6():
		ipLen = IPv6HeaderLen
	default:
		return dst, errMixedFamily
	}
	if len(s.Options) > MaxOptionsLen {
		return dst, ErrNoOptionSpace
	}
	if err := Options(s.Options).Validate(); err != nil {
		return dst, err
	}
	optLen := (len(s.Options) + 3) &^ 3
	hl := TCPMinHeaderLen + optLen
	total := ipLen + hl + len(s.Payload)
	if ipLen == IPv4MinHeaderLen && total > IPv4MaxTotalLen ||
		ipLen == IPv6HeaderLen && total-IPv6HeaderLen > IPv6MaxPayloadLen {
		return dst, ErrTooLong
	}
	ttl := s.TTL
	if ttl == 0 {
		ttl = 64
	}

	start := len(dst)
	dst = slices.Grow(dst, total)[:start+total]
	b := dst[start:]
	clear(b[:ipLen+hl])
	if ipLen == IPv4MinHeaderLen {
		h := IPv4(b)
		b[0] = 4<<4 | IPv4MinHeaderLen/4
		h.SetTOS(s.TOS)
		h.SetTotalLen(uint16(total))
		h.SetID(s.ID)
		binary.BigEndian.PutUint16(b[6:8], ipv4FlagDF)
		h.SetTTL(ttl)
		h.SetProtocol(ProtoTCP)
		a, d := src.As4(), dstAddr.As4()
		copy(b[12:16], a[:])
		copy(b[16:20], d[:])
		h.UpdateChecksum()
	} else {
		h := IPv6(b)
		b[0] = 6 << 4
		h.SetTrafficClass(s.TOS)
		h.SetFlowLabel(s.FlowLabel)
		h.SetPayloadLen(uint16(total - IPv6HeaderLen))
		b[6] = ProtoTCP
		h.SetHopLimit(ttl)
		a, d := src.As16(), dstAddr.As16()
		copy(b[8:24], a[:])
		copy(b[24:40], d[:])
	}
	t := TCP(b[ipLen:])
	t.SetSrcPort(s.Src.Port())
	t.SetDstPort(s.Dst.Port())
	t.SetSeq(s.Seq)
	t.SetAck(s.Ack)
	t.SetHeaderLen(hl)
	t.SetFlags(s.Flags)
	t.SetWindow(s.Window)
	t.SetUrgent(s.Urgent)
	copy(t[TCPMinHeaderLen:], s.Options)
	copy(t[hl:], s.Payload)
	p := Packet{buf: b, version: uint8(b[0] >> 4), proto: ProtoTCP, tcpOff: uint32(ipLen), tcpHdrLen: uint8(hl)}
	p.UpdateTCPChecksum()
	return dst, nil
}

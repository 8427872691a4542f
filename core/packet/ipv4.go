package packet

import (
	"encoding/binary"
	"net/netip"
)

// IPv4 header constants.
const (
	IPv4MinHeaderLen = 20
	IPv4MaxHeaderLen = 60
	// IPv4MaxTotalLen is the largest packet the 16-bit total length allows.
	IPv4MaxTotalLen = 0xffff
)

// IPv4 flag and fragment-offset bits of header bytes 6-7.
const (
	ipv4FlagMF     = 0x2000
	ipv4FlagDF     = 0x4000
	ipv4OffsetMask = 0x1fff
)

// IPv4 is a view of an IPv4 packet: header, options and payload.
//
// Views returned by [ParseIPv4] and [Packet.IPv4] are at least
// IPv4MinHeaderLen bytes long and end where the total length says.
type IPv4 []byte

// ParseIPv4 validates the IPv4 header at the start of b and returns the
// packet trimmed to its total length (dropping link-layer padding). It
// checks version, header length and total length; it does not check the
// header checksum (see [IPv4.VerifyChecksum]) and does not reject
// fragments (see [IPv4.IsFragment]).
func ParseIPv4(b []byte) (IPv4, error) {
	if len(b) < IPv4MinHeaderLen {
		if len(b) == 0 {
			return nil, errIPEmpty
		}
		return nil, errIPv4Short
	}
	if b[0]>>4 != 4 {
		return nil, errIPVersion
	}
	hl := int(b[0]&0x0f) * 4
	if hl < IPv4MinHeaderLen {
		return nil, errIPv4IHL
	}
	tl := int(binary.BigEndian.Uint16(b[2:4]))
	if tl < hl {
		return nil, errIPv4TotalLenShort
	}
	if tl > len(b) {
		return nil, errIPv4TotalLenBuf
	}
	return IPv4(b[:tl]), nil
}

// HeaderLen returns the header length in bytes (IHL * 4).
func (h IPv4) HeaderLen() int { return int(h[0]&0x0f) * 4 }

// TOS returns the type-of-service byte (DSCP and ECN).
func (h IPv4) TOS() uint8 { return h[1] }

// SetTOS sets the type-of-service byte.
func (h IPv4) SetTOS(v uint8) { h[1] = v }

// TotalLen returns the total length field.
func (h IPv4) TotalLen() int { return int(binary.BigEndian.Uint16(h[2:4])) }

// SetTotalLen sets the total length field.
func (h IPv4) SetTotalLen(n uint16) { binary.BigEndian.PutUint16(h[2:4], n) }

// ID returns the identification field.
func (h IPv4) ID() uint16 { return binary.BigEndian.Uint16(h[4:6]) }

// SetID sets the identification field.
func (h IPv4) SetID(v uint16) { binary.BigEndian.PutUint16(h[4:6], v) }

// DontFragment reports the DF flag.
func (h IPv4) DontFragment() bool { return binary.BigEndian.Uint16(h[6:8])&ipv4FlagDF != 0 }

// MoreFragments reports the MF flag.
func (h IPv4) MoreFragments() bool { return binary.BigEndian.Uint16(h[6:8])&ipv4FlagMF != 0 }

// FragmentOffset returns the fragment offset in bytes.
func (h IPv4) FragmentOffset() int {
	return int(binary.BigEndian.Uint16(h[6:8])&ipv4OffsetMask) * 8
}

// IsFragment reports whether the packet is a fragment: MF set or a nonzero
// offset. Only a first fragment (offset 0) contains the TCP header.
func (h IPv4) IsFragment() bool {
	return binary.BigEndian.Uint16(h[6:8])&(ipv4FlagMF|ipv4OffsetMask) != 0
}

// TTL returns the time-to-live field.
func (h IPv4) TTL() uint8 { return h[8] }

// SetTTL sets the time-to-live field.
func (h IPv4) SetTTL(v uint8) { h[8] = v }

// Protocol returns the protocol field.
func (h IPv4) Protocol() uint8 { return h[9] }

// SetProtocol sets the protocol field.
func (h IPv4) SetProtocol(v uint8) { h[9] = v }

// Checksum returns the header checksum field.
func (h IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(h[10:12]) }

// SetChecksum sets the header checksum field.
func (h IPv4) SetChecksum(v uint16) { binary.BigEndian.PutUint16(h[10:12], v) }

// header returns the header bytes, clamped to the view.
func (h IPv4) header() []byte {
	return h[:min(max(h.HeaderLen(), IPv4MinHeaderLen), len(h))]
}

// ComputeChecksum returns the correct header checksum, ignoring the
// current value of the field.
func (h IPv4) ComputeChecksum() uint16 {
	hdr := h.header()
	s := OnesSum(hdr[:10], 0)
	return ^OnesSum(hdr[12:], s)
}

// VerifyChecksum reports whether the header checksum is correct.
func (h IPv4) VerifyChecksum() bool {
	return OnesSum(h.header(), 0) == 0xffff
}

// UpdateChecksum recomputes and stores the header checksum.
func (h IPv4) UpdateChecksum() { h.SetChecksum(h.ComputeChecksum()) }

// Src returns the source address.
func (h IPv4) Src() netip.Addr { return netip.AddrFrom4([4]byte(h[12:16])) }

// Dst returns the destination address.
func (h IPv4) Dst() netip.Addr { return netip.AddrFrom4([4]byte(h[16:20])) }

// SetSrc sets the source address. It fails with an error matching
// ErrInvalid unless a is IPv4 (or IPv4-mapped IPv6). Checksums are left to
// the caller: the address is in the IPv4 header and the TCP pseudo-header.
func (h IPv4) SetSrc(a netip.Addr) error { return setAddr4(h[12:16], a) }

// SetDst sets the destination address; see [IPv4.SetSrc].
func (h IPv4) SetDst(a netip.Addr) error { return setAddr4(h[16:20], a) }

func setAddr4(dst []byte, a netip.Addr) error {
	a = a.Unmap()
	if !a.Is4() {
		return errAddrFamily
	}
	a4 := a.As4()
	copy(dst, a4[:])
	return nil
}

// Payload returns the bytes after the header (with options), up to the
// end of the view.
func (h IPv4) Payload() []byte { return h[len(h.header()):] }

// setTotalLenFixChecksum sets the total length and adjusts the header
// checksum incrementally, preserving its validity (or invalidity).
func (h IPv4) setTotalLenFixChecksum(n int) {
	old := binary.BigEndian.Uint16(h[2:4])
	binary.BigEndian.PutUint16(h[2:4], uint16(n))
	h.SetChecksum(ChecksumUpdate16(h.Checksum(), old, uint16(n)))
}

package packet

import (
	"encoding/binary"
	"net/netip"
)

// Packet is a parsed IPv4 or IPv6 packet carrying TCP: the packet bytes
// and the offsets of its layers. It is a small value, cheap to copy; the
// views it hands out alias its buffer. The zero Packet has no layers and
// its methods return zero values.
//
// The methods that change the packet's length (InsertOption,
// ReplaceOption, RemoveOption, CompactOptions, SetPayload, ResizePayload)
// take a pointer and update the buffer and offsets; afterwards
// [Packet.Bytes] is the new packet. To grow, they use the capacity of the
// slice given to Parse beyond the packet's end. A slice cut from a larger
// batch buffer must therefore be capped (b[off:end:limit]) so that growth
// cannot run into the next packet.
type Packet struct {
	buf       []byte // exactly the IP packet: header through last payload byte
	version   uint8  // 4 or 6; 0 if the IP header was not parsed
	proto     uint8  // upper-layer protocol
	tcpOff    uint32 // offset of the upper-layer header (IP header + extensions)
	tcpHdrLen uint8  // TCP header length in bytes; 0 if there is no TCP header
}

// Parse parses an IPv4 or IPv6 packet carrying a TCP segment, validating
// the IP header, IPv6 extension headers, the TCP header and the TCP
// options. b may extend past the packet (link-layer padding); the Packet
// ends where the IP length says.
//
// On failure the returned Packet keeps what was parsed, so that callers
// can log the packet or pass it through:
//   - ErrBadOptions: everything is valid except the options (HasTCP true).
//   - ErrNotTCP, ErrFragment, and errors in IPv6 extension headers or the
//     TCP header: the IP layer (Version, Bytes, IPv4/IPv6, Protocol and
//     TCPOffset as far as the walk got); HasTCP false.
//   - errors in the fixed IP header: the zero Packet.
//
// A first fragment (offset 0, more fragments) is reported as ErrFragment
// like a later one: it holds a TCP header but not the whole segment, so it
// can be neither checksummed nor rewritten. Use IPv4().FragmentOffset or
// the error's text to tell them apart.
func Parse(b []byte) (Packet, error) {
	var p Packet
	if len(b) == 0 {
		return p, errIPEmpty
	}
	switch b[0] >> 4 {
	case 4:
		h, err := ParseIPv4(b)
		if err != nil {
			return p, err
		}
		p = Packet{buf: h, version: 4, proto: h.Protocol(), tcpOff: uint32(h.HeaderLen())}
		if h.IsFragment() {
			if h.FragmentOffset() != 0 {
				return p, errIPv4LaterFrag
			}
			return p, errIPv4FirstFrag
		}
	case 6:
		h, err := ParseIPv6(b)
		if err != nil {
			return p, err
		}
		proto, off, err := h.UpperLayer()
		p = Packet{buf: h, version: 6, proto: proto, tcpOff: uint32(off)}
		if err != nil {
			return p, err
		}
	default:
		return p, errIPVersion
	}
	if p.proto != ProtoTCP {
		return p, ErrNotTCP
	}
	t, err := ParseTCP(p.buf[p.tcpOff:])
	if t == nil {
		return p, err
	}
	p.tcpHdrLen = uint8(t.HeaderLen())
	return p, err
}

// Bytes returns the whole IP packet.
func (p Packet) Bytes() []byte { return p.buf }

// Len returns the length of the IP packet.
func (p Packet) Len() int { return len(p.buf) }

// Version returns the IP version: 4, 6, or 0 if unparsed.
func (p Packet) Version() int { return int(p.version) }

// Protocol returns the upper-layer protocol (after IPv6 extension
// headers).
func (p Packet) Protocol() uint8 { return p.proto }

// IPv4 returns the IPv4 view, or nil if the packet is not IPv4.
func (p Packet) IPv4() IPv4 {
	if p.version != 4 {
		return nil
	}
	return IPv4(p.buf)
}

// IPv6 returns the IPv6 view, or nil if the packet is not IPv6.
func (p Packet) IPv6() IPv6 {
	if p.version != 6 {
		return nil
	}
	return IPv6(p.buf)
}

// IPHeaderLen returns the length of the IP header: IHL*4 for IPv4, 40 for
// IPv6 (extension headers excluded; see TCPOffset).
func (p Packet) IPHeaderLen() int {
	switch p.version {
	case 4:
		return int(p.tcpOff)
	case 6:
		return IPv6HeaderLen
	}
	return 0
}

// HasTCP reports whether the TCP header was parsed.
func (p Packet) HasTCP() bool { return p.tcpHdrLen != 0 }

// TCPOffset returns the offset of the upper-layer (TCP) header: the IP
// header plus any IPv6 extension headers.
func (p Packet) TCPOffset() int { return int(p.tcpOff) }

// TCPHeaderLen returns the TCP header length including options, or 0.
func (p Packet) TCPHeaderLen() int { return int(p.tcpHdrLen) }

// PayloadOffset returns the offset of the TCP payload.
func (p Packet) PayloadOffset() int { return int(p.tcpOff) + int(p.tcpHdrLen) }

// PayloadLen returns the length of the TCP payload.
func (p Packet) PayloadLen() int {
	if p.tcpHdrLen == 0 {
		return 0
	}
	return len(p.buf) - p.PayloadOffset()
}

// TCP returns the TCP segment view (header and payload), or nil.
func (p Packet) TCP() TCP {
	if p.tcpHdrLen == 0 {
		return nil
	}
	return TCP(p.buf[p.tcpOff:])
}

// Options returns the TCP options, or nil.
func (p Packet) Options() Options {
	if p.tcpHdrLen == 0 {
		return nil
	}
	return Options(p.buf[int(p.tcpOff)+TCPMinHeaderLen : p.PayloadOffset()])
}

// Payload returns the TCP payload, or nil.
func (p Packet) Payload() []byte {
	if p.tcpHdrLen == 0 {
		return nil
	}
	return p.buf[p.PayloadOffset():]
}

// SrcAddr returns the IP source address.
func (p Packet) SrcAddr() netip.Addr {
	switch p.version {
	case 4:
		return IPv4(p.buf).Src()
	case 6:
		return IPv6(p.buf).Src()
	}
	return netip.Addr{}
}

// DstAddr returns the IP destination address.
func (p Packet) DstAddr() netip.Addr {
	switch p.version {
	case 4:
		return IPv4(p.buf).Dst()
	case 6:
		return IPv6(p.buf).Dst()
	}
	return netip.Addr{}
}

// Src returns the source address and port (port 0 without TCP).
func (p Packet) Src() netip.AddrPort {
	var port uint16
	if p.tcpHdrLen != 0 {
		port = p.TCP().SrcPort()
	}
	return netip.AddrPortFrom(p.SrcAddr(), port)
}

// Dst returns the destination address and port (port 0 without TCP).
func (p Packet) Dst() netip.AddrPort {
	var port uint16
	if p.tcpHdrLen != 0 {
		port = p.TCP().DstPort()
	}
	return netip.AddrPortFrom(p.DstAddr(), port)
}

// pseudoSum returns the pseudo-header sum for the current segment length,
// read from the IP header without going through netip.
func (p Packet) pseudoSum() uint16 {
	var s uint16
	switch p.version {
	case 4:
		s = OnesSum(p.buf[12:20], 0)
	case 6:
		// Without a Routing header this is the final destination. With one
		// whose Segments Left is nonzero the final destination is in the
		// Routing header; such packets are not produced by end hosts'
		// TCP stacks and are not handled here.
		s = OnesSum(p.buf[8:40], 0)
	default:
		return 0
	}
	return pseudoTail(s, ProtoTCP, len(p.buf)-int(p.tcpOff))
}

// TCPChecksum computes the correct TCP checksum of the packet, ignoring the
// checksum field's current value. It returns 0 if there is no TCP header.
func (p Packet) TCPChecksum() uint16 {
	if p.tcpHdrLen == 0 {
		return 0
	}
	seg := p.buf[p.tcpOff:]
	s := OnesSum(seg[:tcpChecksumOff], p.pseudoSum())
	return ^OnesSum(seg[tcpChecksumOff+2:], s)
}

// VerifyTCPChecksum reports whether the TCP checksum is correct.
func (p Packet) VerifyTCPChecksum() bool {
	if p.tcpHdrLen == 0 {
		return false
	}
	return OnesSum(p.buf[p.tcpOff:], p.pseudoSum()) == 0xffff
}

// UpdateTCPChecksum recomputes the TCP checksum over pseudo-header, header
// and payload and stores it. Every packet whose payload was changed needs
// it, as do packets captured with checksum offload (partial checksums).
func (p Packet) UpdateTCPChecksum() {
	if p.tcpHdrLen == 0 {
		return
	}
	binary.BigEndian.PutUint16(p.buf[int(p.tcpOff)+tcpChecksumOff:], p.TCPChecksum())
}

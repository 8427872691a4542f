package packet

import (
	"encoding/binary"
	"net/netip"
)

// IPv6 constants.
const (
	IPv6HeaderLen = 40
	// IPv6MaxPayloadLen is the largest payload length without a jumbogram.
	IPv6MaxPayloadLen = 0xffff
)

// IP protocol numbers (IPv4 protocol, IPv6 next header): TCP and the
// IPv6 extension headers the walk knows.
const (
	ProtoTCP      uint8 = 6
	ProtoHopByHop uint8 = 0
	ProtoRouting  uint8 = 43
	ProtoFragment uint8 = 44
	ProtoESP      uint8 = 50
	ProtoAH       uint8 = 51
	ProtoNoNext   uint8 = 59
	ProtoDestOpts uint8 = 60
)

// Extension headers with the generic layout that carry no TCP semantics
// of their own, and Fragment header fields.
const (
	protoMobility uint8 = 135 // RFC 6275
	protoHIP      uint8 = 139 // RFC 7401
	protoShim6    uint8 = 140 // RFC 5533

	ipv6FragMore      = 0x0001
	ipv6FragOffMask   = 0xfff8
	ipv6FragHeaderLen = 8
)

// IPv6 is a view of an IPv6 packet: fixed header, extension headers and
// upper-layer data.
//
// Views returned by [ParseIPv6] and [Packet.IPv6] are at least
// IPv6HeaderLen bytes long and end where the payload length says.
type IPv6 []byte

// ParseIPv6 validates the fixed IPv6 header at the start of b and returns
// the packet trimmed to 40 + payload length. It does not walk extension
// headers (see [IPv6.UpperLayer]).
//
// A payload length of zero is taken literally; jumbograms (RFC 2675) are
// not supported.
func ParseIPv6(b []byte) (IPv6, error) {
	if len(b) < IPv6HeaderLen {
		if len(b) == 0 {
			return nil, errIPEmpty
		}
		return nil, errIPv6Short
	}
	if b[0]>>4 != 6 {
		return nil, errIPVersion
	}
	n := IPv6HeaderLen + int(binary.BigEndian.Uint16(b[4:6]))
	if n > len(b) {
		return nil, errIPv6PayloadLenBuf
	}
	return IPv6(b[:n]), nil
}

// TrafficClass returns the traffic class (DSCP and ECN).
func (h IPv6) TrafficClass() uint8 {
	return uint8(binary.BigEndian.Uint16(h[0:2]) >> 4)
}

// SetTrafficClass sets the traffic class.
func (h IPv6) SetTrafficClass(v uint8) {
	w := binary.BigEndian.Uint16(h[0:2])&0xf00f | uint16(v)<<4
	binary.BigEndian.PutUint16(h[0:2], w)
}

// FlowLabel returns the 20-bit flow label.
func (h IPv6) FlowLabel() uint32 { return binary.BigEndian.Uint32(h[0:4]) & 0xfffff }

// SetFlowLabel sets the flow label (the low 20 bits of v).
func (h IPv6) SetFlowLabel(v uint32) {
	w := binary.BigEndian.Uint32(h[0:4])&^0xfffff | v&0xfffff
	binary.BigEndian.PutUint32(h[0:4], w)
}

// PayloadLen returns the payload length field: everything after the fixed
// header, extension headers included.
func (h IPv6) PayloadLen() int { return int(binary.BigEndian.Uint16(h[4:6])) }

// SetPayloadLen sets the payload length field.
func (h IPv6) SetPayloadLen(n uint16) { binary.BigEndian.PutUint16(h[4:6], n) }

// NextHeader returns the next header field of the fixed header.
func (h IPv6) NextHeader() uint8 { return h[6] }

// HopLimit returns the hop limit.
func (h IPv6) HopLimit() uint8 { return h[7] }

// SetHopLimit sets the hop limit.
func (h IPv6) SetHopLimit(v uint8) { h[7] = v }

// Src returns the source address.
func (h IPv6) Src() netip.Addr { return netip.AddrFrom16([16]byte(h[8:24])) }

// Dst returns the destination address.
func (h IPv6) Dst() netip.Addr { return netip.AddrFrom16([16]byte(h[24:40])) }

// SetSrc sets the source address. It fails with an error matching
// ErrInvalid unless a is IPv6 (IPv4-mapped included). The TCP checksum,
// which covers the address through the pseudo-header, is left to the
// caller.
func (h IPv6) SetSrc(a netip.Addr) error { return setAddr6(h[8:24], a) }

// SetDst sets the destination address; see [IPv6.SetSrc].
func (h IPv6) SetDst(a netip.Addr) error { return setAddr6(h[24:40], a) }

func setAddr6(dst []byte, a netip.Addr) error {
	if !a.Is6() {
		return errAddrFamily
	}
	a16 := a.As16()
	copy(dst, a16[:])
	return nil
}

// Payload returns everything after the fixed header.
func (h IPv6) Payload() []byte { return h[IPv6HeaderLen:] }

// UpperLayer walks the extension header chain and returns the upper-layer
// protocol and the offset of its header from the start of h.
//
// Hop-by-Hop Options (only directly after the fixed header), Routing,
// Destination Options, Mobility, HIP and Shim6 headers use the generic
// (len+1)*8 length; AH uses (len+2)*4; a Fragment header is 8 bytes. ESP
// and No Next Header end the walk and are returned as the protocol.
//
// A Fragment header with offset 0 and M clear (an atomic fragment, RFC
// 6946) is skipped. Any other Fragment header yields an error matching
// ErrFragment, with proto and off describing what follows the Fragment
// header (for a non-first fragment, that is not a header).
func (h IPv6) UpperLayer() (proto uint8, off int, err error) {
	proto = h[6]
	off = IPv6HeaderLen
	for {
		var n int
		switch proto {
		case ProtoHopByHop, ProtoRouting, ProtoDestOpts, protoMobility, protoHIP, protoShim6:
			if proto == ProtoHopByHop && off != IPv6HeaderLen {
				return proto, off, errIPv6HopByHop
			}
			if len(h)-off < 8 {
				return proto, off, errIPv6ExtShort
			}
			n = (int(h[off+1]) + 1) * 8
		case ProtoAH:
			if len(h)-off < 8 {
				return proto, off, errIPv6ExtShort
			}
			n = (int(h[off+1]) + 2) * 4
		case ProtoFragment:
			if len(h)-off < ipv6FragHeaderLen {
				return proto, off, errIPv6ExtShort
			}
			w := binary.BigEndian.Uint16(h[off+2 : off+4])
			next := h[off]
			off += ipv6FragHeaderLen
			switch {
			case w&ipv6FragOffMask != 0:
				return next, off, errIPv6LaterFrag
			case w&ipv6FragMore != 0:
				return next, off, errIPv6FirstFrag
			}
			proto = next
			continue
		default:
			// Upper layer reached (TCP, UDP, ICMPv6, ESP, No Next Header,
			// or a protocol this walk does not know).
			return proto, off, nil
		}
		if len(h)-off < n {
			return proto, off, errIPv6ExtShort
		}
		proto = h[off]
		off += n
	}
}

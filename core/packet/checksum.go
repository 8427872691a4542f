package packet

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// OnesSum returns the 16-bit one's complement sum (RFC 1071) of b, added
// to initial. It is the building block of every Internet checksum: the
// value stored in a checksum field is the complement of the sum over the
// covered bytes with the field itself set to zero, and a packet verifies
// when the sum over all covered bytes, field included, is 0xffff.
//
// An odd final byte is padded with a zero byte on the right. Sums of
// consecutive pieces chain through initial only if every piece but the
// last has even length.
func OnesSum(b []byte, initial uint16) uint16 {
	// The sum is computed over little-endian 64-bit loads: the one's
	// complement sum is independent of byte order up to a final swap
	// (RFC 1071 §2(B)), and 2^16-1 divides 2^64-1, so folding a 64-bit
	// end-around-carry sum down to 16 bits gives the 16-bit sum.
	acc := uint64(bits.ReverseBytes16(initial))
	var c uint64
	for len(b) >= 64 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:16]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:24]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:32]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[32:40]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[40:48]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[48:56]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[56:64]), c)
		b = b[64:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b), c)
		b = b[8:]
	}
	if len(b) >= 4 {
		acc, c = bits.Add64(acc, uint64(binary.LittleEndian.Uint32(b)), c)
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, c = bits.Add64(acc, uint64(binary.LittleEndian.Uint16(b)), c)
		b = b[2:]
	}
	if len(b) == 1 {
		// Big-endian high byte, padded with zero: the low byte here.
		acc, c = bits.Add64(acc, uint64(b[0]), c)
	}
	acc, c = bits.Add64(acc, 0, c)
	acc += c // cannot carry again: acc was just wrapped to a small value
	return bits.ReverseBytes16(fold64(acc))
}

// fold64 folds a 64-bit one's complement accumulator to 16 bits.
func fold64(acc uint64) uint16 {
	acc = acc>>32 + acc&0xffffffff // < 2^33
	acc = acc>>32 + acc&0xffffffff // < 2^32
	acc = acc>>16 + acc&0xffff     // < 2^17
	acc = acc>>16 + acc&0xffff     // <= 0xffff
	return uint16(acc)
}

// Checksum returns the Internet checksum of b: the complement of its one's
// complement sum. For a header whose checksum field is zero, this is the
// value to store in the field.
func Checksum(b []byte) uint16 {
	return ^OnesSum(b, 0)
}

// add16 is one's complement addition of two 16-bit values.
func add16(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s + s>>16)
}

// ChecksumUpdate16 returns checksum field value csum adjusted for a 16-bit
// word of the covered data changing from m to m1, by RFC 1624 equation 3:
// HC' = ~(~HC + ~m + m'). The word must sit at an even offset of the
// checksummed data (true of every fixed TCP and IP header field).
func ChecksumUpdate16(csum, m, m1 uint16) uint16 {
	return ^add16(add16(^csum, ^m), m1)
}

// ChecksumUpdate32 is ChecksumUpdate16 for a 32-bit field such as a TCP
// sequence or acknowledgment number.
func ChecksumUpdate32(csum uint16, m, m1 uint32) uint16 {
	s := add16(^csum, ^uint16(m>>16))
	s = add16(s, ^uint16(m))
	s = add16(s, uint16(m1>>16))
	s = add16(s, uint16(m1))
	return ^s
}

// checksumUpdateBytes adjusts csum for the bytes m of the covered data
// being replaced by m1 (same length) at offset off; off may be odd, as TCP
// options can start anywhere.
func checksumUpdateBytes(csum uint16, off int, m, m1 []byte) uint16 {
	d := add16(^OnesSum(m, 0), OnesSum(m1, 0))
	if off&1 != 0 {
		// Bytes at odd offsets fill the other half of each 16-bit word;
		// the one's complement sum commutes with swapping bytes.
		d = bits.ReverseBytes16(d)
	}
	return ^add16(^csum, d)
}

// PseudoHeaderSum returns the one's complement sum of the TCP/UDP
// pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1) for the given addresses,
// upper-layer protocol and upper-layer length. Use it as the initial value
// of [OnesSum] over the segment. If src and dst are both IPv4 the IPv4
// pseudo-header is used, otherwise the IPv6 one (IPv4 addresses then count
// as IPv4-mapped IPv6 addresses).
func PseudoHeaderSum(src, dst netip.Addr, proto uint8, length int) uint16 {
	var s uint16
	if src.Is4() && dst.Is4() {
		a, b := src.As4(), dst.As4()
		s = OnesSum(a[:], 0)
		s = OnesSum(b[:], s)
	} else {
		a, b := src.As16(), dst.As16()
		s = OnesSum(a[:], 0)
		s = OnesSum(b[:], s)
	}
	return pseudoTail(s, proto, length)
}

// pseudoTail adds the protocol and length words of a pseudo-header to the
// sum of its addresses. The IPv6 length is 32 bits; the IPv4 one is 16, but
// with length < 2^16 both add the same words.
func pseudoTail(addrSum uint16, proto uint8, length int) uint16 {
	s := add16(addrSum, uint16(proto))
	s = add16(s, uint16(uint32(length)>>16))
	return add16(s, uint16(length))
}

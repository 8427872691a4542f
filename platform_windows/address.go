package platform_windows

import (
	"encoding/binary"
	"unsafe"
)

// Address is WinDivert 2.2's WINDIVERT_ADDRESS: the metadata of one captured
// or injected packet. Its memory layout is the C struct's on every Windows
// architecture Go supports (little-endian, 8-byte aligned INT64), so arrays
// of Address are handed to WinDivertRecvEx and WinDivertSendEx as they are:
//
//	offset  size  field
//	0       8     Timestamp (INT64, QueryPerformanceCounter clock)
//	8       4     bit field: Layer:8 Event:8 Sniffed:1 Outbound:1
//	              Loopback:1 Impostor:1 IPv6:1 IPChecksum:1 TCPChecksum:1
//	              UDPChecksum:1 Reserved1:8 (allocated from bit 0 up)
//	12      4     Reserved2
//	16      64    union: Network {IfIdx, SubIfIdx UINT32}, Flow, Socket,
//	              Reflect, Reserved3[64]
//	80            total
//
// Only the NETWORK layer's data is exposed: tcpinc opens no other layer.
type Address struct {
	Timestamp int64
	bits      uint32
	reserved2 uint32
	data      [64]byte
}

// AddressSize is sizeof(WINDIVERT_ADDRESS).
const AddressSize = 80

// The layout is fixed by the driver: fail the build if Go ever lays the
// struct out differently.
var _ [AddressSize - unsafe.Sizeof(Address{})]struct{}
var _ [unsafe.Sizeof(Address{}) - AddressSize]struct{}

// Bit positions in the bit field at offset 8.
const (
	bitSniffed     = 16
	bitOutbound    = 17
	bitLoopback    = 18
	bitImpostor    = 19
	bitIPv6        = 20
	bitIPChecksum  = 21
	bitTCPChecksum = 22
	bitUDPChecksum = 23
)

// Layer is a WINDIVERT_LAYER.
type Layer uint8

const (
	LayerNetwork        Layer = 0
	LayerNetworkForward Layer = 1
	LayerFlow           Layer = 2
	LayerSocket         Layer = 3
	LayerReflect        Layer = 4
)

// Event is a WINDIVERT_EVENT; the NETWORK layer has only EventNetworkPacket.
type Event uint8

const EventNetworkPacket Event = 0

func (a *Address) Layer() Layer          { return Layer(a.bits) }
func (a *Address) Event() Event          { return Event(a.bits >> 8) }
func (a *Address) Sniffed() bool         { return a.bit(bitSniffed) }
func (a *Address) Outbound() bool        { return a.bit(bitOutbound) }
func (a *Address) Loopback() bool        { return a.bit(bitLoopback) }
func (a *Address) Impostor() bool        { return a.bit(bitImpostor) }
func (a *Address) IPv6() bool            { return a.bit(bitIPv6) }
func (a *Address) IPChecksum() bool      { return a.bit(bitIPChecksum) }
func (a *Address) TCPChecksum() bool     { return a.bit(bitTCPChecksum) }
func (a *Address) UDPChecksum() bool     { return a.bit(bitUDPChecksum) }
func (a *Address) SetLayer(l Layer)      { a.bits = a.bits&^0xff | uint32(l) }
func (a *Address) SetEvent(e Event)      { a.bits = a.bits&^0xff00 | uint32(e)<<8 }
func (a *Address) SetSniffed(v bool)     { a.setBit(bitSniffed, v) }
func (a *Address) SetLoopback(v bool)    { a.setBit(bitLoopback, v) }
func (a *Address) SetOutbound(v bool)    { a.setBit(bitOutbound, v) }
func (a *Address) SetImpostor(v bool)    { a.setBit(bitImpostor, v) }
func (a *Address) SetIPv6(v bool)        { a.setBit(bitIPv6, v) }
func (a *Address) SetUDPChecksum(v bool) { a.setBit(bitUDPChecksum, v) }

// SetIPChecksum says whether the packet's IPv4 header checksum is valid.
// WinDivertSend recomputes the checksums whose flag is clear.
func (a *Address) SetIPChecksum(v bool) { a.setBit(bitIPChecksum, v) }

// SetTCPChecksum says whether the packet's TCP checksum is valid.
func (a *Address) SetTCPChecksum(v bool) { a.setBit(bitTCPChecksum, v) }

// Interface is Network.IfIdx and Network.SubIfIdx: the interface a packet
// arrived on (inbound) or leaves by (outbound). An inbound injection needs
// a valid one; outbound injections ignore it.
func (a *Address) Interface() (ifIdx, subIfIdx uint32) {
	return binary.LittleEndian.Uint32(a.data[0:4]), binary.LittleEndian.Uint32(a.data[4:8])
}

// SetInterface sets Network.IfIdx and Network.SubIfIdx.
func (a *Address) SetInterface(ifIdx, subIfIdx uint32) {
	binary.LittleEndian.PutUint32(a.data[0:4], ifIdx)
	binary.LittleEndian.PutUint32(a.data[4:8], subIfIdx)
}

func (a *Address) bit(n uint) bool { return a.bits>>n&1 != 0 }

func (a *Address) setBit(n uint, v bool) {
	if v {
		a.bits |= 1 << n
	} else {
		a.bits &^= 1 << n
	}
}

// MarshalBinary returns the 80 bytes the driver reads and writes (on a
// little-endian machine; every Windows target is one).
func (a *Address) MarshalBinary() ([]byte, error) {
	b := make([]byte, AddressSize)
	binary.LittleEndian.PutUint64(b[0:], uint64(a.Timestamp))
	binary.LittleEndian.PutUint32(b[8:], a.bits)
	binary.LittleEndian.PutUint32(b[12:], a.reserved2)
	copy(b[16:], a.data[:])
	return b, nil
}

// UnmarshalBinary reads the 80-byte form.
func (a *Address) UnmarshalBinary(b []byte) error {
	if len(b) != AddressSize {
		return errAddressSize
	}
	a.Timestamp = int64(binary.LittleEndian.Uint64(b[0:]))
	a.bits = binary.LittleEndian.Uint32(b[8:])
	a.reserved2 = binary.LittleEndian.Uint32(b[12:])
	copy(a.data[:], b[16:])
	return nil
}

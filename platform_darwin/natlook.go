package platform_darwin

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// DIOCNATLOOK asks pf for the state a translation rule created. Apple's
// struct pfioc_natlook (xnu bsd/net/pfvar.h, not in the SDK) differs from
// OpenBSD's: the ports are union pf_state_xport (u_int16_t port,
// u_int16_t call_id, u_int32_t spi: 4 bytes), and proto_variant sits
// before direction:
//
//	offset size field
//	     0   16 struct pf_addr saddr   (IPv4 in the first 4 bytes)
//	    16   16 struct pf_addr daddr
//	    32   16 struct pf_addr rsaddr  (out)
//	    48   16 struct pf_addr rdaddr  (out)
//	    64    4 union pf_state_xport sxport   (port: network order)
//	    68    4 union pf_state_xport dxport
//	    72    4 union pf_state_xport rsxport  (out)
//	    76    4 union pf_state_xport rdxport  (out)
//	    80    1 sa_family_t af
//	    81    1 u_int8_t proto
//	    82    1 u_int8_t proto_variant
//	    83    1 u_int8_t direction
//	size 84, alignment 4
//
// DIOCNATLOOK is _IOWR('D', 23, struct pfioc_natlook). With direction
// PF_OUT, pf looks the state up with daddr:dxport as its lan side (the
// proxy's own address, where rdr sent the connection) and saddr:sxport as
// the external side (the connection's source), and answers the gateway
// side, the address the connection was made to, in rdaddr:rdxport.
const (
	natlookSize = 84

	nlSaddr     = 0
	nlDaddr     = 16
	nlRsaddr    = 32
	nlRdaddr    = 48
	nlSxport    = 64
	nlDxport    = 68
	nlRsxport   = 72
	nlRdxport   = 76
	nlAF        = 80
	nlProto     = 81
	nlVariant   = 82
	nlDirection = 83

	pfIn  = 1
	pfOut = 2

	afInet     = 2  // AF_INET on Darwin
	afInet6    = 30 // AF_INET6 on Darwin
	ipProtoTCP = 6

	// ioctl encoding (sys/ioccom.h): IOC_INOUT | size<<16 | group<<8 | num.
	iocInOut    = 0xc0000000
	iocParmMask = 0x1fff
	diocNatlook = iocInOut | (natlookSize&iocParmMask)<<16 | 'D'<<8 | 23
)

// natlookRequest is the ioctl argument, as bytes laid out as above.
type natlookRequest [natlookSize]byte

// errFamilyMismatch: the two ends of a redirected connection must be the
// same IP version.
var errFamilyMismatch = errors.New("natlook: source and proxy address are different IP versions")

// newNatlook builds the request for a connection the proxy accepted: src
// is the accepted socket's peer (the application's address on outbound
// flows), proxy the accepted socket's local address (where rdr sent it).
func newNatlook(src, proxy netip.AddrPort) (natlookRequest, error) {
	var r natlookRequest
	s, p := src.Addr().Unmap(), proxy.Addr().Unmap()
	if s.Is4() != p.Is4() {
		return r, errFamilyMismatch
	}
	putPFAddr(r[nlSaddr:], s)
	putPFAddr(r[nlDaddr:], p)
	binary.BigEndian.PutUint16(r[nlSxport:], src.Port())
	binary.BigEndian.PutUint16(r[nlDxport:], proxy.Port())
	if s.Is4() {
		r[nlAF] = afInet
	} else {
		r[nlAF] = afInet6
	}
	r[nlProto] = ipProtoTCP
	r[nlDirection] = pfOut
	return r, nil
}

func putPFAddr(b []byte, a netip.Addr) {
	if a.Is4() {
		v := a.As4()
		copy(b[:4], v[:])
		return
	}
	v := a.As16()
	copy(b[:16], v[:])
}

// origDst reads the answer: the original destination.
func (r *natlookRequest) origDst() (netip.AddrPort, error) {
	var a netip.Addr
	switch r[nlAF] {
	case afInet:
		a = netip.AddrFrom4([4]byte(r[nlRdaddr : nlRdaddr+4]))
	case afInet6:
		a = netip.AddrFrom16([16]byte(r[nlRdaddr : nlRdaddr+16]))
	default:
		return netip.AddrPort{}, fmt.Errorf("natlook: unknown address family %d in the answer", r[nlAF])
	}
	port := binary.BigEndian.Uint16(r[nlRdxport:])
	if !a.IsValid() || a.IsUnspecified() || port == 0 {
		return netip.AddrPort{}, errors.New("natlook: pf answered an empty destination")
	}
	return netip.AddrPortFrom(a, port), nil
}

package platform_linux

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Why the proxy asks conntrack for a redirected connection's original
// source (and not only SO_ORIGINAL_DST for its destination):
//
// REDIRECT maps every redirected connection onto one listener
// address:port, so the reply tuples of two connections from the same
// source port to different destinations are equal. When a client reuses
// a source port (TIME_WAIT reuse, a wide port range, fast churn) while
// the old connection's conntrack entry is still around, NAT keeps the
// tuples unique by also changing the source port. The accepted socket
// then shows a source port the gate and the SYN hook never saw: the
// prepared leg was not found (the proxy dialled a second one) and, on
// inbound connections, the hook's ENO outcome was not found either, so
// the proxy ran the leg plain while the peer had enabled ENO and reset
// it after a failed Init or frame. The conntrack entry's original tuple
// is the connection as the gate and the hook saw it.

// ctnetlink constants (linux/netfilter/nfnetlink.h, nfnetlink_conntrack.h).
const (
	nfnlSubsysCtnetlink = 1
	ipctnlMsgCtGet      = 1
	ctaTupleOrig        = 1
	ctaTupleReply       = 2
	ctaTupleIP          = 1
	ctaTupleProto       = 2
	ctaIPv4Src          = 1
	ctaIPv4Dst          = 2
	ctaIPv6Src          = 3
	ctaIPv6Dst          = 4
	ctaProtoNum         = 1
	ctaProtoSrcPort     = 2
	ctaProtoDstPort     = 3
)

// ctConn asks conntrack about connections (NETLINK_NETFILTER).
type ctConn struct{ c *netlink.Conn }

func dialCT() (*ctConn, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("tcpinc: conntrack netlink socket: %w", err)
	}
	return &ctConn{c}, nil
}

func (ct *ctConn) close() {
	if ct != nil && ct.c != nil {
		ct.c.Close()
	}
}

// originalTuple returns the original direction (source, destination) of
// the TCP connection whose reply direction goes from src to dst: for a
// connection a REDIRECT rule sent to a local listener, src is the
// accepted socket's local address and dst its remote address.
func (ct *ctConn) originalTuple(src, dst netip.AddrPort) (osrc, odst netip.AddrPort, err error) {
	src, dst = unmap(src), unmap(dst)
	fam := uint8(unix.AF_INET)
	ipSrc, ipDst := uint16(ctaIPv4Src), uint16(ctaIPv4Dst)
	if src.Addr().Is6() {
		fam, ipSrc, ipDst = unix.AF_INET6, ctaIPv6Src, ctaIPv6Dst
	}
	ae := netlink.NewAttributeEncoder()
	ae.Nested(ctaTupleReply, func(t *netlink.AttributeEncoder) error {
		t.Nested(ctaTupleIP, func(n *netlink.AttributeEncoder) error {
			n.Bytes(ipSrc, src.Addr().AsSlice())
			n.Bytes(ipDst, dst.Addr().AsSlice())
			return nil
		})
		t.Nested(ctaTupleProto, func(n *netlink.AttributeEncoder) error {
			n.Uint8(ctaProtoNum, unix.IPPROTO_TCP)
			n.Bytes(ctaProtoSrcPort, binary.BigEndian.AppendUint16(nil, src.Port()))
			n.Bytes(ctaProtoDstPort, binary.BigEndian.AppendUint16(nil, dst.Port()))
			return nil
		})
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return osrc, odst, err
	}
	// struct nfgenmsg: family, version (NFNETLINK_V0), resource id.
	data := append([]byte{fam, 0, 0, 0}, attrs...)
	msgs, err := ct.c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysCtnetlink<<8 | ipctnlMsgCtGet), Flags: netlink.Request | netlink.Acknowledge},
		Data:   data,
	})
	if err != nil {
		return osrc, odst, fmt.Errorf("conntrack lookup of %v → %v: %w", src, dst, err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		if osrc, odst, err = parseOrigTuple(m.Data[4:]); err == nil {
			return osrc, odst, nil
		}
	}
	if err == nil {
		err = errors.New("no original tuple in the answer")
	}
	return osrc, odst, fmt.Errorf("conntrack lookup of %v → %v: %w", src, dst, err)
}

// parseOrigTuple reads CTA_TUPLE_ORIG from a conntrack message's
// attributes.
func parseOrigTuple(b []byte) (src, dst netip.AddrPort, err error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return src, dst, err
	}
	var sa, da netip.Addr
	var sp, dp uint16
	found := false
	for ad.Next() {
		if ad.Type() != ctaTupleOrig {
			continue
		}
		found = true
		ad.Nested(func(t *netlink.AttributeDecoder) error {
			for t.Next() {
				switch t.Type() {
				case ctaTupleIP:
					t.Nested(func(n *netlink.AttributeDecoder) error {
						for n.Next() {
							a, ok := netip.AddrFromSlice(n.Bytes())
							if !ok {
								continue
							}
							switch n.Type() {
							case ctaIPv4Src, ctaIPv6Src:
								sa = a
							case ctaIPv4Dst, ctaIPv6Dst:
								da = a
							}
						}
						return nil
					})
				case ctaTupleProto:
					t.Nested(func(n *netlink.AttributeDecoder) error {
						for n.Next() {
							v := n.Bytes()
							if len(v) != 2 {
								continue
							}
							switch n.Type() {
							case ctaProtoSrcPort:
								sp = binary.BigEndian.Uint16(v)
							case ctaProtoDstPort:
								dp = binary.BigEndian.Uint16(v)
							}
						}
						return nil
					})
				}
			}
			return nil
		})
	}
	if err := ad.Err(); err != nil {
		return src, dst, err
	}
	if !found || !sa.IsValid() || !da.IsValid() {
		return src, dst, errors.New("answer without an original tuple")
	}
	return netip.AddrPortFrom(sa.Unmap(), sp), netip.AddrPortFrom(da.Unmap(), dp), nil
}

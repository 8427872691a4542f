package simnet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"

	"tcpinc.dev/tcpinc/core/packet"
)

// This file holds the TCP-aware middleboxes. Each works like a real box:
// it parses the packet with core/packet, rewrites it, and keeps every
// length and checksum consistent. None of them launders a damaged
// packet: a segment whose checksum is wrong is passed on untouched.

// parseIntact parses a TCP packet and reports whether a middlebox may
// touch it (TCP, parses, correct IPv4 header and TCP checksums).
func parseIntact(buf []byte) (packet.Packet, bool) {
	p, err := packet.Parse(buf)
	if err != nil || !p.HasTCP() {
		return p, false
	}
	if ip4 := p.IPv4(); ip4 != nil && !ip4.VerifyChecksum() {
		return p, false
	}
	return p, p.VerifyTCPChecksum()
}

// stripOptions applies the strip rules to buf and returns the (possibly
// shorter) packet and how many options it removed.
func stripOptions(buf []byte, rules []OptionStrip) ([]byte, int) {
	if len(rules) == 0 {
		return buf, 0
	}
	p, ok := parseIntact(buf)
	if !ok {
		return buf, 0
	}
	syn := p.TCP().Flags().Has(packet.SYN)
	n := 0
	for _, r := range rules {
		if !r.AllSegments && !syn {
			continue
		}
		if c := p.Options().Count(r.Kind); c == 0 {
			continue
		} else if r.Remove {
			if err := p.RemoveOption(r.Kind); err != nil {
				continue
			}
			n += c
		} else {
			n += nopOut(p, r.Kind)
		}
	}
	return p.Bytes(), n
}

// nopOut overwrites every option of the given kind with NOPs, keeping the
// header length, and fixes the TCP checksum.
func nopOut(p packet.Packet, kind uint8) int {
	opts := p.Options()
	n := 0
	for {
		o, ok := opts.Find(kind)
		if !ok || kind == packet.OptNOP || kind == packet.OptEOL {
			break
		}
		for i := o.Offset; i < o.Offset+o.Len(); i++ {
			opts[i] = packet.OptNOP
		}
		n++
	}
	if n > 0 {
		p.UpdateTCPChecksum() // the packet was intact before
	}
	return n
}

// clampMSS lowers the MSS option of a SYN to mss; it reports whether it
// changed the packet.
func clampMSS(buf []byte, mss uint16) bool {
	p, ok := parseIntact(buf)
	if !ok || !p.TCP().Flags().Has(packet.SYN) {
		return false
	}
	o, ok := p.Options().Find(packet.OptMSS)
	if !ok || len(o.Data) != 2 || binary.BigEndian.Uint16(o.Data) <= mss {
		return false
	}
	var v [2]byte
	binary.BigEndian.PutUint16(v[:], mss)
	return p.TCP().RewriteOptionData(o, v[:]) == nil
}

// splittable reports whether a resegmenting box may cut the segment:
// intact data segment without SYN, RST or URG and at least 2 data bytes.
func splittable(p packet.Packet) bool {
	f := p.TCP().Flags()
	return p.PayloadLen() >= 2 && !f.Has(packet.SYN) && !f.Has(packet.RST) && !f.Has(packet.URG)
}

// splitSegment cuts the data segment in buf after k payload bytes. buf
// keeps the first part (PSH and FIN move to the second part); second
// receives the rest, a copy of the header with the sequence number moved
// on. second must have room for the whole packet.
func splitSegment(buf []byte, k int, second []byte) (first, rest []byte, err error) {
	p, err := packet.Parse(buf)
	if err != nil {
		return nil, nil, err
	}
	if k <= 0 || k >= p.PayloadLen() {
		return nil, nil, errors.New("simnet: split point outside payload")
	}
	q, err := packet.Parse(append(second[:0], p.Bytes()...))
	if err != nil {
		return nil, nil, err
	}
	q.TCP().RewriteSeq(p.TCP().Seq() + uint32(k))
	if err := q.SetPayload(q.Payload()[k:]); err != nil {
		return nil, nil, err
	}
	p.TCP().RewriteFlags(p.TCP().Flags() &^ (packet.PSH | packet.FIN))
	if err := p.SetPayload(p.Payload()[:k]); err != nil {
		return nil, nil, err
	}
	return p.Bytes(), q.Bytes(), nil
}

// coalescible reports whether an intact segment is a candidate for
// merging: data, and none of SYN, FIN, RST, URG.
func coalescible(p packet.Packet) bool {
	f := p.TCP().Flags()
	return p.PayloadLen() > 0 && f&(packet.SYN|packet.FIN|packet.RST|packet.URG) == 0
}

// mergeable reports whether next may be appended to held, the way a real
// resegmenting box (GRO/LRO) decides: same flow, next directly follows
// held in sequence space, same flags apart from PSH, same ACK and
// identical options, and the result fits mtu.
func mergeable(held, next packet.Packet, mtu int) bool {
	if !coalescible(held) || !coalescible(next) {
		return false
	}
	if held.Version() != next.Version() || held.Src() != next.Src() || held.Dst() != next.Dst() {
		return false
	}
	ht, nt := held.TCP(), next.TCP()
	if nt.Seq() != ht.Seq()+uint32(held.PayloadLen()) {
		return false
	}
	if ht.Flags()&^packet.PSH != nt.Flags()&^packet.PSH || ht.Ack() != nt.Ack() {
		return false
	}
	if held.TCPOffset() != next.TCPOffset() || !bytes.Equal(ht.Options(), nt.Options()) {
		return false
	}
	return held.Len()+next.PayloadLen() <= mtu
}

// mergeSegments appends next's payload to held (in held's buffer, whose
// capacity must allow it) and takes over next's window and PSH.
func mergeSegments(held, next packet.Packet) ([]byte, error) {
	hl := held.PayloadLen()
	data, err := held.ResizePayload(hl + next.PayloadLen())
	if err != nil {
		return nil, err
	}
	copy(data[hl:], next.Payload())
	t := held.TCP()
	t.SetFlags(t.Flags() | next.TCP().Flags()&packet.PSH)
	t.SetWindow(next.TCP().Window())
	held.UpdateTCPChecksum()
	return held.Bytes(), nil
}

// nat translates A's flows. It is used only from the driver goroutine.
type nat struct {
	cfg      NATConfig
	nextPort uint16
	out      map[flowKey]netip.AddrPort // (inside src, remote) -> public src
	in       map[flowKey]netip.AddrPort // (remote, public src) -> inside src
}

func newNAT(cfg NATConfig) *nat {
	return &nat{cfg: cfg, nextPort: cfg.FirstPort,
		out: make(map[flowKey]netip.AddrPort), in: make(map[flowKey]netip.AddrPort)}
}

// outbound rewrites the source of a packet from A, allocating a mapping
// for a new flow. It reports whether it translated.
func (n *nat) outbound(buf []byte) bool {
	p, err := packet.Parse(buf)
	if err != nil || !p.HasTCP() {
		return false
	}
	k := flowKey{p.Src(), p.Dst()}
	pub, ok := n.out[k]
	if !ok {
		addr := n.cfg.Addr4
		if p.Version() == 6 {
			addr = n.cfg.Addr6
		}
		pub = netip.AddrPortFrom(addr, n.nextPort)
		n.nextPort++
		if n.nextPort == 0 {
			n.nextPort = n.cfg.FirstPort
		}
		n.out[k] = pub
		n.in[flowKey{p.Dst(), pub}] = p.Src()
	}
	rewriteEndpoint(p, true, pub)
	return true
}

// inbound rewrites the destination of a reply to A. ok is false for a
// TCP packet to the public address that matches no mapping (the NAT
// drops it); translated says whether the packet was rewritten.
func (n *nat) inbound(buf []byte) (translated, ok bool) {
	p, err := packet.Parse(buf)
	if err != nil || !p.HasTCP() {
		return false, true
	}
	inside, found := n.in[flowKey{p.Src(), p.Dst()}]
	if !found {
		d := p.DstAddr()
		return false, d != n.cfg.Addr4 && d != n.cfg.Addr6
	}
	rewriteEndpoint(p, false, inside)
	return true, true
}

// rewriteEndpoint sets the source (src true) or destination address and
// port of p, updating the TCP checksum incrementally (RFC 1624, so a bad
// checksum stays bad) and the IPv4 header checksum.
func rewriteEndpoint(p packet.Packet, src bool, ap netip.AddrPort) {
	t := p.TCP()
	csum := t.Checksum()
	var oldAddr netip.Addr
	if src {
		oldAddr = p.SrcAddr()
	} else {
		oldAddr = p.DstAddr()
	}
	o, n := oldAddr.AsSlice(), ap.Addr().AsSlice()
	for i := 0; i+4 <= len(o) && i+4 <= len(n); i += 4 {
		csum = packet.ChecksumUpdate32(csum, binary.BigEndian.Uint32(o[i:]), binary.BigEndian.Uint32(n[i:]))
	}
	if src {
		csum = packet.ChecksumUpdate16(csum, t.SrcPort(), ap.Port())
		t.SetSrcPort(ap.Port())
	} else {
		csum = packet.ChecksumUpdate16(csum, t.DstPort(), ap.Port())
		t.SetDstPort(ap.Port())
	}
	t.SetChecksum(csum)
	if ip := p.IPv4(); ip != nil {
		if src {
			_ = ip.SetSrc(ap.Addr())
		} else {
			_ = ip.SetDst(ap.Addr())
		}
		ip.UpdateChecksum()
	} else if ip := p.IPv6(); ip != nil {
		if src {
			_ = ip.SetSrc(ap.Addr())
		} else {
			_ = ip.SetDst(ap.Addr())
		}
	}
}

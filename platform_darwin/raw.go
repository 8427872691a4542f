package platform_darwin

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"

	"tcpinc.dev/tcpinc/core/packet"
)

// Reflection: the kernel's own handshake segments of a wire leg carry the
// reflection mark in their DSCP, pf routes them to lo0 instead of the
// network, the service reads them from lo0's BPF, lets the redirect hook
// edit their options, clears the mark and sends them with a raw socket.
// The functions here are the OS-neutral steps of that path.

// clearMark removes the reflection mark from a parsed packet (DSCP to 0,
// ECN bits kept) and recomputes every checksum in full: a segment looped
// through lo0 carries only the partial checksum of checksum offload.
func clearMark(p *packet.Packet) {
	if ip := p.IPv4(); ip != nil {
		ip.SetTOS(ip.TOS() & ecnMask)
		ip.UpdateChecksum()
	} else if ip6 := p.IPv6(); ip6 != nil {
		ip6.SetTrafficClass(ip6.TrafficClass() & ecnMask)
	}
	p.UpdateTCPChecksum()
}

// hasMark reports whether a packet carries the reflection mark.
func hasMark(p *packet.Packet, mark uint8) bool {
	mark &^= ecnMask
	if ip := p.IPv4(); ip != nil {
		return ip.TOS()&^ecnMask == mark
	}
	if ip6 := p.IPv6(); ip6 != nil {
		return ip6.TrafficClass()&^ecnMask == mark
	}
	return false
}

// darwinRawIPv4 converts a wire-format IPv4 packet in place into what
// Darwin's raw IP socket with IP_HDRINCL takes: ip_len and ip_off in host
// byte order (a BSD tradition FreeBSD dropped in 11.0 and xnu kept; the
// kernel swaps them back in rip_output). Every Mac is little-endian. The
// header checksum is left as is: ip_output recomputes it.
func darwinRawIPv4(pkt []byte) error {
	if len(pkt) < packet.IPv4MinHeaderLen || pkt[0]>>4 != 4 {
		return errors.New("raw: not an IPv4 packet")
	}
	l := binary.BigEndian.Uint16(pkt[2:4])
	off := binary.BigEndian.Uint16(pkt[6:8])
	binary.LittleEndian.PutUint16(pkt[2:4], l)
	binary.LittleEndian.PutUint16(pkt[6:8], off)
	return nil
}

// rawIPv6 is what an IPv6 raw socket (protocol TCP, no header inclusion
// on Darwin) needs to send a packet: the kernel writes the IPv6 header
// from the destination, IPV6_PKTINFO (source) and IPV6_TCLASS /
// IPV6_HOPLIMIT; the TCP checksum in seg is already final.
type rawIPv6 struct {
	src, dst netip.Addr
	tclass   uint8
	hopLimit uint8
	seg      []byte // TCP header and payload
}

func splitIPv6(p *packet.Packet) (rawIPv6, error) {
	ip6 := p.IPv6()
	if ip6 == nil || !p.HasTCP() {
		return rawIPv6{}, errors.New("raw: not an IPv6 TCP packet")
	}
	if p.TCPOffset() != packet.IPv6HeaderLen {
		// Darwin's kernel does not send its own handshake segments
		// with extension headers; rebuilding them is not worth it.
		return rawIPv6{}, errors.New("raw: IPv6 extension headers are not re-injected")
	}
	return rawIPv6{
		src:      ip6.Src(),
		dst:      ip6.Dst(),
		tclass:   ip6.TrafficClass(),
		hopLimit: ip6.HopLimit(),
		seg:      p.Bytes()[p.TCPOffset():p.Len()],
	}, nil
}

// dedup drops the second copy of a reflected segment. Depending on the
// xnu version the loopback interface's BPF tap may see a packet both on
// output and on input; a genuine retransmission comes much later than
// dedupWindow, so dropping a copy seen within it is safe.
type dedup struct {
	ring [64]dedupEntry
	next int
}

type dedupEntry struct {
	key dedupKey
	at  time.Time
}

type dedupKey struct {
	src, dst netip.AddrPort
	seq, ack uint32
	flags    packet.Flags
	plen     int
	ipID     uint16
	csum     uint16
}

const dedupWindow = 200 * time.Millisecond

// seen records p and reports whether an identical segment was recorded
// within dedupWindow before now.
func (d *dedup) seen(p *packet.Packet, now time.Time) bool {
	t := p.TCP()
	k := dedupKey{src: p.Src(), dst: p.Dst(), seq: t.Seq(), ack: t.Ack(),
		flags: t.Flags(), plen: p.PayloadLen(), csum: t.Checksum()}
	if ip := p.IPv4(); ip != nil {
		k.ipID = ip.ID()
	}
	for i := range d.ring {
		e := &d.ring[i]
		if e.key == k && !e.at.IsZero() && now.Sub(e.at) < dedupWindow {
			return true
		}
	}
	d.ring[d.next] = dedupEntry{key: k, at: now}
	d.next = (d.next + 1) % len(d.ring)
	return false
}

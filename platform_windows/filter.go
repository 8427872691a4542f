package platform_windows

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"tcpinc.dev/tcpinc/core"
)

// MaxWorkers bounds the handles (and engines) of one backend.
const MaxWorkers = 64

// maxFilterTests is the most tests a generated filter may hold. WinDivert
// compiles at most 256 (WINDIVERT_FILTER_MAXLEN); the margin covers the
// compiler's own additions.
const maxFilterTests = 200

// ephemeralBase is where the ports the workers split begin. The larger
// port of a connection is nearly always the client's ephemeral port:
// Windows picks them from 49152–65535, Linux from 32768–60999, so
// splitting 32768–65535 spreads both across the workers.
const ephemeralBase = 32768

// PortRange returns the range of a connection's larger port that worker
// part of parts captures. The ranges of 0..parts-1 cover 0–65535 without
// overlap: WinDivert requires handles of one priority to have mutually
// exclusive filters, and both directions of a connection must reach the
// same worker (its engine holds the connection's state). The larger port
// is the same in both directions, so it is a symmetric key.
func PortRange(part, parts int) (lo, hi uint16) {
	width := (65536 - ephemeralBase) / parts
	l := ephemeralBase + part*width
	h := l + width - 1
	if part == 0 {
		l = 0
	}
	if part == parts-1 {
		h = 65535
	}
	return uint16(l), uint16(h)
}

// filterBuilder writes a WinDivert filter and counts its tests.
type filterBuilder struct {
	strings.Builder
	tests int
}

func (b *filterBuilder) test(s string) {
	b.WriteString(s)
	b.tests++
}

// DivertFilter is the WinDivert filter of worker part (of parts) in divert
// mode: every TCP packet to or from this host that is not loopback (Windows
// calls every packet between two of the host's own addresses loopback) and
// not excluded by the policy, IPv4 and IPv6, restricted to the worker's
// share of connections (PortRange).
//
// Exclusions are written so that no test ever depends on a field the
// packet lacks: an IPv4 prefix is "ipv6 or (outside the prefix)".
func DivertFilter(p *core.Policy, part, parts int) (string, error) {
	if parts < 1 || parts > MaxWorkers || part < 0 || part >= parts {
		return "", fmt.Errorf("windivert: worker %d of %d: want 1–%d workers", part, parts, MaxWorkers)
	}
	var b filterBuilder
	b.test("tcp")
	b.WriteString(" and ")
	b.test("!loopback")
	if err := writeExclusions(&b, p); err != nil {
		return "", err
	}
	if parts > 1 {
		b.WriteString(" and ")
		writePartition(&b, part, parts)
	}
	if b.tests > maxFilterTests {
		return "", fmt.Errorf("windivert: the policy's exclusions need %d filter tests, more than the %d WinDivert can hold; exclude fewer ports, or address ranges that merge into fewer prefixes", b.tests, maxFilterTests)
	}
	return b.String(), nil
}

func writeExclusions(b *filterBuilder, p *core.Policy) error {
	ports := slices.Clone(p.ExcludePorts)
	slices.Sort(ports)
	ports = slices.Compact(ports)
	for _, port := range ports {
		s := strconv.Itoa(int(port))
		b.WriteString(" and ")
		b.test("tcp.SrcPort != " + s)
		b.WriteString(" and ")
		b.test("tcp.DstPort != " + s)
	}
	pfxs := make([]netip.Prefix, 0, len(p.ExcludeAddrs))
	for _, pfx := range p.ExcludeAddrs {
		if !pfx.IsValid() {
			return errors.New("windivert: an excluded address prefix is invalid")
		}
		pfxs = append(pfxs, unmapPrefix(pfx).Masked())
	}
	slices.SortFunc(pfxs, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	pfxs = slices.Compact(pfxs)
	for _, pfx := range pfxs {
		b.WriteString(" and ")
		writePrefixExclusion(b, pfx)
	}
	return nil
}

// unmapPrefix turns ::ffff:a.b.c.d/n (n >= 96) into a.b.c.d/(n-96):
// WinDivert sees IPv4 packets as ip.*, never as mapped IPv6.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

func writePrefixExclusion(b *filterBuilder, p netip.Prefix) {
	proto, other := "ip", "ipv6"
	if p.Addr().Is6() {
		proto, other = "ipv6", "ip"
	}
	if p.Bits() == 0 {
		// The whole family is excluded: only the other one is captured.
		b.test(other)
		return
	}
	lo, hi := p.Addr(), lastAddr(p)
	b.WriteString("(")
	b.test(other)
	b.WriteString(" or (")
	writeOutside(b, proto+".SrcAddr", lo, hi)
	b.WriteString(" and ")
	writeOutside(b, proto+".DstAddr", lo, hi)
	b.WriteString("))")
}

// writeOutside writes "field is not in [lo, hi]"; [lo, hi] is never the
// whole address space (a /0 prefix is handled by the caller).
func writeOutside(b *filterBuilder, field string, lo, hi netip.Addr) {
	switch {
	case lo == hi:
		b.test(field + " != " + lo.String())
	case !lo.Prev().IsValid(): // lo is the family's first address
		b.test(field + " > " + hi.String())
	case !hi.Next().IsValid():
		b.test(field + " < " + lo.String())
	default:
		b.WriteString("(")
		b.test(field + " < " + lo.String())
		b.WriteString(" or ")
		b.test(field + " > " + hi.String())
		b.WriteString(")")
	}
}

// lastAddr is the highest address of a masked prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().AsSlice()
	bits := p.Bits()
	for i := range a {
		switch {
		case bits >= 8:
			bits -= 8
		case bits > 0:
			a[i] |= 0xff >> bits
			bits = 0
		default:
			a[i] = 0xff
		}
	}
	addr, _ := netip.AddrFromSlice(a)
	return addr
}

// writePartition writes "the larger port is in PortRange(part, parts)" as
// max(s, d) <= hi and max(s, d) >= lo, which the filter language (no
// arithmetic, no field-to-field comparison) can say as
// s <= hi and d <= hi and (s >= lo or d >= lo).
func writePartition(b *filterBuilder, part, parts int) {
	lo, hi := PortRange(part, parts)
	los, his := strconv.Itoa(int(lo)), strconv.Itoa(int(hi))
	b.WriteString("(")
	if hi != 65535 {
		b.test("tcp.SrcPort <= " + his)
		b.WriteString(" and ")
		b.test("tcp.DstPort <= " + his)
		if lo != 0 {
			b.WriteString(" and (")
		}
	}
	if lo != 0 {
		b.test("tcp.SrcPort >= " + los)
		b.WriteString(" or ")
		b.test("tcp.DstPort >= " + los)
		if hi != 65535 {
			b.WriteString(")")
		}
	}
	b.WriteString(")")
}

// WidenFilter is the filter of an extra handle that captures, from now
// on, what policy p captures and the handles opened for the policies in
// open do not: "captured by p, and excluded by each of open". WinDivert
// cannot change a handle's filter, and replacing a handle would capture
// packets twice or not at all for a moment; a handle for the difference
// is mutually exclusive with the open ones by construction, as handles of
// one priority must be. It returns "" when p captures nothing new.
func WidenFilter(p *core.Policy, open []core.Policy) (string, error) {
	var b filterBuilder
	b.test("tcp")
	b.WriteString(" and ")
	b.test("!loopback")
	if err := writeExclusions(&b, p); err != nil {
		return "", err
	}
	for i := range open {
		if len(open[i].ExcludePorts) == 0 && len(open[i].ExcludeAddrs) == 0 {
			return "", nil // that handle captures everything already
		}
		b.WriteString(" and ")
		if err := writeExcludedBy(&b, &open[i]); err != nil {
			return "", err
		}
	}
	if b.tests > maxFilterTests {
		return "", fmt.Errorf("windivert: capturing what the new policy no longer excludes needs %d filter tests, more than the %d WinDivert can hold; restart the service to apply it", b.tests, maxFilterTests)
	}
	return b.String(), nil
}

// writeExcludedBy writes "one of p's exclusions matches the packet": the
// positive form of what writeExclusions rules out (the filter language
// negates single tests only).
func writeExcludedBy(b *filterBuilder, p *core.Policy) error {
	first := true
	or := func() {
		if !first {
			b.WriteString(" or ")
		}
		first = false
	}
	b.WriteString("(")
	ports := slices.Clone(p.ExcludePorts)
	slices.Sort(ports)
	for _, port := range slices.Compact(ports) {
		s := strconv.Itoa(int(port))
		or()
		b.test("tcp.SrcPort == " + s)
		b.WriteString(" or ")
		b.test("tcp.DstPort == " + s)
	}
	for _, pfx := range p.ExcludeAddrs {
		if !pfx.IsValid() {
			return errors.New("windivert: an excluded address prefix is invalid")
		}
		pfx = unmapPrefix(pfx).Masked()
		proto := "ip"
		if pfx.Addr().Is6() {
			proto = "ipv6"
		}
		or()
		if pfx.Bits() == 0 {
			b.test(proto)
			continue
		}
		lo, hi := pfx.Addr(), lastAddr(pfx)
		writeInside(b, proto+".SrcAddr", lo, hi)
		b.WriteString(" or ")
		writeInside(b, proto+".DstAddr", lo, hi)
	}
	b.WriteString(")")
	return nil
}

// writeInside writes "field is in [lo, hi]".
func writeInside(b *filterBuilder, field string, lo, hi netip.Addr) {
	if lo == hi {
		b.test(field + " == " + lo.String())
		return
	}
	b.WriteString("(")
	b.test(field + " >= " + lo.String())
	b.WriteString(" and ")
	b.test(field + " <= " + hi.String())
	b.WriteString(")")
}

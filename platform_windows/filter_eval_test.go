package platform_windows

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// A test-only evaluator for the subset of the WinDivert filter language
// the generated filters use, so the tests check what a filter matches and
// not only how it is spelled. Semantics follow WinDivert's documentation:
// a test of a field the packet lacks (ip.SrcAddr of an IPv6 packet) is
// false.

// evalPacket is what the evaluator knows of a packet.
type evalPacket struct {
	tcp, loopback bool
	outbound      bool
	src, dst      netip.Addr
	sport, dport  uint16
}

type evalNode func(*evalPacket) bool

type evalParser struct {
	toks []string
	i    int
}

// parseFilter compiles a filter; it never panics.
func parseFilter(s string) (evalNode, error) {
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	p := &evalParser{toks: toks}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.i != len(p.toks) {
		return nil, fmt.Errorf("trailing %q", p.toks[p.i])
	}
	return n, nil
}

func tokenize(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ':
			i++
		case c == '(' || c == ')':
			toks = append(toks, s[i:i+1])
			i++
		case strings.HasPrefix(s[i:], "!="), strings.HasPrefix(s[i:], "<="), strings.HasPrefix(s[i:], ">="), strings.HasPrefix(s[i:], "=="):
			toks = append(toks, s[i:i+2])
			i += 2
		case c == '!' || c == '<' || c == '>':
			toks = append(toks, s[i:i+1])
			i++
		default:
			j := i
			for j < len(s) && strings.IndexByte(" ()!<>=", s[j]) < 0 {
				j++
			}
			if j == i {
				return nil, fmt.Errorf("bad character %q", c)
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks, nil
}

func (p *evalParser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return ""
}

func (p *evalParser) or() (evalNode, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.peek() == "or" {
		p.i++
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		a, b := l, r
		l = func(x *evalPacket) bool { return a(x) || b(x) }
	}
	return l, nil
}

func (p *evalParser) and() (evalNode, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.peek() == "and" {
		p.i++
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		a, b := l, r
		l = func(x *evalPacket) bool { return a(x) && b(x) }
	}
	return l, nil
}

func (p *evalParser) unary() (evalNode, error) {
	switch p.peek() {
	case "!", "not":
		p.i++
		n, err := p.unary()
		if err != nil {
			return nil, err
		}
		return func(x *evalPacket) bool { return !n(x) }, nil
	case "(":
		p.i++
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, fmt.Errorf("missing )")
		}
		p.i++
		return n, nil
	case "":
		return nil, fmt.Errorf("unexpected end")
	}
	return p.test()
}

func (p *evalParser) test() (evalNode, error) {
	field := p.toks[p.i]
	p.i++
	switch field {
	case "true", "false", "tcp", "ip", "ipv6", "loopback", "outbound", "inbound":
		return func(x *evalPacket) bool {
			switch field {
			case "true":
				return true
			case "false":
				return false
			case "tcp":
				return x.tcp
			case "ip":
				return x.src.Is4()
			case "ipv6":
				return x.src.Is6()
			case "outbound":
				return x.outbound
			case "inbound":
				return !x.outbound
			}
			return x.loopback
		}, nil
	}
	op := p.peek()
	switch op {
	case "==", "!=", "<", ">", "<=", ">=":
	default:
		return nil, fmt.Errorf("field %q without a comparison", field)
	}
	p.i++
	if p.i >= len(p.toks) {
		return nil, fmt.Errorf("missing value")
	}
	val := p.toks[p.i]
	p.i++
	cmp := func(c int) bool {
		switch op {
		case "==":
			return c == 0
		case "!=":
			return c != 0
		case "<":
			return c < 0
		case ">":
			return c > 0
		case "<=":
			return c <= 0
		}
		return c >= 0
	}
	switch field {
	case "tcp.SrcPort", "tcp.DstPort":
		v, err := strconv.ParseUint(val, 10, 16)
		if err != nil {
			return nil, err
		}
		return func(x *evalPacket) bool {
			if !x.tcp {
				return false
			}
			port := x.sport
			if field == "tcp.DstPort" {
				port = x.dport
			}
			return cmp(int(port) - int(v))
		}, nil
	case "ip.SrcAddr", "ip.DstAddr", "ipv6.SrcAddr", "ipv6.DstAddr":
		a, err := netip.ParseAddr(val)
		if err != nil {
			return nil, err
		}
		v6 := strings.HasPrefix(field, "ipv6")
		if a.Is6() != v6 {
			return nil, fmt.Errorf("%s compared with %s", field, val)
		}
		return func(x *evalPacket) bool {
			if x.src.Is6() != v6 {
				return false // the field is not relevant: the test fails
			}
			addr := x.src
			if strings.HasSuffix(field, "DstAddr") {
				addr = x.dst
			}
			return cmp(addr.Compare(a))
		}, nil
	}
	return nil, fmt.Errorf("unknown field %q", field)
}

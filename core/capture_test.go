package core

import (
	"net/netip"
	"testing"
)

func TestPolicyExcluded(t *testing.T) {
	p := Policy{
		ExcludePorts: []uint16{22},
		ExcludeAddrs: []netip.Prefix{
			netip.MustParsePrefix("10.1.0.0/16"),
			netip.MustParsePrefix("::ffff:192.168.7.0/120"),
			netip.MustParsePrefix("2001:db8::/32"),
		},
	}
	ap := netip.MustParseAddrPort
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"10.9.0.1:40000", "10.9.0.2:80", false},
		{"10.9.0.1:40000", "10.9.0.2:22", true},
		{"10.9.0.1:22", "10.9.0.2:80", true},
		{"10.1.3.4:40000", "10.9.0.2:80", true},
		{"[::ffff:10.1.3.4]:40000", "10.9.0.2:80", true},
		{"192.168.7.9:40000", "10.9.0.2:80", true},
		{"192.168.8.9:40000", "10.9.0.2:80", false},
		{"127.0.0.1:40000", "10.9.0.2:80", true},
		{"[::1]:40000", "[2001:db9::1]:80", true},
		{"[2001:db8::5]:40000", "[2001:db9::1]:80", true},
		{"[2001:db7::5]:40000", "[2001:db9::1]:80", false},
	} {
		if got := p.Excluded(ap(c.a), ap(c.b)); got != c.want {
			t.Errorf("Excluded(%s, %s) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
	def := DefaultPolicy()
	if def.Excluded(ap("10.0.0.1:1"), ap("10.0.0.2:2")) {
		t.Error("the default policy excludes an ordinary connection")
	}
}

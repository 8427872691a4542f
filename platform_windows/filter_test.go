package platform_windows

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tcpinc.dev/tcpinc/core"
)

var update = flag.Bool("update", false, "rewrite the golden filter files")

// filterCases are the policies whose filters are golden files.
var filterCases = []struct {
	name        string
	policy      core.Policy
	part, parts int
}{
	{"default", core.DefaultPolicy(), 0, 1},
	{"ports", core.Policy{Enabled: true, ExcludePorts: []uint16{3389, 22, 22, 5985}}, 0, 1},
	{"addrs", core.Policy{Enabled: true, ExcludeAddrs: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.168.1.7/32"),
		netip.MustParsePrefix("0.0.0.0/1"),
		netip.MustParsePrefix("fd00::/8"),
		netip.MustParsePrefix("::ffff:172.16.0.0/108"),
		netip.MustParsePrefix("ff00::/8"),
	}}, 0, 1},
	{"no_ipv6", core.Policy{Enabled: true, ExcludeAddrs: []netip.Prefix{netip.MustParsePrefix("::/0")}}, 0, 1},
	{"workers_4_of_0", core.DefaultPolicy(), 0, 4},
	{"workers_4_of_1", core.DefaultPolicy(), 1, 4},
	{"workers_4_of_3", core.Policy{Enabled: true, ExcludePorts: []uint16{445}}, 3, 4},
}

func TestDivertFilterGolden(t *testing.T) {
	for _, c := range filterCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DivertFilter(&c.policy, c.part, c.parts)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "filters", c.name+".txt")
			if *update {
				if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestDivertFilterGolden -update)", err)
			}
			if got+"\n" != string(want) {
				t.Errorf("filter\n%s\nwant\n%s", got, want)
			}
			if _, err := parseFilter(got); err != nil {
				t.Errorf("the filter does not parse: %v", err)
			}
		})
	}
}

// randomPacket draws addresses near the prefixes under test and ports
// near the exclusions and partition bounds, so the edges are exercised.
func randomPacket(r *rand.Rand) evalPacket {
	addrs := []string{"10.0.0.0", "9.255.255.255", "10.255.255.255", "11.0.0.0", "192.168.1.7", "192.168.1.8",
		"127.0.0.1", "172.16.0.1", "172.15.255.255", "172.31.255.255", "172.32.0.0", "128.0.0.0", "127.255.255.255",
		"0.0.0.0", "255.255.255.255", "8.8.8.8"}
	addrs6 := []string{"fd00::1", "fcff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		"::1", "2001:db8::1", "ff02::1", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}
	ports := []uint16{0, 1, 22, 23, 445, 3389, 5985, 32767, 32768, 40959, 40960, 49151, 49152, 57343, 57344, 65534, 65535}
	pick := func(s []string) netip.Addr { return netip.MustParseAddr(s[r.IntN(len(s))]) }
	port := func() uint16 {
		if r.IntN(3) == 0 {
			return uint16(r.UintN(65536))
		}
		return ports[r.IntN(len(ports))]
	}
	p := evalPacket{tcp: r.IntN(10) != 0, sport: port(), dport: port()}
	if r.IntN(2) == 0 {
		p.src, p.dst = pick(addrs), pick(addrs)
	} else {
		p.src, p.dst = pick(addrs6), pick(addrs6)
	}
	p.loopback = p.src.IsLoopback() || p.dst.IsLoopback() || r.IntN(20) == 0
	return p
}

// TestDivertFilterSemantics evaluates the generated filters on many
// packets: a packet is captured iff it is TCP, not loopback, not excluded
// by the policy (core.Policy.Excluded is the reference), and exactly one
// worker captures it, the same one for both directions.
func TestDivertFilterSemantics(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range filterCases {
		// The reference: core.Policy.Excluded, with IPv4-mapped prefixes
		// taken as the IPv4 prefixes they denote (Excluded compares an
		// IPv4 address with them as IPv6 and never matches).
		ref := c.policy
		ref.ExcludeAddrs = nil
		for _, p := range c.policy.ExcludeAddrs {
			ref.ExcludeAddrs = append(ref.ExcludeAddrs, unmapPrefix(p))
		}
		for _, parts := range []int{1, 2, 3, 4, 7, 16} {
			filters := make([]evalNode, parts)
			for i := range parts {
				f, err := DivertFilter(&c.policy, i, parts)
				if err != nil {
					t.Fatal(err)
				}
				if filters[i], err = parseFilter(f); err != nil {
					t.Fatalf("%s %d/%d: %v\n%s", c.name, i, parts, err, f)
				}
			}
			for range 3000 {
				p := randomPacket(r)
				rev := p
				rev.src, rev.dst, rev.sport, rev.dport = p.dst, p.src, p.dport, p.sport
				want := p.tcp && !p.loopback &&
					!ref.Excluded(netip.AddrPortFrom(p.src, p.sport), netip.AddrPortFrom(p.dst, p.dport))
				n, nrev, who, whoRev := 0, 0, -1, -1
				for i, f := range filters {
					if f(&p) {
						n++
						who = i
					}
					if f(&rev) {
						nrev++
						whoRev = i
					}
				}
				if want && (n != 1 || nrev != 1 || who != whoRev) {
					t.Fatalf("%s, %d workers: %+v captured by %d workers (last %d), reverse by %d (last %d)", c.name, parts, p, n, who, nrev, whoRev)
				}
				if !want && (n != 0 || nrev != 0) {
					t.Fatalf("%s, %d workers: %+v must not be captured (by %d / %d workers)", c.name, parts, p, n, nrev)
				}
				if want {
					lo, hi := PortRange(who, parts)
					if m := max(p.sport, p.dport); m < lo || m > hi {
						t.Fatalf("worker %d/%d captured larger port %d outside %d–%d", who, parts, m, lo, hi)
					}
				}
			}
		}
	}
}

func TestPortRangeCoversAll(t *testing.T) {
	for parts := 1; parts <= MaxWorkers; parts++ {
		next := 0
		for i := range parts {
			lo, hi := PortRange(i, parts)
			if int(lo) != next || hi < lo {
				t.Fatalf("%d parts: part %d is %d–%d, want to start at %d", parts, i, lo, hi, next)
			}
			next = int(hi) + 1
		}
		if next != 65536 {
			t.Fatalf("%d parts end at %d", parts, next-1)
		}
	}
}

func TestDivertFilterErrors(t *testing.T) {
	p := core.DefaultPolicy()
	for _, c := range [][2]int{{0, 0}, {1, 1}, {-1, 2}, {0, MaxWorkers + 1}} {
		if _, err := DivertFilter(&p, c[0], c[1]); err == nil {
			t.Errorf("worker %d of %d accepted", c[0], c[1])
		}
	}
	bad := core.Policy{ExcludeAddrs: []netip.Prefix{{}}}
	if _, err := DivertFilter(&bad, 0, 1); err == nil {
		t.Error("invalid prefix accepted")
	}
	var many core.Policy
	for i := range 150 {
		many.ExcludePorts = append(many.ExcludePorts, uint16(1000+i))
	}
	_, err := DivertFilter(&many, 0, 1)
	if err == nil || !strings.Contains(err.Error(), "exclude fewer ports") {
		t.Errorf("150 excluded ports: %v", err)
	}
	many.ExcludePorts = many.ExcludePorts[:90]
	if _, err := DivertFilter(&many, 0, 1); err != nil {
		t.Errorf("90 excluded ports: %v", err)
	}
}

func TestWidens(t *testing.T) {
	pfx := func(s string) []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix(s)} }
	for i, c := range []struct {
		cur, next core.Policy
		want      bool
	}{
		{core.Policy{}, core.Policy{ExcludePorts: []uint16{22}}, false},
		{core.Policy{ExcludePorts: []uint16{22}}, core.Policy{}, true},
		{core.Policy{ExcludePorts: []uint16{22}}, core.Policy{ExcludePorts: []uint16{80, 22}}, false},
		{core.Policy{ExcludeAddrs: pfx("10.1.0.0/16")}, core.Policy{ExcludeAddrs: pfx("10.0.0.0/8")}, false},
		{core.Policy{ExcludeAddrs: pfx("10.0.0.0/8")}, core.Policy{ExcludeAddrs: pfx("10.1.0.0/16")}, true},
		{core.Policy{ExcludeAddrs: pfx("::ffff:10.1.0.0/112")}, core.Policy{ExcludeAddrs: pfx("10.0.0.0/8")}, false},
	} {
		if got := widens(&c.cur, &c.next); got != c.want {
			t.Errorf("case %d: widens = %v", i, got)
		}
	}
}

func ExampleDivertFilter() {
	p := core.Policy{Enabled: true, ExcludePorts: []uint16{3389}, ExcludeAddrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	f, _ := DivertFilter(&p, 0, 1)
	fmt.Println(f)
	// Output: tcp and !loopback and tcp.SrcPort != 3389 and tcp.DstPort != 3389 and (ipv6 or ((ip.SrcAddr < 10.0.0.0 or ip.SrcAddr > 10.255.255.255) and (ip.DstAddr < 10.0.0.0 or ip.DstAddr > 10.255.255.255)))
}

func FuzzFilterEval(f *testing.F) {
	for _, c := range filterCases {
		s, _ := DivertFilter(&c.policy, c.part, c.parts)
		f.Add(s)
	}
	f.Add("((tcp")
	f.Add("ip.SrcAddr < ::1")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseFilter(s)
		if err != nil {
			return
		}
		p := evalPacket{tcp: true, src: netip.MustParseAddr("10.0.0.1"), dst: netip.MustParseAddr("10.0.0.2"), sport: 1, dport: 2}
		n(&p)
	})
}

// TestWidenFilter: after policies open[0..] were captured by handles, the
// extra handle for p captures exactly what p captures and none of them
// did, so no packet reaches two handles.
func TestWidenFilter(t *testing.T) {
	pfx := func(s ...string) (out []netip.Prefix) {
		for _, x := range s {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	cases := []struct {
		open []core.Policy
		p    core.Policy
		none bool // nothing new to capture
	}{
		{[]core.Policy{{ExcludePorts: []uint16{22, 3389}}}, core.Policy{ExcludePorts: []uint16{22}}, false},
		{[]core.Policy{{ExcludeAddrs: pfx("10.0.0.0/8", "fd00::/8")}}, core.Policy{ExcludeAddrs: pfx("10.1.0.0/16")}, false},
		{[]core.Policy{{ExcludePorts: []uint16{445}, ExcludeAddrs: pfx("192.168.1.7/32", "::/0")}, {ExcludePorts: []uint16{445}}}, core.DefaultPolicy(), false},
		{[]core.Policy{{ExcludeAddrs: pfx("0.0.0.0/0")}}, core.Policy{}, false},
		{[]core.Policy{{ExcludePorts: []uint16{22}}, {}}, core.Policy{}, true},
	}
	r := rand.New(rand.NewPCG(5, 6))
	for i, c := range cases {
		f, err := WidenFilter(&c.p, c.open)
		if err != nil {
			t.Fatal(err)
		}
		if c.none {
			if f != "" {
				t.Errorf("case %d: %q, want none", i, f)
			}
			continue
		}
		extra, err := parseFilter(f)
		if err != nil {
			t.Fatalf("case %d: %v\n%s", i, err, f)
		}
		var olds []evalNode
		for _, o := range c.open {
			s, _ := DivertFilter(&o, 0, 1)
			n, err := parseFilter(s)
			if err != nil {
				t.Fatal(err)
			}
			olds = append(olds, n)
		}
		for range 4000 {
			pk := randomPacket(r)
			ap, bp := netip.AddrPortFrom(pk.src, pk.sport), netip.AddrPortFrom(pk.dst, pk.dport)
			captured := pk.tcp && !pk.loopback
			wantNew := captured && !c.p.Excluded(ap, bp)
			oldAny := false
			for j, o := range olds {
				if o(&pk) {
					if extra(&pk) {
						t.Fatalf("case %d: %+v matches open handle %d and the extra one", i, pk, j)
					}
					oldAny = true
				}
			}
			if got := extra(&pk); got != (wantNew && !oldAny) {
				t.Fatalf("case %d: %+v: extra handle %v, want %v\n%s", i, pk, got, wantNew && !oldAny, f)
			}
		}
	}
}

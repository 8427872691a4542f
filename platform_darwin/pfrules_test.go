package platform_darwin

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tcpinc.dev/tcpinc/core"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the generated text (go test -update rewrites it after review)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestAnchorTextGolden(t *testing.T) {
	def := Rules{ProxyPort: 7391, Group: DefaultGroup, Mark: DefaultMark, Policy: core.DefaultPolicy()}
	golden(t, "anchor-default.pf", def.AnchorText())

	excl := def
	excl.Policy.ExcludePorts = []uint16{22, 5432}
	excl.Policy.ExcludeAddrs = []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("::ffff:192.0.2.0/120"), // IPv4-mapped: written as IPv4
	}
	excl.Mark = DefaultMark | 2 // ECN bits in the configured mark are ignored
	golden(t, "anchor-exclusions.pf", excl.AnchorText())

	off := def
	off.Policy.Enabled = false
	golden(t, "anchor-disabled.pf", off.AnchorText())
}

// TestAnchorTextProperties checks what the golden files must keep saying,
// so that an -update cannot silently drop a safety property.
func TestAnchorTextProperties(t *testing.T) {
	r := Rules{ProxyPort: 7391, Group: DefaultGroup, Mark: DefaultMark, Policy: core.DefaultPolicy()}
	txt := r.AnchorText()
	lines := strings.Split(txt, "\n")
	idx := func(sub string) int {
		for i, l := range lines {
			if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
				return i
			}
		}
		t.Fatalf("no rule containing %q in\n%s", sub, txt)
		return -1
	}
	for _, l := range lines {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		switch f[0] {
		case "pass", "block":
			if !strings.Contains(l, " quick ") {
				t.Errorf("filter rule is not quick: %s", l)
			}
		case "rdr", "table":
		default:
			t.Errorf("unexpected rule kind: %s", l)
		}
		if strings.Contains(l, "group") && strings.Contains(l, "keep state") {
			t.Errorf("the service's own sockets must not get state (it would pin the route): %s", l)
		}
	}
	// Own sockets and exclusions come before the capturing route-to rule.
	capture := idx("route-to lo0 inet proto tcp from <tcpinc_local> to any flags S/SA")
	group := fmt.Sprintf("group %d", DefaultGroup)
	for _, before := range []string{group + " no state", "to <tcpinc_exclude>", "tos 0x54 no state"} {
		if i := idx(before); i > capture {
			t.Errorf("%q comes after the capture rule", before)
		}
	}
	for _, tos := range []string{"0x54", "0x55", "0x56", "0x57"} {
		idx("port 7391 tos " + tos)
		idx(group + " tos " + tos + " no state")
	}
	if !strings.Contains(txt, "-> ::1 port 7391") || !strings.Contains(txt, "-> 127.0.0.1 port 7391") {
		t.Error("rdr for IPv4 and IPv6 missing")
	}
}

// macOS's default /etc/pf.conf as pfctl -sn and -sr print it.
const (
	appleNAT = `nat-anchor "com.apple/*" all
rdr-anchor "com.apple/*" all
`
	appleFilter = `scrub-anchor "com.apple/*" all fragment reassemble
anchor "com.apple/*" all
`
)

func TestHookMain(t *testing.T) {
	nat, filter := HookMain(appleNAT, appleFilter)
	golden(t, "main-hooked.nat", nat)
	golden(t, "main-hooked.filter", filter)
	if !Hooked(nat, filter) {
		t.Error("Hooked is false after HookMain")
	}
	if Hooked(appleNAT, appleFilter) {
		t.Error("Hooked is true for the untouched ruleset")
	}
	// Our hooks come before Apple's anchors.
	if strings.Index(nat, `"tcpinc"`) > strings.Index(nat, `rdr-anchor "com.apple/*"`) {
		t.Error("rdr hook after Apple's rdr-anchor")
	}
	if strings.Index(filter, `"tcpinc"`) > strings.Index(filter, "\nanchor \"com.apple/*\"") ||
		strings.Index(filter, `"tcpinc"`) < strings.Index(filter, "scrub-anchor") {
		t.Error("filter hook not between scrub and Apple's anchor")
	}

	// Idempotent: hooking a hooked ruleset (a crashed run) changes nothing,
	// also in the form pfctl prints the hooks back.
	n2, f2 := HookMain(nat, filter)
	if n2 != nat || f2 != filter {
		t.Errorf("HookMain is not idempotent:\n%s%s", n2, f2)
	}
	printed := "rdr-anchor \"tcpinc\" all\n" + appleNAT
	n3, _ := HookMain(printed, appleFilter)
	if n3 != nat {
		t.Errorf("re-hooking pfctl's printout: got\n%s", n3)
	}

	// Unhook restores the original exactly.
	un, uf := UnhookMain(nat, filter)
	if un != appleNAT || uf != appleFilter {
		t.Errorf("UnhookMain did not restore the ruleset:\n%s%s", un, uf)
	}
}

func TestHookMainKeepsOtherRules(t *testing.T) {
	// A user's ruleset with their own rules, another product's anchor and
	// an anchor whose name merely contains ours.
	nat := "nat on en0 inet from 10.0.0.0/24 to any -> (en0) round-robin\nrdr-anchor \"com.apple/*\" all\nrdr-anchor \"tcpinc-other\" all\n"
	filter := "scrub in all fragment reassemble\nblock drop in all\npass out all flags S/SA keep state\nanchor \"com.example.fw\" all\n"
	n, f := HookMain(nat, filter)
	golden(t, "main-user-hooked.nat", n)
	golden(t, "main-user-hooked.filter", f)
	un, uf := UnhookMain(n, f)
	if un != nat || uf != filter {
		t.Errorf("user rules not preserved:\n%s%s", un, uf)
	}
	// Apple's dummynet rules, should pfctl print them with the filter
	// rules, stay ahead of the hook (pfctl enforces the order).
	dn := "scrub-anchor \"com.apple/*\" all fragment reassemble\ndummynet-anchor \"com.apple/*\" all\nanchor \"com.apple/*\" all\n"
	_, f = HookMain("", dn)
	if want := "scrub-anchor \"com.apple/*\" all fragment reassemble\ndummynet-anchor \"com.apple/*\" all\n" + filterHook + "\nanchor \"com.apple/*\" all\n"; f != want {
		t.Errorf("dummynet: got\n%s", f)
	}
	// Only scrub rules: the hook goes last.
	if _, f = HookMain("", "scrub in all\n"); f != "scrub in all\n"+filterHook+"\n" {
		t.Errorf("scrub only: got\n%s", f)
	}
	// Empty main ruleset (pf enabled by another tool with nothing loaded).
	n, f = HookMain("", "")
	if n != natHook+"\n" || f != filterHook+"\n" {
		t.Errorf("hooks into an empty ruleset: %q %q", n, f)
	}
}

func TestForeignAnchors(t *testing.T) {
	rules := appleNAT + appleFilter + "anchor \"tcpinc\" all\nanchor \"com.example.vpn/*\" all\nnat-anchor \"murus.nat\" all\npass out all\n"
	got := foreignAnchors(rules)
	if strings.Join(got, ",") != "com.example.vpn/*,murus.nat" {
		t.Errorf("foreignAnchors = %q", got)
	}
}

// FuzzHookMain: HookMain reads pfctl's printout of the main ruleset.
// Whatever pfctl prints, the hooks end up present, hooking is idempotent,
// and unhooking gives back every line that was not a hook, in order.
func FuzzHookMain(f *testing.F) {
	f.Add(appleNAT, appleFilter)
	f.Add("", "")
	f.Add("rdr-anchor \"tcpinc\" all\r\n\n", "anchor \"tcpinc\"\nanchor \"tcpinc\" all extra\n")
	f.Fuzz(func(t *testing.T, nat, filter string) {
		hn, hf := HookMain(nat, filter)
		if !Hooked(hn, hf) {
			t.Fatalf("not hooked:\n%q\n%q", hn, hf)
		}
		if n2, f2 := HookMain(hn, hf); n2 != hn || f2 != hf {
			t.Fatal("HookMain not idempotent")
		}
		un, uf := UnhookMain(hn, hf)
		wn, wf := UnhookMain(nat, filter)
		if un != wn || uf != wf {
			t.Fatalf("unhook(hook(x)) != unhook(x):\n%q\n%q", un, wn)
		}
	})
}

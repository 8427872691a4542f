package platform_windows

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/windows"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/packet"
)

// TestFiltersWithRealWinDivert checks the generated filters with
// WinDivert's own filter compiler and evaluator, which run in
// WinDivert.dll without the driver (so under wine too). It needs an
// official WinDivert.dll, which the repository does not carry: set
// TCPINC_WINDIVERT_DLL to its path (make windivert-wine-test does when
// WINDIVERT_DIR names the release files, as for make msi). Every filter
// must compile, and on random packets WinDivert's verdict must equal the
// test evaluator's, which the other filter tests rely on.
func TestFiltersWithRealWinDivert(t *testing.T) {
	path := os.Getenv("TCPINC_WINDIVERT_DLL")
	if path == "" {
		t.Skip("TCPINC_WINDIVERT_DLL is not set (the path of an official WinDivert.dll)")
	}
	mod, err := windows.LoadDLL(path)
	if err != nil {
		t.Fatalf("loading %s: %v", path, err)
	}
	compile := mod.MustFindProc("WinDivertHelperCompileFilter")
	eval := mod.MustFindProc("WinDivertHelperEvalFilter")

	var filters []string
	for _, c := range filterCases {
		for _, parts := range []int{1, 2, 4, 7} {
			for i := range parts {
				f, err := DivertFilter(&c.policy, i, parts)
				if err != nil {
					t.Fatal(err)
				}
				filters = append(filters, f)
			}
		}
	}
	for i := 1; i < len(filterCases); i++ {
		open := []core.Policy{filterCases[i].policy, filterCases[i-1].policy}
		if f, err := WidenFilter(&filterCases[0].policy, open); err != nil {
			t.Fatal(err)
		} else if f != "" {
			filters = append(filters, f)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	checked := 0
	for _, f := range filters {
		cf := append([]byte(f), 0)
		var errStr *byte
		var errPos uint32
		ok, _, _ := compile.Call(uintptr(unsafe.Pointer(&cf[0])), uintptr(LayerNetwork), 0, 0,
			uintptr(unsafe.Pointer(&errStr)), uintptr(unsafe.Pointer(&errPos)))
		if ok == 0 {
			t.Errorf("WinDivert rejects %q at %d: %s", f, errPos, windows.BytePtrToString(errStr))
			continue
		}
		ours, err := parseFilter(f)
		if err != nil {
			t.Fatal(err)
		}
		for range 400 {
			p := randomPacket(r)
			p.outbound = r.IntN(2) == 0
			raw, a := realPacket(t, &p)
			got, _, _ := eval.Call(uintptr(unsafe.Pointer(&cf[0])), uintptr(unsafe.Pointer(&raw[0])), uintptr(len(raw)), uintptr(unsafe.Pointer(&a)))
			if (got != 0) != ours(&p) {
				t.Fatalf("%q on %+v: WinDivert says %v, the test evaluator %v", f, p, got != 0, !(got != 0))
			}
			checked++
		}
	}
	t.Logf("%d filters compiled; %d verdicts agree", len(filters), checked)
}

// realPacket builds the packet an evalPacket describes, and its address.
func realPacket(t *testing.T, p *evalPacket) ([]byte, Address) {
	raw, err := packet.AppendTCP(nil, packet.Segment{Src: netip.AddrPortFrom(p.src, p.sport), Dst: netip.AddrPortFrom(p.dst, p.dport),
		Seq: 1, Flags: packet.SYN, Window: 1024})
	if err != nil {
		t.Fatal(err)
	}
	var a Address
	a.SetOutbound(p.outbound)
	a.SetLoopback(p.loopback)
	a.SetIPv6(p.src.Is6())
	if !p.tcp {
		// Not TCP: the same bytes declared UDP.
		if p.src.Is4() {
			raw[9] = 17
		} else {
			raw[6] = 17
		}
	}
	return raw, a
}

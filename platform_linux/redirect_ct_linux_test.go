package platform_linux

import (
	"encoding/hex"
	"net/netip"
	"testing"
)

// ctNewV4 is the attributes of a conntrack answer (after struct
// nfgenmsg) for a loopback connection 127.0.0.1:52270 → 127.0.0.1:38939,
// as this kernel sent it.
const ctNewV4 = "3400018014000180080001007f000001080002007f0000011c000280050001000600000006000200cc2e000006000300981b0000" +
	"3400028014000180080001007f000001080002007f0000011c000280050001000600000006000200981b000006000300cc2e0000" +
	"080003000000000e080008000000000008000c006ec3803008000b00000000020800070000069780300004802c0001800500010003000000050002000a000000050003000a00000006000400230000000600050023000000"

func TestParseOrigTuple(t *testing.T) {
	b, _ := hex.DecodeString(ctNewV4)
	src, dst, err := parseOrigTuple(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddrPort("127.0.0.1:52270"); src != want {
		t.Errorf("source %v, want %v", src, want)
	}
	if want := netip.MustParseAddrPort("127.0.0.1:38939"); dst != want {
		t.Errorf("destination %v, want %v", dst, want)
	}
	for _, n := range []int{0, 4, 30, 51} {
		if _, _, err := parseOrigTuple(b[:n]); err == nil {
			t.Errorf("%d bytes of the answer parsed without an error", n)
		}
	}
}

// FuzzParseOrigTuple: a conntrack answer never crashes the parser, and
// what it accepts has both addresses.
func FuzzParseOrigTuple(f *testing.F) {
	b, _ := hex.DecodeString(ctNewV4)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		src, dst, err := parseOrigTuple(b)
		if err == nil && (!src.Addr().IsValid() || !dst.Addr().IsValid()) {
			t.Fatalf("accepted an answer without addresses: %v → %v", src, dst)
		}
	})
}

package platform_darwin

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"
)

// cNatlook mirrors struct pfioc_natlook of xnu's bsd/net/pfvar.h field by
// field with Go's C-compatible layout rules (union pf_state_xport holds a
// u_int32_t spi, so it is 4 bytes with 4-byte alignment; pf_addr is a
// 16-byte union of in6_addr and u_int32_t[4]). The constants the request
// encoder uses must agree with it.
type cNatlook struct {
	saddr, daddr, rsaddr, rdaddr [4]uint32 // struct pf_addr
	sxport, dxport               uint32    // union pf_state_xport
	rsxport, rdxport             uint32
	af                           uint8 // sa_family_t
	proto                        uint8
	protoVariant                 uint8
	direction                    uint8
}

func TestNatlookLayout(t *testing.T) {
	var c cNatlook
	checks := []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof", unsafe.Sizeof(c), natlookSize},
		{"saddr", unsafe.Offsetof(c.saddr), nlSaddr},
		{"daddr", unsafe.Offsetof(c.daddr), nlDaddr},
		{"rsaddr", unsafe.Offsetof(c.rsaddr), nlRsaddr},
		{"rdaddr", unsafe.Offsetof(c.rdaddr), nlRdaddr},
		{"sxport", unsafe.Offsetof(c.sxport), nlSxport},
		{"dxport", unsafe.Offsetof(c.dxport), nlDxport},
		{"rsxport", unsafe.Offsetof(c.rsxport), nlRsxport},
		{"rdxport", unsafe.Offsetof(c.rdxport), nlRdxport},
		{"af", unsafe.Offsetof(c.af), nlAF},
		{"proto", unsafe.Offsetof(c.proto), nlProto},
		{"proto_variant", unsafe.Offsetof(c.protoVariant), nlVariant},
		{"direction", unsafe.Offsetof(c.direction), nlDirection},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s: C layout %d, encoder %d", ck.name, ck.got, ck.want)
		}
	}
	// _IOWR('D', 23, struct pfioc_natlook) with sizeof 84.
	if diocNatlook != 0xc0544417 {
		t.Errorf("DIOCNATLOOK = %#x, want 0xc0544417", uint32(diocNatlook))
	}
	if pfIn != 1 || pfOut != 2 {
		t.Error("enum { PF_INOUT, PF_IN, PF_OUT } changed")
	}
	if afInet != 2 || afInet6 != 30 {
		t.Error("Darwin address families changed")
	}
}

func TestNatlookEncode(t *testing.T) {
	app := netip.MustParseAddrPort("192.168.1.20:51000")
	proxy := netip.MustParseAddrPort("127.0.0.1:7391")
	r, err := newNatlook(app, proxy)
	if err != nil {
		t.Fatal(err)
	}
	if [4]byte(r[nlSaddr:nlSaddr+4]) != app.Addr().As4() || [4]byte(r[nlDaddr:nlDaddr+4]) != proxy.Addr().As4() {
		t.Error("addresses not in the first 4 bytes of pf_addr")
	}
	// Ports in network order in the first two bytes of the xport union.
	if r[nlSxport] != 51000>>8 || r[nlSxport+1] != 51000&0xff || r[nlSxport+2] != 0 {
		t.Errorf("sxport bytes % x", r[nlSxport:nlSxport+4])
	}
	if binary.BigEndian.Uint16(r[nlDxport:]) != 7391 {
		t.Error("dxport")
	}
	if r[nlAF] != afInet || r[nlProto] != ipProtoTCP || r[nlDirection] != pfOut || r[nlVariant] != 0 {
		t.Errorf("af/proto/variant/direction % x", r[nlAF:])
	}

	// The kernel's answer: rdaddr:rdxport is the original destination.
	orig := netip.MustParseAddrPort("93.184.215.14:443")
	copy(r[nlRdaddr:], orig.Addr().AsSlice())
	binary.BigEndian.PutUint16(r[nlRdxport:], orig.Port())
	got, err := r.origDst()
	if err != nil || got != orig {
		t.Fatalf("origDst = %v, %v", got, err)
	}

	// IPv6, and an IPv4-mapped accepted address (dual-stack listener).
	app6 := netip.MustParseAddrPort("[2001:db8::20]:51000")
	r6, err := newNatlook(app6, netip.MustParseAddrPort("[::1]:7391"))
	if err != nil || r6[nlAF] != afInet6 || [16]byte(r6[nlSaddr:nlSaddr+16]) != app6.Addr().As16() {
		t.Fatalf("IPv6 request: %v % x", err, r6[:16])
	}
	orig6 := netip.MustParseAddrPort("[2606:2800:21f::1]:80")
	copy(r6[nlRdaddr:], orig6.Addr().AsSlice())
	binary.BigEndian.PutUint16(r6[nlRdxport:], 80)
	if got, err := r6.origDst(); err != nil || got != orig6 {
		t.Fatalf("IPv6 origDst = %v, %v", got, err)
	}
	mapped := netip.AddrPortFrom(netip.AddrFrom16(app.Addr().As16()), app.Port())
	if rm, err := newNatlook(mapped, proxy); err != nil || rm != func() natlookRequest { q, _ := newNatlook(app, proxy); return q }() {
		t.Error("IPv4-mapped source not unmapped")
	}
	if _, err := newNatlook(app6, proxy); err == nil {
		t.Error("mixed families accepted")
	}

	// No answer: the kernel leaves rdaddr zero (it answers ENOENT too).
	empty, _ := newNatlook(app, proxy)
	if _, err := empty.origDst(); err == nil {
		t.Error("empty answer accepted")
	}
	empty[nlAF] = 99
	if _, err := empty.origDst(); err == nil {
		t.Error("unknown family accepted")
	}
}

// FuzzNatlookAnswer: whatever the kernel writes back, reading the answer
// never panics and never yields an unspecified destination.
func FuzzNatlookAnswer(f *testing.F) {
	r, _ := newNatlook(netip.MustParseAddrPort("192.168.1.20:51000"), netip.MustParseAddrPort("127.0.0.1:7391"))
	copy(r[nlRdaddr:], []byte{93, 184, 215, 14})
	r[nlRdxport], r[nlRdxport+1] = 1, 187
	f.Add(r[:])
	f.Add(make([]byte, natlookSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		var q natlookRequest
		copy(q[:], b)
		ap, err := q.origDst()
		if err == nil && (!ap.Addr().IsValid() || ap.Addr().IsUnspecified() || ap.Port() == 0) {
			t.Fatalf("accepted %v", ap)
		}
	})
}

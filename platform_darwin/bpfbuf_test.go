package platform_darwin

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"tcpinc.dev/tcpinc/core/packet"
)

// bpfRecord appends one record the way xnu's bpf_catchpacket lays it out:
// header (hdrlen bytes, 18 on Darwin), data, padding to 4.
func bpfRecord(b []byte, data []byte, datalen int, hdrlen int) []byte {
	h := make([]byte, hdrlen)
	binary.LittleEndian.PutUint32(h[0:], 1700000000) // tv_sec
	binary.LittleEndian.PutUint32(h[4:], 123456)     // tv_usec
	binary.LittleEndian.PutUint32(h[bpfCaplenOff:], uint32(len(data)))
	binary.LittleEndian.PutUint32(h[bpfDatalenOff:], uint32(datalen))
	binary.LittleEndian.PutUint16(h[bpfHdrlenOff:], uint16(hdrlen))
	b = append(b, h...)
	b = append(b, data...)
	for len(b)%bpfAlignment != 0 {
		b = append(b, 0)
	}
	return b
}

// TestBPFHeaderLayout pins the struct bpf_hdr offsets against x/sys/unix's
// Darwin definition (generated from the SDK headers): the fields the
// parser reads must sit where the kernel writes them.
func TestBPFHeaderLayout(t *testing.T) {
	// unix.BpfHdr is only defined for the BSDs; its Darwin size is
	// recorded here from ztypes_darwin_{amd64,arm64}.go (SizeofBpfHdr
	// 0x14: 18 bytes of fields plus 2 of padding).
	const darwinSizeofBpfHdr = 0x14
	if bpfHdrMinLen != 18 || bpfWordAlign(bpfHdrMinLen) != darwinSizeofBpfHdr {
		t.Fatalf("bpf_hdr: %d bytes, aligned %d, want 18 and %d", bpfHdrMinLen, bpfWordAlign(bpfHdrMinLen), darwinSizeofBpfHdr)
	}
	if bpfCaplenOff != 8 || bpfDatalenOff != 12 || bpfHdrlenOff != 16 {
		t.Fatal("bpf_hdr field offsets changed")
	}
	// DLT numbers from the SDK (net/bpf.h), as in x/sys/unix for Darwin.
	if DLTNull != 0 || DLTEN10MB != 1 || DLTRaw != 12 {
		t.Fatal("DLT constants changed")
	}
}

func TestBPFRecords(t *testing.T) {
	syn := seg(t, cli4, srv4, packet.SYN, DefaultMark, nil)
	ack := seg(t, cli6, srv6, packet.ACK, DefaultMark, []byte("odd-length"))
	var buf []byte
	buf = bpfRecord(buf, frame(DLTNull, syn), len(syn)+4, 18)
	buf = bpfRecord(buf, frame(DLTNull, ack)[:30], len(ack)+4, 18) // cut by the snap length
	buf = bpfRecord(buf, frame(DLTNull, ack), len(ack)+4, 20)      // padded header
	r := NewBPFRecords(buf)
	var got [][]byte
	var trunc []bool
	for {
		d, tr, ok := r.Next()
		if !ok {
			break
		}
		got = append(got, d)
		trunc = append(trunc, tr)
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	if len(got) != 3 {
		t.Fatalf("%d records", len(got))
	}
	if !bytes.Equal(StripLink(DLTNull, got[0]), syn) || trunc[0] {
		t.Error("record 0")
	}
	if len(got[1]) != 30 || !trunc[1] {
		t.Error("record 1 not reported truncated")
	}
	if !bytes.Equal(StripLink(DLTNull, got[2]), ack) || trunc[2] {
		t.Error("record 2")
	}
	// Records alias the buffer and are capped: appending cannot overwrite
	// the next record.
	if cap(got[0]) != len(got[0]) {
		t.Error("record not capped")
	}
}

func TestBPFRecordsMalformed(t *testing.T) {
	good := bpfRecord(nil, []byte{0x45, 0, 0, 20}, 4, 18)
	for name, b := range map[string][]byte{
		"short header": good[:10],
		"hdrlen small": func() []byte { b := bytes.Clone(good); b[bpfHdrlenOff] = 4; return b }(),
		"hdrlen huge":  func() []byte { b := bytes.Clone(good); b[bpfHdrlenOff] = 200; return b }(),
		"caplen huge":  func() []byte { b := bytes.Clone(good); b[bpfCaplenOff+1] = 1; return b }(),
	} {
		r := NewBPFRecords(b)
		if _, _, ok := r.Next(); ok || r.Err() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestStripLink(t *testing.T) {
	ip4 := seg(t, cli4, srv4, packet.SYN, 0, nil)
	ip6 := seg(t, cli6, srv6, packet.SYN, 0, nil)
	for _, dlt := range []int{DLTNull, DLTEN10MB, DLTRaw} {
		for _, ip := range [][]byte{ip4, ip6} {
			if got := StripLink(dlt, frame(dlt, ip)); !bytes.Equal(got, ip) {
				t.Errorf("dlt %d: got %x", dlt, got)
			}
		}
	}
	eth := frame(DLTEN10MB, ip4)
	eth[12], eth[13] = 0x86, 0xdd // says IPv6, holds IPv4
	if StripLink(DLTEN10MB, eth) != nil {
		t.Error("ethertype/version mismatch accepted")
	}
	if StripLink(DLTNull, []byte{2, 0, 0, 0}) != nil || StripLink(105, frame(DLTRaw, ip4)) != nil {
		t.Error("short frame or unknown DLT accepted")
	}
}

// FuzzBPFRecords (seeds in testdata/fuzz/FuzzBPFRecords): arbitrary read buffers never panic, every record lies
// inside the buffer, and the iteration always ends.
func FuzzBPFRecords(f *testing.F) {
	f.Add(bpfRecord(nil, []byte{0x45}, 1, 18))
	f.Fuzz(func(t *testing.T, buf []byte) {
		r := NewBPFRecords(buf)
		for n := 0; ; n++ {
			d, _, ok := r.Next()
			if !ok {
				break
			}
			if n > len(buf) {
				t.Fatal("more records than bytes")
			}
			for _, dlt := range []int{DLTNull, DLTEN10MB, DLTRaw} {
				if ip := StripLink(dlt, d); ip != nil {
					_, _ = packet.Parse(ip)
				}
			}
		}
	})
}

// TestFuzzSeeds writes the seed corpus of FuzzBPFRecords with -update:
// real records of a reflected SYN and a snooped SYN-ACK, and a buffer cut
// in the middle of a record.
func TestFuzzSeeds(t *testing.T) {
	if !*update {
		t.Skip("seeds are rewritten with -update")
	}
	syn := frame(DLTNull, seg(t, cli4, srv4, packet.SYN, DefaultMark, nil))
	synack := frame(DLTEN10MB, seg(t, srv6, cli6, packet.SYN|packet.ACK, 0, nil))
	two := bpfRecord(bpfRecord(nil, syn, len(syn), 18), synack, len(synack), 18)
	writeSeed(t, "FuzzBPFRecords", "two-records", two)
	writeSeed(t, "FuzzBPFRecords", "cut", two[:len(two)-7])
	writeSeed(t, "FuzzBPFRecords", "snapped", bpfRecord(nil, synack[:40], len(synack), 18))
	writeSeedValues(t, "FuzzHookMain", "apple-default", appleNAT, appleFilter)
	writeSeedValues(t, "FuzzHookMain", "user-rules",
		"nat on en0 inet from 10.0.0.0/24 to any -> (en0)\nrdr-anchor \"tcpinc\" all\n",
		"scrub in all\ndummynet-anchor \"com.apple/*\" all\nblock drop in all\nanchor \"tcpinc\"\n")
	ans, _ := newNatlook(cli6, netip.MustParseAddrPort("[::1]:7391"))
	copy(ans[nlRdaddr:], srv6.Addr().AsSlice())
	ans[nlRdxport+1] = 80
	writeSeed(t, "FuzzNatlookAnswer", "ipv6", ans[:])
	writeSeed(t, "FuzzParsePlist", "nested", []byte("<plist><dict><key>A</key><array><string>x</string><integer>-3</integer><false/></array></dict></plist>"))
	writeSeed(t, "FuzzParsePlist", "unclosed", []byte("<plist><dict><key>A</key><true/>"))
}

func writeSeed(t *testing.T, fuzz, name string, b []byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", fuzz)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeSeedValues(t *testing.T, fuzz, name string, vals ...string) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", fuzz)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := "go test fuzz v1\n"
	for _, v := range vals {
		body += fmt.Sprintf("string(%q)\n", v)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

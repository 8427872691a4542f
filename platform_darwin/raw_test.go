package platform_darwin

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/packet"
)

// loopedCopy makes a segment look like lo0's BPF shows it: the TCP
// checksum is only the partial (pseudo-header) sum of checksum offload.
func loopedCopy(t *testing.T, ip []byte) packet.Packet {
	t.Helper()
	b := make([]byte, len(ip), len(ip)+40)
	copy(b, ip)
	p, err := packet.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	p.TCP().SetChecksum(0x1234)
	return p
}

func TestReflectEditIPv4(t *testing.T) {
	for _, ecn := range []uint8{0, 2} {
		p := loopedCopy(t, seg(t, cli4, srv4, packet.SYN, DefaultMark|ecn, nil))
		if !hasMark(&p, DefaultMark) {
			t.Fatal("mark not seen")
		}
		// The hook adds the ENO option (here directly, as a stand-in).
		opt, err := eno.AppendOption(nil, eno.Suboption{Byte: 0x20})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.InsertOption(eno.OptionKind, opt[2:]); err != nil {
			t.Fatal(err)
		}
		clearMark(&p)
		out := bytes.Clone(p.Bytes())

		// Parse back: valid checksums, mark gone, ECN kept, ENO present.
		q, err := packet.Parse(out)
		if err != nil {
			t.Fatal(err)
		}
		if q.IPv4().TOS() != ecn || hasMark(&q, DefaultMark) {
			t.Errorf("TOS %#x after clearing", q.IPv4().TOS())
		}
		if !q.IPv4().VerifyChecksum() || q.TCP().Checksum() != q.TCPChecksum() {
			t.Error("checksums not valid after the edit")
		}
		o, err := eno.ScanOptions(q.Options())
		if err != nil || o.NumENO != 1 {
			t.Errorf("ENO option not found: %+v %v", o, err)
		}

		// Darwin's raw socket wants ip_len and ip_off in host order.
		raw := bytes.Clone(out)
		if err := darwinRawIPv4(raw); err != nil {
			t.Fatal(err)
		}
		if binary.LittleEndian.Uint16(raw[2:]) != uint16(len(out)) {
			t.Errorf("ip_len % x, want %d little-endian", raw[2:4], len(out))
		}
		if binary.LittleEndian.Uint16(raw[6:]) != 0x4000 { // DF, as AppendTCP sets it
			t.Errorf("ip_off % x, want DF little-endian", raw[6:8])
		}
		if !bytes.Equal(raw[8:], out[8:]) || !bytes.Equal(raw[:2], out[:2]) || !bytes.Equal(raw[4:6], out[4:6]) {
			t.Error("darwinRawIPv4 changed more than ip_len and ip_off")
		}
	}
	if err := darwinRawIPv4([]byte{0x60, 0, 0}); err == nil {
		t.Error("non-IPv4 accepted")
	}
}

func TestReflectEditIPv6(t *testing.T) {
	p := loopedCopy(t, seg(t, cli6, srv6, packet.ACK|packet.PSH, DefaultMark|1, []byte("Init1 bytes")))
	if err := p.InsertOption(eno.OptionKind, nil); err != nil { // non-SYN ENO: 45 02
		t.Fatal(err)
	}
	clearMark(&p)
	r, err := splitIPv6(&p)
	if err != nil {
		t.Fatal(err)
	}
	if r.src != cli6.Addr() || r.dst != srv6.Addr() || r.tclass != 1 || r.hopLimit != 64 {
		t.Errorf("raw6 %+v", r)
	}
	// The segment the raw socket sends, with the header the kernel will
	// write, checksums correctly.
	rebuilt, err := packet.AppendTCP(nil, packet.Segment{Src: cli6, Dst: srv6})
	if err != nil {
		t.Fatal(err)
	}
	hdr := rebuilt[:packet.IPv6HeaderLen]
	full := append(bytes.Clone(hdr), r.seg...)
	binary.BigEndian.PutUint16(full[4:], uint16(len(r.seg)))
	q, err := packet.Parse(full)
	if err != nil {
		t.Fatal(err)
	}
	if q.TCP().Checksum() != q.TCPChecksum() {
		t.Error("IPv6 TCP checksum not final")
	}
	if string(q.Payload()) != "Init1 bytes" {
		t.Errorf("payload %q", q.Payload())
	}
	v4 := loopedCopy(t, seg(t, cli4, srv4, packet.SYN, 0, nil))
	if _, err := splitIPv6(&v4); err == nil {
		t.Error("IPv4 accepted")
	}
}

func TestDedup(t *testing.T) {
	var d dedup
	now := time.Unix(1000, 0)
	p := loopedCopy(t, seg(t, cli4, srv4, packet.SYN, DefaultMark, nil))
	if d.seen(&p, now) {
		t.Fatal("first copy reported as seen")
	}
	if !d.seen(&p, now.Add(time.Millisecond)) {
		t.Fatal("second copy within the window not caught")
	}
	if d.seen(&p, now.Add(time.Second)) {
		t.Fatal("retransmission a second later dropped")
	}
	q := loopedCopy(t, seg(t, cli4, srv4, packet.ACK, DefaultMark, nil))
	if d.seen(&q, now.Add(time.Second)) {
		t.Fatal("different segment reported as seen")
	}
}

package packet

import (
	"fmt"
	"testing"
)

// BenchmarkParseRewriteChecksum1500 is the divert engine's per-packet work
// on a full-sized data segment: parse, map seq/ack, overwrite the payload
// in place, recompute the TCP checksum.
func BenchmarkParseRewriteChecksum1500(b *testing.B) {
	pkt := mustBuild(b, dataV4(1500-20-32))
	if len(pkt) != 1500 {
		b.Fatalf("len %d", len(pkt))
	}
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p, err := Parse(pkt)
		if err != nil {
			b.Fatal(err)
		}
		tcp := p.TCP()
		tcp.SetSeq(tcp.Seq() + 1000)
		tcp.SetAck(tcp.Ack() - 1000)
		pay := p.Payload()
		pay[0] = byte(i)
		pay[len(pay)-1] = byte(i)
		p.UpdateTCPChecksum()
	}
}

func BenchmarkOnesSum(b *testing.B) {
	for _, n := range []int{20, 40, 64, 1500, 9000, 65535} {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				OnesSum(buf, 0)
			}
		})
	}
}

// BenchmarkOnesSumReference is the naive 16-bit loop, for comparison.
func BenchmarkOnesSumReference(b *testing.B) {
	buf := make([]byte, 1500)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		refSum(buf, 0)
	}
}

func BenchmarkParse(b *testing.B) {
	for _, c := range []struct {
		name string
		pkt  []byte
	}{
		{"ipv4-syn", mustBuild(b, synV4())},
		{"ipv6-ext-syn", v6WithExt(b, synV6(), hbh(), dstOpts())},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(c.pkt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkInsertOption adds an ENO option to a Linux SYN (header grows
// by 4 bytes, checksums adjusted incrementally).
func BenchmarkInsertOption(b *testing.B) {
	for _, c := range []struct {
		name string
		seg  Segment
	}{
		{"ipv4-syn", synV4()},
		{"ipv6-syn", synV6()},
		{"ipv4-data-1448", func() Segment { s := dataV4(1448); return s }()},
	} {
		orig := mustBuild(b, c.seg)
		buf := make([]byte, len(orig), len(orig)+40)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				copy(buf, orig)
				p, _ := Parse(buf[:len(orig)])
				if err := p.InsertOption(OptENO, enoSYN); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRewriteSeqAck(b *testing.B) {
	tcp := mustParse(b, mustBuild(b, dataV4(100))).TCP()
	b.ReportAllocs()
	for i := uint32(0); b.Loop(); i++ {
		tcp.RewriteSeq(i)
		tcp.RewriteAck(^i)
	}
}

func BenchmarkSetPayload1400(b *testing.B) {
	orig := mustBuild(b, dataV4(1400))
	buf := make([]byte, len(orig), len(orig)+64)
	frame := make([]byte, 1421)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, orig)
		p, _ := Parse(buf[:len(orig)])
		if err := p.SetPayload(frame); err != nil {
			b.Fatal(err)
		}
	}
}

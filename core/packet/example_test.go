package packet_test

import (
	"fmt"
	"net/netip"

	"tcpinc.dev/tcpinc/core/packet"
)

// A SYN as Linux sends it gets a TCP-ENO option appended; the header grows
// by 4 bytes and every length and checksum stays right.
func ExamplePacket_InsertOption() {
	opts := packet.AppendMSS(nil, 1460)
	opts = packet.AppendSACKPermitted(opts)
	opts = packet.AppendTimestamps(opts, 1, 0)
	opts = packet.AppendNOP(opts)
	opts = packet.AppendWindowScale(opts, 7)
	buf := make([]byte, 0, 128) // spare capacity for the larger header
	buf, err := packet.AppendTCP(buf, packet.Segment{
		Src:     netip.MustParseAddrPort("10.0.0.1:40000"),
		Dst:     netip.MustParseAddrPort("10.0.0.2:443"),
		Seq:     1,
		Flags:   packet.SYN,
		Window:  64240,
		Options: opts,
	})
	if err != nil {
		panic(err)
	}

	p, err := packet.Parse(buf)
	if err != nil {
		panic(err)
	}
	if err := p.InsertOption(packet.OptENO, []byte{0x23}); err != nil {
		panic(err)
	}
	fmt.Println(p.Len(), p.TCPHeaderLen(), p.Options().Count(packet.OptENO), p.VerifyTCPChecksum(), p.IPv4().VerifyChecksum())
	// Output: 64 44 1 true true
}

// Sequence-number mapping on a data segment: the incremental updates keep
// the checksum valid without reading the payload.
func ExampleTCP_RewriteSeq() {
	buf, _ := packet.AppendTCP(nil, packet.Segment{
		Src:     netip.MustParseAddrPort("[2001:db8::1]:40000"),
		Dst:     netip.MustParseAddrPort("[2001:db8::2]:443"),
		Seq:     1000,
		Ack:     5000,
		Flags:   packet.ACK | packet.PSH,
		Payload: []byte("hello"),
	})
	p, _ := packet.Parse(buf)
	tcp := p.TCP()
	tcp.RewriteSeq(tcp.Seq() + 70)
	tcp.RewriteAck(tcp.Ack() - 36)
	fmt.Println(tcp.Seq(), tcp.Ack(), tcp.Flags(), p.VerifyTCPChecksum())
	// Output: 1070 4964 PSH|ACK true
}

package platform_darwin

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"tcpinc.dev/tcpinc/core/packet"
)

// runBPF is a classic BPF interpreter with the kernel's semantics
// (bpf_filter in xnu and every BSD): loads out of bounds reject the
// packet, division by zero rejects, jumps go forward only, and the
// return value is the number of bytes to capture. It decodes the
// assembled bytes, so it checks exactly what BIOCSETF hands the kernel.
func runBPF(t *testing.T, code []byte, pkt []byte) uint32 {
	t.Helper()
	prog, err := Disassemble(code)
	if err != nil {
		t.Fatal(err)
	}
	var A, X uint32
	var mem [16]uint32
	load := func(off uint32, size int) (uint32, bool) {
		if uint64(off)+uint64(size) > uint64(len(pkt)) {
			return 0, false
		}
		switch size {
		case 1:
			return uint32(pkt[off]), true
		case 2:
			return uint32(binary.BigEndian.Uint16(pkt[off:])), true
		default:
			return binary.BigEndian.Uint32(pkt[off:]), true
		}
	}
	sizeOf := func(op uint16) int {
		switch op & 0x18 {
		case bpfB:
			return 1
		case bpfH:
			return 2
		case bpfW:
			return 4
		}
		t.Fatalf("bad size in op %#x", op)
		return 0
	}
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		var ok = true
		switch in.Op & 0x07 {
		case bpfLD:
			switch in.Op & 0xe0 {
			case bpfABS:
				A, ok = load(in.K, sizeOf(in.Op))
			case bpfIND:
				A, ok = load(X+in.K, sizeOf(in.Op))
			case 0x00: // IMM
				A = in.K
			case 0x80: // LEN
				A = uint32(len(pkt))
			case 0x60: // MEM
				A = mem[in.K&15]
			default:
				t.Fatalf("pc %d: unsupported load %#x", pc, in.Op)
			}
		case bpfLDX:
			switch in.Op & 0xe0 {
			case bpfMSH:
				var b uint32
				b, ok = load(in.K, 1)
				X = 4 * (b & 0xf)
			case 0x00:
				X = in.K
			default:
				t.Fatalf("pc %d: unsupported ldx %#x", pc, in.Op)
			}
		case bpfALU:
			v := in.K
			if in.Op&bpfX != 0 {
				v = X
			}
			switch in.Op & 0xf0 {
			case 0x00:
				A += v
			case 0x10:
				A -= v
			case 0x20:
				A *= v
			case 0x30:
				if v == 0 {
					return 0
				}
				A /= v
			case 0x40:
				A |= v
			case bpfAND:
				A &= v
			case 0x60:
				A <<= v
			case bpfRSH:
				A >>= v
			case 0x80:
				A = -A
			default:
				t.Fatalf("pc %d: unsupported alu %#x", pc, in.Op)
			}
		case bpfJMP:
			v := in.K
			if in.Op&bpfX != 0 {
				v = X
			}
			var cond bool
			switch in.Op & 0xf0 {
			case bpfJA:
				pc += int(in.K)
				if pc >= len(prog) {
					t.Fatalf("jump past the end")
				}
				continue
			case bpfJEQ:
				cond = A == v
			case 0x20:
				cond = A > v
			case 0x30:
				cond = A >= v
			case bpfJSET:
				cond = A&v != 0
			default:
				t.Fatalf("pc %d: unsupported jmp %#x", pc, in.Op)
			}
			if cond {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
			if pc+1 >= len(prog) {
				t.Fatalf("pc %d: jump past the end", pc)
			}
		case bpfRET:
			if in.Op&bpfA != 0 {
				return A
			}
			return in.K
		case bpfMISC:
			if in.Op&0xf8 == 0 {
				X = A
			} else {
				A = X
			}
		default:
			t.Fatalf("pc %d: unsupported class %#x", pc, in.Op)
		}
		if !ok {
			return 0 // out-of-bounds load rejects the packet
		}
	}
	t.Fatalf("program fell off the end")
	return 0
}

var (
	cli4 = netip.MustParseAddrPort("192.0.2.10:50123")
	srv4 = netip.MustParseAddrPort("198.51.100.7:443")
	cli6 = netip.MustParseAddrPort("[2001:db8::10]:50123")
	srv6 = netip.MustParseAddrPort("[2001:db8:1::7]:443")
)

// macSYNOptions are the options macOS puts in a SYN: MSS, NOP, window
// scale, NOP, NOP, timestamps, SACK permitted, EOL (24 bytes).
func macSYNOptions() []byte {
	o := packet.AppendMSS(nil, 1460)
	o = packet.AppendNOP(o)
	o = packet.AppendWindowScale(o, 6)
	o = packet.AppendNOP(o)
	o = packet.AppendNOP(o)
	o = packet.AppendTimestamps(o, 1000, 0)
	o = packet.AppendSACKPermitted(o)
	return append(o, 0, 0)
}

func seg(t *testing.T, src, dst netip.AddrPort, flags packet.Flags, tos uint8, payload []byte) []byte {
	t.Helper()
	var opts []byte
	if flags.Has(packet.SYN) {
		opts = macSYNOptions()
	}
	b, err := packet.AppendTCP(nil, packet.Segment{Src: src, Dst: dst, Seq: 1000, Ack: 2000,
		Flags: flags, Window: 65535, Options: opts, Payload: payload, TOS: tos, ID: 7})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withIPv4Options rebuilds an IPv4 packet with 8 bytes of IP options (two
// NOPs and an EOL-padded word), so the TCP header is not at offset 20.
func withIPv4Options(t *testing.T, p []byte) []byte {
	t.Helper()
	out := make([]byte, 0, len(p)+8)
	out = append(out, p[:20]...)
	out = append(out, 1, 1, 1, 0, 0, 0, 0, 0)
	out = append(out, p[20:]...)
	out[0] = 0x47
	binary.BigEndian.PutUint16(out[2:], uint16(len(out)))
	packet.IPv4(out).UpdateChecksum()
	if _, err := packet.Parse(out); err != nil {
		t.Fatalf("IPv4 with options does not parse: %v", err)
	}
	return out
}

func fragment(p []byte, off uint16) []byte {
	q := append([]byte(nil), p...)
	binary.BigEndian.PutUint16(q[6:], off)
	packet.IPv4(q).UpdateChecksum()
	return q
}

func frame(dlt int, ip []byte) []byte {
	switch dlt {
	case DLTNull:
		af := uint32(afInet)
		if ip[0]>>4 == 6 {
			af = afInet6
		}
		return append(binary.LittleEndian.AppendUint32(nil, af), ip...)
	case DLTEN10MB:
		h := make([]byte, 14)
		copy(h[0:6], []byte{2, 0, 0, 0, 0, 1})
		copy(h[6:12], []byte{2, 0, 0, 0, 0, 2})
		et := uint16(0x0800)
		if ip[0]>>4 == 6 {
			et = 0x86dd
		}
		binary.BigEndian.PutUint16(h[12:], et)
		return append(h, ip...)
	}
	return append([]byte(nil), ip...)
}

func TestSYNACKFilter(t *testing.T) {
	type tc struct {
		name string
		ip   []byte
		want bool
	}
	cases := []tc{
		{"v4 SYN-ACK", seg(t, srv4, cli4, packet.SYN|packet.ACK, 0, nil), true},
		{"v4 SYN-ACK ECE", seg(t, srv4, cli4, packet.SYN|packet.ACK|packet.ECE, 0, nil), true},
		{"v4 SYN-ACK IP options", withIPv4Options(t, seg(t, srv4, cli4, packet.SYN|packet.ACK, 0, nil)), true},
		{"v4 SYN", seg(t, cli4, srv4, packet.SYN, 0, nil), false},
		{"v4 ACK", seg(t, cli4, srv4, packet.ACK, 0, nil), false},
		{"v4 ACK IP options", withIPv4Options(t, seg(t, cli4, srv4, packet.ACK|packet.PSH, 0, []byte("data"))), false},
		{"v4 RST-ACK", seg(t, srv4, cli4, packet.RST|packet.ACK, 0, nil), false},
		{"v4 later fragment", fragment(seg(t, srv4, cli4, packet.SYN|packet.ACK, 0, nil), 3), false},
		{"v4 first fragment", fragment(seg(t, srv4, cli4, packet.SYN|packet.ACK, 0, nil), 0x2000), true},
		{"v6 SYN-ACK", seg(t, srv6, cli6, packet.SYN|packet.ACK, 0, nil), true},
		{"v6 SYN", seg(t, cli6, srv6, packet.SYN, 0, nil), false},
		{"v6 data", seg(t, srv6, cli6, packet.ACK, 0, []byte("hello")), false},
	}
	udp := seg(t, srv4, cli4, packet.SYN|packet.ACK, 0, nil)
	udp[9] = 17
	cases = append(cases, tc{"v4 UDP with SYN-ACK bits at the same place", udp, false})
	udp6 := seg(t, srv6, cli6, packet.SYN|packet.ACK, 0, nil)
	udp6[6] = 17
	cases = append(cases, tc{"v6 UDP", udp6, false})

	for _, dlt := range []int{DLTNull, DLTEN10MB, DLTRaw} {
		prog, err := SYNACKFilter(dlt)
		if err != nil {
			t.Fatal(err)
		}
		code := Assemble(prog)
		for _, c := range cases {
			t.Run(fmt.Sprintf("dlt%d/%s", dlt, c.name), func(t *testing.T) {
				f := frame(dlt, c.ip)
				got := runBPF(t, code, f)
				if (got != 0) != c.want {
					t.Fatalf("filter returned %d, want accept=%v", got, c.want)
				}
				if got != 0 && got != synAckSnap {
					t.Fatalf("snap %d", got)
				}
				// Truncated frames never crash the filter and never
				// accept a segment whose flags are cut off.
				for n := 0; n < len(f); n++ {
					runBPF(t, code, f[:n])
				}
			})
		}
	}
	// Ethernet frames of other protocols (ARP) are dropped.
	prog, _ := SYNACKFilter(DLTEN10MB)
	arp := frame(DLTEN10MB, seg(t, srv4, cli4, packet.SYN|packet.ACK, 0, nil))
	arp[12], arp[13] = 0x08, 0x06
	if runBPF(t, Assemble(prog), arp) != 0 {
		t.Error("ARP accepted")
	}
}

func TestReflectFilter(t *testing.T) {
	m := DefaultMark
	cases := []struct {
		name string
		ip   []byte
		want bool
	}{
		{"v4 marked SYN", seg(t, cli4, srv4, packet.SYN, m, nil), true},
		{"v4 marked ACK", seg(t, cli4, srv4, packet.ACK, m, nil), true},
		{"v4 marked data ECT(0)", seg(t, cli4, srv4, packet.ACK|packet.PSH, m|2, []byte("Init1")), true},
		{"v4 marked CE", seg(t, cli4, srv4, packet.ACK, m|3, nil), true},
		{"v4 marked, IP options", withIPv4Options(t, seg(t, cli4, srv4, packet.SYN, m, nil)), true},
		{"v4 unmarked SYN", seg(t, cli4, srv4, packet.SYN, 0, nil), false},
		{"v4 other DSCP", seg(t, cli4, srv4, packet.SYN, 0xb8, nil), false},
		{"v4 marked fragment", fragment(seg(t, cli4, srv4, packet.SYN, m, nil), 5), false},
		{"v6 marked SYN", seg(t, cli6, srv6, packet.SYN, m, nil), true},
		{"v6 marked data ECT(1)", seg(t, cli6, srv6, packet.ACK, m|1, []byte("x")), true},
		{"v6 unmarked", seg(t, cli6, srv6, packet.SYN, 0, nil), false},
		{"v6 neighbouring class", seg(t, cli6, srv6, packet.SYN, m+4, nil), false},
	}
	for _, dlt := range []int{DLTNull, DLTRaw, DLTEN10MB} {
		prog, err := ReflectFilter(dlt, m)
		if err != nil {
			t.Fatal(err)
		}
		code := Assemble(prog)
		for _, c := range cases {
			f := frame(dlt, c.ip)
			got := runBPF(t, code, f)
			if (got != 0) != c.want {
				t.Errorf("dlt %d %s: filter returned %d, want accept=%v", dlt, c.name, got, c.want)
			}
			if got != 0 && got != reflectSnap {
				t.Errorf("snap %d", got)
			}
		}
	}
}

func TestFilterUnsupportedLink(t *testing.T) {
	if _, err := SYNACKFilter(105); err == nil { // DLT_IEEE802_11
		t.Fatal("no error for an unsupported link type")
	}
}

func TestAssembleRoundTrip(t *testing.T) {
	prog, err := ReflectFilter(DLTNull, DefaultMark)
	if err != nil {
		t.Fatal(err)
	}
	code := Assemble(prog)
	if len(code) != len(prog)*InsnSize {
		t.Fatalf("len %d", len(code))
	}
	// struct bpf_insn: code (u16), jt, jf, k (u32), little-endian.
	first := prog[0]
	if binary.LittleEndian.Uint16(code) != first.Op || binary.LittleEndian.Uint32(code[4:]) != first.K {
		t.Fatal("first instruction not encoded as struct bpf_insn")
	}
	back, err := Disassemble(code)
	if err != nil {
		t.Fatal(err)
	}
	for i := range prog {
		if back[i] != prog[i] {
			t.Fatalf("insn %d: %+v != %+v", i, back[i], prog[i])
		}
	}
	if _, err := Disassemble(code[:5]); err == nil {
		t.Fatal("partial instruction accepted")
	}
	// The last instruction is the drop; no jump leaves the program.
	if last := prog[len(prog)-1]; last.Op != bpfRET|bpfK || last.K != 0 {
		t.Fatalf("last instruction %+v", last)
	}
}

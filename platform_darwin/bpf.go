package platform_darwin

import (
	"encoding/binary"
	"fmt"
)

// Classic BPF, as /dev/bpf runs it (bpf(4)). The service builds its two
// filters itself instead of depending on a filter compiler: they are a
// dozen instructions each, and building them here lets the tests run the
// exact bytes the kernel gets through an interpreter on Linux.

// Instruction classes, sizes, modes and operations of classic BPF
// (net/bpf.h). Only what the filters below use, plus what the test
// interpreter needs to reject anything else.
const (
	bpfLD   = 0x00
	bpfLDX  = 0x01
	bpfALU  = 0x04
	bpfJMP  = 0x05
	bpfRET  = 0x06
	bpfMISC = 0x07

	bpfW = 0x00
	bpfH = 0x08
	bpfB = 0x10

	bpfABS = 0x20
	bpfIND = 0x40
	bpfMSH = 0xa0

	bpfAND = 0x50
	bpfRSH = 0x70

	bpfJA   = 0x00
	bpfJEQ  = 0x10
	bpfJSET = 0x40

	bpfK = 0x00
	bpfX = 0x08
	bpfA = 0x10
)

// Link-layer types (DLT_*) of the interfaces the service snoops. They are
// the same numbers on every BSD; DLT_RAW is 12 on Darwin (not Linux's 14).
const (
	DLTNull   = 0  // loopback and utun: 4-byte address family, host order
	DLTEN10MB = 1  // Ethernet and Wi-Fi
	DLTRaw    = 12 // bare IP
)

// Insn is one classic BPF instruction (struct bpf_insn).
type Insn struct {
	Op     uint16
	Jt, Jf uint8
	K      uint32
}

// InsnSize is the size of struct bpf_insn.
const InsnSize = 8

// Assemble encodes a program as the kernel reads it: struct bpf_insn in
// host byte order, which is little-endian on every Mac (x86-64, arm64).
func Assemble(prog []Insn) []byte {
	b := make([]byte, 0, len(prog)*InsnSize)
	for _, in := range prog {
		b = binary.LittleEndian.AppendUint16(b, in.Op)
		b = append(b, in.Jt, in.Jf)
		b = binary.LittleEndian.AppendUint32(b, in.K)
	}
	return b
}

// Disassemble is the inverse of Assemble.
func Disassemble(b []byte) ([]Insn, error) {
	if len(b)%InsnSize != 0 {
		return nil, fmt.Errorf("bpf: program of %d bytes is not a whole number of instructions", len(b))
	}
	prog := make([]Insn, len(b)/InsnSize)
	for i := range prog {
		r := b[i*InsnSize:]
		prog[i] = Insn{
			Op: binary.LittleEndian.Uint16(r),
			Jt: r[2], Jf: r[3],
			K: binary.LittleEndian.Uint32(r[4:]),
		}
	}
	return prog, nil
}

// linkHeaderLen is the length of the link-layer header before the IP
// header for a DLT, or -1 if the service does not snoop that link type.
func linkHeaderLen(dlt int) int {
	switch dlt {
	case DLTNull:
		return 4
	case DLTEN10MB:
		return 14
	case DLTRaw:
		return 0
	}
	return -1
}

// Snap lengths the filters accept. A reflected segment is re-injected, so
// it is captured whole; of a SYN-ACK only the headers matter (IPv6 40 +
// TCP 60 + link 14 fit comfortably).
const (
	reflectSnap = 0xffff
	synAckSnap  = 256
)

// Matcher selects what a filter accepts once it has found an unfragmented
// TCP segment.
type filterKind int

const (
	// kindSYNACK accepts segments with SYN and ACK set: the peer's answer
	// to a wire leg's SYN, read on the real interfaces.
	kindSYNACK filterKind = iota
	// kindReflect accepts segments whose DSCP (TOS or traffic class
	// without the two ECN bits) equals the reflection mark: the kernel's
	// own handshake segments of wire legs, which pf routes to lo0.
	kindReflect
)

// SYNACKFilter returns the filter for the real interfaces: IPv4 and IPv6
// TCP segments with SYN and ACK set, first fragments only.
func SYNACKFilter(dlt int) ([]Insn, error) { return buildFilter(dlt, kindSYNACK, 0) }

// ReflectFilter returns the filter for lo0: IPv4 and IPv6 TCP segments
// whose DSCP equals mark's (mark's ECN bits are ignored, since the kernel
// sets ECT on data segments of ECN connections).
func ReflectFilter(dlt int, mark uint8) ([]Insn, error) {
	return buildFilter(dlt, kindReflect, mark&^ecnMask)
}

// ecnMask is the ECN field of the TOS / traffic class byte (RFC 3168).
const ecnMask = 0x03

// buildFilter assembles a filter with symbolic jumps resolved at the end.
// Layout:
//
//	link check (Ethernet: ethertype; others: IP version nibble)
//	v4: proto == TCP, fragment offset == 0, [tos check], X = IHL*4,
//	    flags check at X+13, accept
//	v6: next header == TCP, [traffic class check], flags at 40+13, accept
//	drop
func buildFilter(dlt int, kind filterKind, mark uint8) ([]Insn, error) {
	l := linkHeaderLen(dlt)
	if l < 0 {
		return nil, fmt.Errorf("bpf: link type %d is not supported (want DLT_NULL, DLT_EN10MB or DLT_RAW)", dlt)
	}
	L := uint32(l)
	a := &asm{}
	snap := uint32(synAckSnap)
	if kind == kindReflect {
		snap = reflectSnap
	}

	// Which IP version?
	if dlt == DLTEN10MB {
		a.emit(Insn{Op: bpfLD | bpfH | bpfABS, K: 12})
		a.jeq(0x0800, "v4", "")
		a.jeq(0x86dd, "v6", "drop")
	} else {
		a.emit(Insn{Op: bpfLD | bpfB | bpfABS, K: L})
		a.emit(Insn{Op: bpfALU | bpfRSH | bpfK, K: 4})
		a.jeq(4, "v4", "")
		a.jeq(6, "v6", "drop")
	}

	a.label("v4")
	a.emit(Insn{Op: bpfLD | bpfB | bpfABS, K: L + 9})
	a.jeq(6, "", "drop")
	a.emit(Insn{Op: bpfLD | bpfH | bpfABS, K: L + 6})
	a.jset(0x1fff, "drop", "")
	if kind == kindReflect {
		a.emit(Insn{Op: bpfLD | bpfB | bpfABS, K: L + 1})
		a.emit(Insn{Op: bpfALU | bpfAND | bpfK, K: 0xfc})
		a.jeq(uint32(mark), "", "drop")
	}
	a.emit(Insn{Op: bpfLDX | bpfB | bpfMSH, K: L})
	a.emit(Insn{Op: bpfLD | bpfB | bpfIND, K: L + 13})
	a.jmp("flags")

	a.label("v6")
	a.emit(Insn{Op: bpfLD | bpfB | bpfABS, K: L + 6})
	a.jeq(6, "", "drop")
	if kind == kindReflect {
		// Version (4 bits), traffic class (8), flow label (20): the
		// class is bits 4..11 of the first halfword.
		a.emit(Insn{Op: bpfLD | bpfH | bpfABS, K: L})
		a.emit(Insn{Op: bpfALU | bpfRSH | bpfK, K: 4})
		a.emit(Insn{Op: bpfALU | bpfAND | bpfK, K: 0xfc})
		a.jeq(uint32(mark), "", "drop")
	}
	a.emit(Insn{Op: bpfLD | bpfB | bpfABS, K: L + 40 + 13})

	a.label("flags")
	if kind == kindSYNACK {
		a.emit(Insn{Op: bpfALU | bpfAND | bpfK, K: 0x12})
		a.jeq(0x12, "", "drop")
	}
	a.emit(Insn{Op: bpfRET | bpfK, K: snap})
	a.label("drop")
	a.emit(Insn{Op: bpfRET | bpfK, K: 0})
	return a.resolve()
}

// asm collects instructions with forward jumps to named labels.
type asm struct {
	prog   []Insn
	labels map[string]int
	fixups []fixup
}

type fixup struct {
	at     int
	tl, fl string // "" = fall through
	always bool
}

func (a *asm) emit(in Insn) { a.prog = append(a.prog, in) }

func (a *asm) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.prog)
}

func (a *asm) cond(op uint16, k uint32, tl, fl string) {
	a.fixups = append(a.fixups, fixup{at: len(a.prog), tl: tl, fl: fl})
	a.emit(Insn{Op: op, K: k})
}

func (a *asm) jeq(k uint32, tl, fl string)  { a.cond(bpfJMP|bpfJEQ|bpfK, k, tl, fl) }
func (a *asm) jset(k uint32, tl, fl string) { a.cond(bpfJMP|bpfJSET|bpfK, k, tl, fl) }

func (a *asm) jmp(l string) {
	a.fixups = append(a.fixups, fixup{at: len(a.prog), tl: l, always: true})
	a.emit(Insn{Op: bpfJMP | bpfJA})
}

// resolve patches jump offsets. Classic BPF jumps only forward; the
// conditional offsets are 8 bits, plenty for these programs.
func (a *asm) resolve() ([]Insn, error) {
	off := func(from int, name string) (int, error) {
		if name == "" {
			return 0, nil
		}
		to, ok := a.labels[name]
		if !ok {
			return 0, fmt.Errorf("bpf: undefined label %q", name)
		}
		d := to - from - 1
		if d < 0 {
			return 0, fmt.Errorf("bpf: backward jump to %q", name)
		}
		return d, nil
	}
	for _, f := range a.fixups {
		t, err := off(f.at, f.tl)
		if err != nil {
			return nil, err
		}
		if f.always {
			a.prog[f.at].K = uint32(t)
			continue
		}
		e, err := off(f.at, f.fl)
		if err != nil {
			return nil, err
		}
		if t > 255 || e > 255 {
			return nil, fmt.Errorf("bpf: jump too far")
		}
		a.prog[f.at].Jt, a.prog[f.at].Jf = uint8(t), uint8(e)
	}
	return a.prog, nil
}

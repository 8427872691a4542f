package eno

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// h decodes hex with optional spaces; "x17" inside expands to 17 bytes
// 0x01, 0x02, … so long data stays readable.
func h(s string) []byte {
	var b []byte
	for _, f := range strings.Fields(s) {
		if f[0] == 'x' {
			n := 0
			for _, c := range f[1:] {
				n = n*10 + int(c-'0')
			}
			for i := 1; i <= n; i++ {
				b = append(b, byte(i))
			}
			continue
		}
		d, err := hex.DecodeString(f)
		if err != nil {
			panic(err)
		}
		b = append(b, d...)
	}
	return b
}

type dec struct {
	b    byte
	data string // hex; "-" for nil data
}

func decodeAll(t *testing.T, contents []byte) ([]dec, error) {
	t.Helper()
	var got []dec
	it := Suboptions(contents)
	for s, ok := it.Next(); ok; s, ok = it.Next() {
		d := dec{s.Byte, "-"}
		if s.Data != nil {
			d.data = hex.EncodeToString(s.Data)
			if cap(s.Data) != len(s.Data) {
				t.Errorf("data of %#02x has spare capacity %d > %d", s.Byte, cap(s.Data), len(s.Data))
			}
		}
		if s.Byte >= 0x80 && s.Byte < 0xa0 {
			t.Errorf("iterator yielded a length byte %#02x", s.Byte)
		}
		got = append(got, d)
	}
	return got, it.Err()
}

func TestDecodeForms(t *testing.T) {
	d17 := hex.EncodeToString(h("x17"))
	d32 := hex.EncodeToString(h("x32"))
	tests := []struct {
		name     string
		contents string
		want     []dec
		err      error
	}{
		{"§4.1 empty contents (vacuous)", "", nil, nil},
		{"§4.2 global suboption 0x00", "00", []dec{{0x00, "-"}}, nil},
		{"§4.2 global b=1 then TEP (SPEC 1.10 B)", "01 23", []dec{{0x01, "-"}, {0x23, "-"}}, nil},
		{"§4.1 TEPs without data (SPEC 1.10 A)", "24 23", []dec{{0x24, "-"}, {0x23, "-"}}, nil},
		{"§4.2 z bits decode as a global", "1f", []dec{{0x1f, "-"}}, nil},
		{"§4.2 second global still decodes", "02 01 23", []dec{{0x02, "-"}, {0x01, "-"}, {0x23, "-"}}, nil},
		{"§4.1 experimental and reserved ids", "20 70 7f", []dec{{0x20, "-"}, {0x70, "-"}, {0x7f, "-"}}, nil},
		{"§4.4 v=1 data to the end", "21 a3 " + hex.EncodeToString(h("x9")), []dec{{0x21, "-"}, {0xa3, hex.EncodeToString(h("x9"))}}, nil},
		{"§4.4 v=1 last with no data", "21 a1", []dec{{0x21, "-"}, {0xa1, ""}}, nil},
		{"§4.4 v=1 data longer than 32 when last", "a3 " + hex.EncodeToString(h("x36")), []dec{{0xa3, hex.EncodeToString(h("x36"))}}, nil},
		{"§4.4 length byte 90 a3 <17> (SPEC 1.4)", "90 a3 " + d17 + " 21", []dec{{0xa3, d17}, {0x21, "-"}}, nil},
		{"§4.4 length byte 1 byte of data", "80 ff aa 01", []dec{{0xff, "aa"}, {0x01, "-"}}, nil},
		{"§4.4 length byte 32 bytes of data", "9f a0 " + d32, []dec{{0xa0, d32}}, nil},
		{"§4.4 two length-byte suboptions", "80 a1 aa 81 a2 bb cc 23", []dec{{0xa1, "aa"}, {0xa2, "bbcc"}, {0x23, "-"}}, nil},
		{"§4.4 rule 1 data overruns", "23 85 a3 01 02", []dec{{0x23, "-"}}, ErrLengthOverrun},
		{"§4.4 rule 1 length byte last", "23 85", []dec{{0x23, "-"}}, ErrLengthOverrun},
		{"§4.4 rule 1 TEP byte but no data", "80 a3", nil, ErrLengthOverrun},
		{"§4.4 rule 2 followed by v=0 TEP", "81 23 aa bb", nil, ErrLengthNotFollowedByTEP},
		{"§4.4 rule 2 followed by a global", "80 01 aa", nil, ErrLengthNotFollowedByTEP},
		{"§4.4 rule 2 followed by a length byte", "80 9f aa", nil, ErrLengthNotFollowedByTEP},
		{"§4.4 rule 2 followed by 0x80", "80 80 aa", nil, ErrLengthNotFollowedByTEP},
		{"§4.4 rule 2 wins over overrun", "85 23", nil, ErrLengthNotFollowedByTEP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeAll(t, h(tt.contents))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Errorf("%v does not match ErrMalformed", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("suboption %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
			// The whole option: valid iff the iteration was.
			opt := append([]byte{OptionKind, byte(2 + len(h(tt.contents)))}, h(tt.contents)...)
			if _, err2 := ParseSYNOption(opt); !errors.Is(err2, tt.err) {
				t.Errorf("ParseSYNOption err = %v, want %v", err2, tt.err)
			}
		})
	}
}

func TestParseSYNOptionHeader(t *testing.T) {
	tests := []struct {
		name string
		opt  string
		err  error
	}{
		{"empty", "", ErrTruncated},
		{"kind only", "45", ErrTruncated},
		{"wrong kind", "44 02", ErrNotENO},
		{"length below 2", "45 01", ErrBadLength},
		{"length past buffer", "45 05 01 23", ErrTruncated},
		{"bytes after option", "45 02 00", ErrBadLength},
		{"41 bytes", "45 29 " + hex.EncodeToString(bytes.Repeat([]byte{0x21}, 39)), ErrTooLong},
		{"40 bytes", "45 28 " + hex.EncodeToString(bytes.Repeat([]byte{0x21}, 38)), nil},
		{"non-SYN form 45 02 is a vacuous SYN form", "45 02", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSYNOption(h(tt.opt))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Errorf("%v does not match ErrMalformed", err)
			}
		})
	}
}

func TestSYNOptionAccessors(t *testing.T) {
	tests := []struct {
		opt      string
		gopt     byte
		explicit bool
		nTEPs    int
	}{
		{"45 04 24 23", 0, false, 2},
		{"45 04 01 23", 0x01, true, 1},
		{"45 05 03 01 23", 0x03, true, 1},    // §4.2: only the first global counts
		{"45 05 21 1d 23", 0x1d, true, 2},    // position is free; z bits kept as received
		{"45 03 01", 0x01, true, 0},          // vacuous, §4.6
		{"45 06 80 a1 aa 01", 0x01, true, 1}, // a global after a length-byte suboption
	}
	for _, tt := range tests {
		o, err := ParseSYNOption(h(tt.opt))
		if err != nil {
			t.Fatalf("%s: %v", tt.opt, err)
		}
		g, ex := o.Global()
		if g != tt.gopt || ex != tt.explicit || o.NumTEPs() != tt.nTEPs {
			t.Errorf("%s: Global() = %#02x,%v NumTEPs() = %d; want %#02x,%v %d", tt.opt, g, ex, o.NumTEPs(), tt.gopt, tt.explicit, tt.nTEPs)
		}
		if !bytes.Equal(o.Bytes(), h(tt.opt)) {
			t.Errorf("Bytes() = %x", o.Bytes())
		}
	}
}

func TestAppendOption(t *testing.T) {
	d17, d32, d33 := h("x17"), h("x32"), h("x33")
	tests := []struct {
		name string
		subs []Suboption
		want string
		err  error
	}{
		{"vacuous", nil, "45 02", nil},
		{"SPEC 1.10 A's option", []Suboption{{Byte: 0x24}, {Byte: 0x23}}, "45 04 24 23", nil},
		{"SPEC 1.10 B's option", []Suboption{{Byte: 0x01}, {Byte: 0x23}}, "45 04 01 23", nil},
		{"§4.4 last data needs no length byte", []Suboption{{Byte: 0x21}, {Byte: 0xa3, Data: h("x9")}}, "45 0d 21 a3 " + hex.EncodeToString(h("x9")), nil},
		{"§4.4 non-last data gets 90 a3 <17>", []Suboption{{Byte: 0xa3, Data: d17}, {Byte: 0x21}}, "45 16 90 a3 " + hex.EncodeToString(d17) + " 21", nil},
		{"§4.4 non-last 32 bytes", []Suboption{{Byte: 0xa3, Data: d32}, {Byte: 0x01}}, "45 25 9f a3 " + hex.EncodeToString(d32) + " 01", nil},
		{"§4.4 last 33 bytes", []Suboption{{Byte: 0xa3, Data: d33}}, "45 24 a3 " + hex.EncodeToString(d33), nil},
		{"§4.4 last with empty data", []Suboption{{Byte: 0x21}, {Byte: 0xa1}}, "45 04 21 a1", nil},
		{"length byte value", []Suboption{{Byte: 0x85}}, "", ErrBadSuboption},
		{"data with v=0", []Suboption{{Byte: 0x23, Data: h("01")}}, "", ErrBadSuboption},
		{"data on a global", []Suboption{{Byte: 0x01, Data: h("01")}}, "", ErrBadSuboption},
		{"non-last 33 bytes", []Suboption{{Byte: 0xa3, Data: d33}, {Byte: 0x21}}, "", ErrDataLength},
		{"non-last empty", []Suboption{{Byte: 0xa3}, {Byte: 0x21}}, "", ErrDataLength},
		{"over 40 bytes", []Suboption{{Byte: 0xa3, Data: h("x39")}}, "", ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte{0xee}
			got, err := AppendOption(prefix, tt.subs...)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				if !bytes.Equal(got, prefix) {
					t.Errorf("dst changed on error: %x", got)
				}
				return
			}
			if want := append([]byte{0xee}, h(tt.want)...); !bytes.Equal(got, want) {
				t.Fatalf("got % x\nwant % x", got, want)
			}
			// Round trip through the decoder.
			o, err := ParseSYNOption(got[1:])
			if err != nil {
				t.Fatal(err)
			}
			it := o.Suboptions()
			for i, want := range tt.subs {
				s, ok := it.Next()
				if !ok || s.Byte != want.Byte || !bytes.Equal(s.Data, want.Data) {
					t.Errorf("suboption %d decodes as %+v, want %+v", i, s, want)
				}
			}
		})
	}
	if got := AppendNonSYNOption(nil); !bytes.Equal(got, h("45 02")) {
		t.Errorf("AppendNonSYNOption = % x, want 45 02 (§4.1)", got)
	}
}

func TestScanOptions(t *testing.T) {
	const (
		mss   = "02 04 05 b4"
		sackp = "04 02"
		ts    = "08 0a 00 00 00 01 00 00 00 00"
		ws    = "03 03 07"
	)
	tests := []struct {
		name   string
		area   string
		eno    string
		numENO int
		tfo    bool
		err    error
	}{
		{"none", mss + " " + sackp + " " + ts + " 01 " + ws, "", 0, false, nil},
		{"one ENO among others", mss + " 01 01 45 04 24 23 " + ws, "45 04 24 23", 1, false, nil},
		{"§4.1 two ENO options", "45 03 23 45 03 21", "45 03 23", 2, false, nil},
		{"§11 ENO and legacy 253/0x454E count as two", "fd 05 45 4e 21 45 03 21", "45 03 21", 2, false, nil},
		{"§11 legacy alone is not ENO", "fd 05 45 4e 21", "", 1, false, nil},
		{"legacy ExID on 254", "fe 04 45 4e", "", 1, false, nil},
		{"other experiment", "fd 06 12 34 56 78", "", 0, false, nil},
		{"§4.7 TFO cookie", "22 0a 01 02 03 04 05 06 07 08 45 03 23", "45 03 23", 1, true, nil},
		{"TFO cookie request is empty", "22 02 45 03 23", "45 03 23", 1, false, nil},
		{"experimental TFO cookie", "fe 08 f9 89 01 02 03 04", "", 0, true, nil},
		{"experimental TFO request", "fe 04 f9 89", "", 0, false, nil},
		{"EOL ends the walk", "45 03 23 00 45 03 21", "45 03 23", 1, false, nil},
		{"length 0", "45 03 23 08 00", "45 03 23", 1, false, ErrBadOptions},
		{"length 1", "08 01", "", 0, false, ErrBadOptions},
		{"overrun", "45 05 23", "", 0, false, ErrBadOptions},
		{"kind without length", "01 08", "", 0, false, ErrBadOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ScanOptions(h(tt.area))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if !bytes.Equal(o.ENO, h(tt.eno)) || o.NumENO != tt.numENO || o.TFO != tt.tfo {
				t.Errorf("got ENO=% x NumENO=%d TFO=%v; want % x %d %v", o.ENO, o.NumENO, o.TFO, h(tt.eno), tt.numENO, tt.tfo)
			}
		})
	}
}

func TestTEPAndRoleStrings(t *testing.T) {
	for tep, want := range map[TEP]string{
		TEPTcpcryptCurve25519: "TCPCRYPT_ECDHE_Curve25519",
		TEPExperimental:       "experimental",
		0x55:                  "TEP(0x55)",
	} {
		if got := tep.String(); got != want {
			t.Errorf("%#02x.String() = %q, want %q", byte(tep), got, want)
		}
	}
	if !TEP(0x20).Valid() || TEP(0x1f).Valid() || TEP(0x80).Valid() || !TEP(0x7f).Valid() {
		t.Error("Valid range is 0x20-0x7f (§4.1)")
	}
	if !TEP(0x70).Reserved() || TEP(0x6f).Reserved() {
		t.Error("Reserved range is 0x70-0x7f (§11)")
	}
	if RoleA.Peer() != RoleB || RoleB.Peer() != RoleA || RoleA.String() != "A" || RoleB.String() != "B" {
		t.Error("Role")
	}
	for r := Reason(0); r < numReasons; r++ {
		if reasonNames[r] == "" {
			t.Errorf("Reason %d has no name", r)
		}
	}
	if SameRoleBit.String() != "same-role-bit" || Reason(200).String() != "reason(200)" {
		t.Error(Reason(200).String())
	}
}

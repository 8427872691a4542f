package eno

// Errors of the codec. All decoding errors match ErrMalformed with
// errors.Is. They are fixed values, so rejecting hostile input allocates
// nothing.
var (
	// ErrMalformed matches every decoding error below.
	ErrMalformed = &codecError{"eno: malformed ENO option", false}

	ErrTruncated              = &codecError{"eno: option shorter than its length byte", true}
	ErrNotENO                 = &codecError{"eno: option kind is not 69", true}
	ErrBadLength              = &codecError{"eno: option length byte does not match the option", true}
	ErrTooLong                = &codecError{"eno: option longer than 40 bytes", true}
	ErrLengthOverrun          = &codecError{"eno: length byte runs past the end of the option", true}
	ErrLengthNotFollowedByTEP = &codecError{"eno: length byte not followed by a TEP with v = 1", true}

	// ErrBadSuboption: a suboption that cannot be encoded as given: a
	// length byte value (0x80–0x9f), or data on a byte with v = 0.
	ErrBadSuboption = &codecError{"eno: suboption cannot be encoded", false}
	// ErrDataLength: data of a suboption that is not last is empty or
	// longer than 32 bytes, so no length byte can describe it.
	ErrDataLength = &codecError{"eno: suboption data needs 1-32 bytes unless last", false}
	// ErrBadOptions: the TCP options area is not a well-formed option list.
	ErrBadOptions = &codecError{"eno: malformed TCP options area", true}
)

type codecError struct {
	msg       string
	malformed bool
}

func (e *codecError) Error() string { return e.msg }

func (e *codecError) Is(target error) bool { return e.malformed && target == ErrMalformed }

// Iter walks the suboptions of a SYN-form ENO option's contents without
// allocating. Use it as
//
//	it := eno.Suboptions(contents)
//	for s, ok := it.Next(); ok; s, ok = it.Next() { ... }
//	if err := it.Err(); err != nil { ... }
//
// RFC 8547 §4.4 makes a malformed option void as a whole, so callers that
// negotiate must check Err before acting on any suboption
// (ParseSYNOption does).
type Iter struct {
	c   []byte
	off int
	err error
}

// Suboptions returns an iterator over contents, the bytes of a SYN-form
// ENO option after its kind and length bytes.
func Suboptions(contents []byte) Iter { return Iter{c: contents} }

// Next returns the next suboption, or ok = false at the end of the option
// or at the first error.
func (it *Iter) Next() (s Suboption, ok bool) {
	b, d0, d1, ok := it.step()
	if !ok {
		return Suboption{}, false
	}
	s.Byte = b
	if b&VBit != 0 {
		s.Data = it.c[d0:d1:d1]
	}
	return s, true
}

// Err returns the error that stopped the iteration, if any.
func (it *Iter) Err() error { return it.err }

// step decodes one suboption: its initial byte and its data c[d0:d1].
func (it *Iter) step() (b byte, d0, d1 int, ok bool) {
	c, i := it.c, it.off
	if it.err != nil || i >= len(c) {
		return 0, 0, 0, false
	}
	b = c[i]
	switch {
	case b < VBit: // global suboption or TEP without data: one byte (Table 1)
		it.off = i + 1
		return b, i + 1, i + 1, true
	case b >= VBit|0x20: // TEP with data running to the end of the option (§4.4)
		it.off = len(c)
		return b, i + 1, len(c), true
	}
	// A length byte 100nnnnn: nnnnn+1 data bytes follow the TEP byte that
	// follows it. §4.4 voids the option if that byte has v = 0 or
	// glt < 0x20, or if the data would overrun the option.
	n := int(b&0x1f) + 1
	switch {
	case i+1 >= len(c):
		it.err = ErrLengthOverrun
	case c[i+1] < VBit|0x20:
		it.err = ErrLengthNotFollowedByTEP
	case i+2+n > len(c):
		it.err = ErrLengthOverrun
	default:
		it.off = i + 2 + n
		return c[i+1], i + 2, i + 2 + n, true
	}
	return 0, 0, 0, false
}

// checkHeader checks that opt is exactly one ENO option of at most 40
// bytes: kind 69 and a length byte equal to len(opt).
func checkHeader(opt []byte) error {
	switch {
	case len(opt) < 2:
		return ErrTruncated
	case opt[0] != OptionKind:
		return ErrNotENO
	case opt[1] < 2:
		return ErrBadLength
	case int(opt[1]) > len(opt):
		return ErrTruncated
	case int(opt[1]) < len(opt):
		return ErrBadLength
	case len(opt) > MaxOptionLen:
		return ErrTooLong
	}
	return nil
}

// SYNOption is a well-formed SYN-form ENO option, aliasing the bytes it
// was parsed from.
type SYNOption struct{ b []byte }

// ParseSYNOption checks that opt is one whole, well-formed SYN-form ENO
// option (kind and length bytes included) and returns a view of it.
func ParseSYNOption(opt []byte) (SYNOption, error) {
	if err := checkHeader(opt); err != nil {
		return SYNOption{}, err
	}
	it := Suboptions(opt[2:])
	for _, _, _, ok := it.step(); ok; _, _, _, ok = it.step() {
	}
	if it.err != nil {
		return SYNOption{}, it.err
	}
	return SYNOption{opt}, nil
}

// Bytes returns the whole option, kind and length bytes included: the form
// that goes into the negotiation transcript (§4.8).
func (o SYNOption) Bytes() []byte { return o.b }

// Suboptions returns an iterator over the option's suboptions.
func (o SYNOption) Suboptions() Iter {
	if len(o.b) < 2 {
		return Iter{}
	}
	return Suboptions(o.b[2:])
}

// Global returns the option's global suboption: the first one, since a
// receiver ignores the others (§4.2), or an implicit 0x00 if there is none.
func (o SYNOption) Global() (gopt byte, explicit bool) {
	it := o.Suboptions()
	for s, ok := it.Next(); ok; s, ok = it.Next() {
		if s.Global() {
			return s.Byte, true
		}
	}
	return 0, false
}

// NumTEPs counts the option's TEP suboptions. An option with none is
// vacuous (§4.6).
func (o SYNOption) NumTEPs() int {
	n := 0
	it := o.Suboptions()
	for s, ok := it.Next(); ok; s, ok = it.Next() {
		if !s.Global() {
			n++
		}
	}
	return n
}

// AppendOption appends a SYN-form ENO option holding subs, in that order,
// to dst. It writes a length byte before every suboption with data except
// the last, whose data length the option length implies (§4.4, §8.2). On
// error dst is returned unchanged.
func AppendOption(dst []byte, subs ...Suboption) ([]byte, error) {
	start := len(dst)
	dst = append(dst, OptionKind, 0)
	var err error
	for i, s := range subs {
		if dst, err = appendSuboption(dst, s, i == len(subs)-1); err != nil {
			return dst[:start], err
		}
	}
	return finishOption(dst, start)
}

// AppendNonSYNOption appends the non-SYN-form ENO option with empty
// contents, 45 02: what every non-SYN segment carries while ENO asks for
// it, since no TEP here gives the contents a meaning (§4.1).
func AppendNonSYNOption(dst []byte) []byte { return append(dst, OptionKind, 2) }

func appendSuboption(dst []byte, s Suboption, last bool) ([]byte, error) {
	switch {
	case s.Byte < VBit:
		if len(s.Data) != 0 {
			return dst, ErrBadSuboption
		}
		return append(dst, s.Byte), nil
	case s.Byte < VBit|0x20:
		return dst, ErrBadSuboption
	}
	if !last {
		if len(s.Data) == 0 || len(s.Data) > MaxDataLen {
			return dst, ErrDataLength
		}
		dst = append(dst, VBit|byte(len(s.Data)-1))
	}
	dst = append(dst, s.Byte)
	return append(dst, s.Data...), nil
}

// finishOption fills in the length byte of the option begun at dst[start].
func finishOption(dst []byte, start int) ([]byte, error) {
	n := len(dst) - start
	if n > MaxOptionLen {
		return dst[:start], ErrTooLong
	}
	dst[start+1] = byte(n)
	return dst, nil
}

package packet

import "encoding/binary"

// TCP option kinds (IANA "TCP Option Kind Numbers").
const (
	OptEOL           uint8 = 0  // End of Option List
	OptNOP           uint8 = 1  // No-Operation (padding)
	OptMSS           uint8 = 2  // Maximum Segment Size, len 4
	OptWindowScale   uint8 = 3  // Window Scale, len 3 (RFC 7323)
	OptSACKPermitted uint8 = 4  // SACK Permitted, len 2 (RFC 2018)
	OptSACK          uint8 = 5  // SACK blocks, len 2+8n (RFC 2018)
	OptTimestamps    uint8 = 8  // Timestamps, len 10 (RFC 7323)
	OptENO           uint8 = 69 // TCP-ENO (RFC 8547)
)

// Options is a view of the TCP option bytes (at most MaxOptionsLen).
type Options []byte

// Option is one option found by the walk. Data aliases the packet, so
// writing to it changes the packet (and invalidates the TCP checksum;
// see [TCP.RewriteOptionData]).
type Option struct {
	Kind uint8
	// Offset is the position of the kind byte within the option bytes;
	// the position within the TCP header is TCPMinHeaderLen + Offset.
	Offset int
	// Data is the option's contents after kind and length (nil for EOL
	// and NOP).
	Data []byte
}

// Len returns the option's length on the wire.
func (o Option) Len() int {
	if o.Kind <= OptNOP {
		return 1
	}
	return 2 + len(o.Data)
}

// OptionIter walks options in order without allocating:
//
//	it := opts.Iter()
//	for o, ok := it.Next(); ok; o, ok = it.Next() { ... }
//	if err := it.Err(); err != nil { ... }
//
// The walk yields NOPs and a final EOL; bytes after an EOL are padding and
// are not walked.
type OptionIter struct {
	b   Options
	off int
	err error
}

// Iter returns an iterator over the options.
func (o Options) Iter() OptionIter { return OptionIter{b: o} }

// Next returns the next option; ok is false at the end of the options or
// on a malformed option (then Err reports it).
func (it *OptionIter) Next() (o Option, ok bool) {
	b, off := it.b, it.off
	if off >= len(b) || it.err != nil {
		return Option{}, false
	}
	kind := b[off]
	switch kind {
	case OptEOL:
		it.off = len(b)
		return Option{Kind: kind, Offset: off}, true
	case OptNOP:
		it.off = off + 1
		return Option{Kind: kind, Offset: off}, true
	}
	if off+1 >= len(b) {
		it.err = errOptTruncated
		return Option{}, false
	}
	n := int(b[off+1])
	if n < 2 {
		it.err = errOptLength
		return Option{}, false
	}
	if n > len(b)-off {
		it.err = errOptOverrun
		return Option{}, false
	}
	it.off = off + n
	return Option{Kind: kind, Offset: off, Data: b[off+2 : off+n : off+n]}, true
}

// Err returns the error that stopped the walk, if any; it matches
// ErrBadOptions.
func (it *OptionIter) Err() error { return it.err }

// Validate walks the options and reports the first malformation.
func (o Options) Validate() error {
	it := o.Iter()
	for _, ok := it.Next(); ok; _, ok = it.Next() {
	}
	return it.Err()
}

// Find returns the first option of the given kind. Kinds 0 and 1 are found
// too. A malformed option ends the search (ok false); Validate tells why.
func (o Options) Find(kind uint8) (opt Option, ok bool) {
	it := o.Iter()
	for opt, ok = it.Next(); ok; opt, ok = it.Next() {
		if opt.Kind == kind {
			return opt, true
		}
	}
	return Option{}, false
}

// Count returns how many options of the given kind appear before the end
// of the options or the first malformed one. TCP-ENO needs it: a SYN with
// more than one ENO option must be treated as having none (RFC 8547 §4.1).
func (o Options) Count(kind uint8) int {
	n := 0
	it := o.Iter()
	for opt, ok := it.Next(); ok; opt, ok = it.Next() {
		if opt.Kind == kind {
			n++
		}
	}
	return n
}

// Used returns the number of option bytes up to the end of the last
// option that is not padding: trailing NOPs, an EOL and whatever follows
// it are excluded. A malformed option ends the count at its start.
func (o Options) Used() int {
	used := 0
	it := o.Iter()
	for opt, ok := it.Next(); ok; opt, ok = it.Next() {
		if opt.Kind > OptNOP {
			used = opt.Offset + opt.Len()
		}
	}
	return used
}

// MSS returns the Maximum Segment Size option value.
func (o Options) MSS() (mss uint16, ok bool) {
	opt, ok := o.Find(OptMSS)
	if !ok || len(opt.Data) != 2 {
		return 0, false
	}
	return binary.BigEndian.Uint16(opt.Data), true
}

// SetMSS overwrites the MSS option in place (for MSS clamping); it reports
// false if there is no well-formed MSS option. The TCP checksum is not
// updated; [TCP.RewriteOptionData] does both.
func (o Options) SetMSS(mss uint16) bool {
	opt, ok := o.Find(OptMSS)
	if !ok || len(opt.Data) != 2 {
		return false
	}
	binary.BigEndian.PutUint16(opt.Data, mss)
	return true
}

// WindowScale returns the window scale shift count.
func (o Options) WindowScale() (shift uint8, ok bool) {
	opt, ok := o.Find(OptWindowScale)
	if !ok || len(opt.Data) != 1 {
		return 0, false
	}
	return opt.Data[0], true
}

// SACKPermitted reports whether a well-formed SACK-permitted option is
// present.
func (o Options) SACKPermitted() bool {
	opt, ok := o.Find(OptSACKPermitted)
	return ok && len(opt.Data) == 0
}

// Timestamps returns the TSval and TSecr of the timestamps option.
func (o Options) Timestamps() (tsval, tsecr uint32, ok bool) {
	opt, ok := o.Find(OptTimestamps)
	if !ok || len(opt.Data) != 8 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(opt.Data[0:4]), binary.BigEndian.Uint32(opt.Data[4:8]), true
}

// SetTimestamps overwrites the timestamps option in place; it reports
// false if there is no well-formed timestamps option. The TCP checksum is
// not updated.
func (o Options) SetTimestamps(tsval, tsecr uint32) bool {
	opt, ok := o.Find(OptTimestamps)
	if !ok || len(opt.Data) != 8 {
		return false
	}
	binary.BigEndian.PutUint32(opt.Data[0:4], tsval)
	binary.BigEndian.PutUint32(opt.Data[4:8], tsecr)
	return true
}

// SACK returns the blocks of the SACK option. The option is well formed
// if its data is a nonzero multiple of 8 bytes.
func (o Options) SACK() (blocks SACKBlocks, ok bool) {
	opt, ok := o.Find(OptSACK)
	if !ok || len(opt.Data) == 0 || len(opt.Data)%8 != 0 {
		return nil, false
	}
	return SACKBlocks(opt.Data), true
}

// SACKBlock is one SACK block: the sequence numbers of the first byte of
// a received range and of the byte just after it.
type SACKBlock struct {
	Left, Right uint32
}

// SACKBlocks is a view of the SACK option data (8 bytes per block). Its
// methods take an index in [0, Len()).
type SACKBlocks []byte

// Len returns the number of blocks.
func (s SACKBlocks) Len() int { return len(s) / 8 }

// Block returns block i.
func (s SACKBlocks) Block(i int) SACKBlock {
	b := s[i*8 : i*8+8]
	return SACKBlock{binary.BigEndian.Uint32(b[0:4]), binary.BigEndian.Uint32(b[4:8])}
}

// SetBlock overwrites block i in place (for sequence-number mapping). The
// TCP checksum is not updated.
func (s SACKBlocks) SetBlock(i int, blk SACKBlock) {
	b := s[i*8 : i*8+8]
	binary.BigEndian.PutUint32(b[0:4], blk.Left)
	binary.BigEndian.PutUint32(b[4:8], blk.Right)
}

// AppendOption appends an option of the given kind with data (kind,
// length, data). It does not validate: data longer than 38 bytes cannot
// fit a TCP header, and kinds 0 and 1 carry no length; [AppendTCP] and
// the Parse functions reject such options.
func AppendOption(b []byte, kind uint8, data []byte) []byte {
	b = append(b, kind, uint8(2+len(data)))
	return append(b, data...)
}

// AppendNOP appends a NOP.
func AppendNOP(b []byte) []byte { return append(b, OptNOP) }

// AppendMSS appends an MSS option.
func AppendMSS(b []byte, mss uint16) []byte {
	return append(b, OptMSS, 4, byte(mss>>8), byte(mss))
}

// AppendWindowScale appends a window scale option.
func AppendWindowScale(b []byte, shift uint8) []byte {
	return append(b, OptWindowScale, 3, shift)
}

// AppendSACKPermitted appends a SACK-permitted option.
func AppendSACKPermitted(b []byte) []byte { return append(b, OptSACKPermitted, 2) }

// AppendTimestamps appends a timestamps option.
func AppendTimestamps(b []byte, tsval, tsecr uint32) []byte {
	b = append(b, OptTimestamps, 10)
	b = binary.BigEndian.AppendUint32(b, tsval)
	return binary.BigEndian.AppendUint32(b, tsecr)
}

// AppendSACK appends a SACK option with the given blocks.
func AppendSACK(b []byte, blocks ...SACKBlock) []byte {
	b = append(b, OptSACK, uint8(2+8*len(blocks)))
	for _, blk := range blocks {
		b = binary.BigEndian.AppendUint32(b, blk.Left)
		b = binary.BigEndian.AppendUint32(b, blk.Right)
	}
	return b
}

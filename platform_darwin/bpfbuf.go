package platform_darwin

import (
	"encoding/binary"
	"errors"
)

// A read(2) from /dev/bpf returns a buffer of records, each a struct
// bpf_hdr followed by the captured bytes, padded to BPF_WORDALIGN. On
// Darwin for 64-bit processes the header is
//
//	struct bpf_hdr {
//		struct timeval32 bh_tstamp;  // 0: int32 tv_sec, 4: int32 tv_usec
//		bpf_u_int32      bh_caplen;  // 8
//		bpf_u_int32      bh_datalen; // 12
//		u_short          bh_hdrlen;  // 16: header length incl. padding
//	};
//
// in host byte order (little-endian on every Mac), and BPF_ALIGNMENT is
// sizeof(int32_t). bpfhdr_test.go pins these numbers.
const (
	bpfHdrMinLen  = 18
	bpfAlignment  = 4
	bpfCaplenOff  = 8
	bpfDatalenOff = 12
	bpfHdrlenOff  = 16
)

// Errors of the BPF buffer parser. The reader counts and drops the rest of
// a buffer that fails; the kernel never produces one, so any of these
// means a layout mismatch worth a log line.
var (
	errBPFShortHeader = errors.New("bpf: record header truncated")
	errBPFBadHdrlen   = errors.New("bpf: record header length out of range")
	errBPFBadCaplen   = errors.New("bpf: record capture length past the buffer")
)

func bpfWordAlign(n int) int { return (n + bpfAlignment - 1) &^ (bpfAlignment - 1) }

// BPFRecords iterates the records of one read(2) buffer without copying.
type BPFRecords struct {
	buf []byte
	err error
}

// NewBPFRecords starts iterating buf.
func NewBPFRecords(buf []byte) BPFRecords { return BPFRecords{buf: buf} }

// Next returns the captured bytes of the next record (aliasing the buffer)
// and whether the packet was cut short by the snap length. ok is false at
// the end or on the first malformed record (see Err).
func (r *BPFRecords) Next() (data []byte, truncated bool, ok bool) {
	if len(r.buf) == 0 || r.err != nil {
		return nil, false, false
	}
	if len(r.buf) < bpfHdrMinLen {
		r.err = errBPFShortHeader
		return nil, false, false
	}
	caplen := int(binary.LittleEndian.Uint32(r.buf[bpfCaplenOff:]))
	datalen := int(binary.LittleEndian.Uint32(r.buf[bpfDatalenOff:]))
	hdrlen := int(binary.LittleEndian.Uint16(r.buf[bpfHdrlenOff:]))
	if hdrlen < bpfHdrMinLen || hdrlen > len(r.buf) {
		r.err = errBPFBadHdrlen
		return nil, false, false
	}
	if caplen < 0 || caplen > len(r.buf)-hdrlen {
		r.err = errBPFBadCaplen
		return nil, false, false
	}
	data = r.buf[hdrlen : hdrlen+caplen : hdrlen+caplen]
	next := bpfWordAlign(hdrlen + caplen)
	if next >= len(r.buf) {
		r.buf = nil
	} else {
		r.buf = r.buf[next:]
	}
	return data, caplen < datalen, true
}

// Err is the error that stopped the iteration, if any.
func (r *BPFRecords) Err() error { return r.err }

// StripLink returns the IP packet inside a captured frame of the given
// link type, or nil if the frame is not IPv4 or IPv6 or is too short.
// DLT_NULL carries the address family in host byte order; IP's own
// version nibble is what decides here, so the family word is only
// length-checked.
func StripLink(dlt int, frame []byte) []byte {
	l := linkHeaderLen(dlt)
	if l < 0 || len(frame) <= l {
		return nil
	}
	ip := frame[l:]
	switch dlt {
	case DLTEN10MB:
		switch binary.BigEndian.Uint16(frame[12:14]) {
		case 0x0800:
			if ip[0]>>4 != 4 {
				return nil
			}
		case 0x86dd:
			if ip[0]>>4 != 6 {
				return nil
			}
		default:
			return nil
		}
	default:
		if v := ip[0] >> 4; v != 4 && v != 6 {
			return nil
		}
	}
	return ip
}

package platform_windows

import (
	"encoding/binary"
	"errors"
)

// Errors of splitBatch: the driver handed over bytes that are not count
// whole IP packets back to back.
var (
	errBatchTruncated = errors.New("windivert: batch ends inside a packet")
	errBatchVersion   = errors.New("windivert: batch holds a packet that is neither IPv4 nor IPv6")
	errBatchLength    = errors.New("windivert: batch holds a packet with an impossible length field")
	errBatchTrailing  = errors.New("windivert: batch has bytes after its last packet")
)

// splitBatch finds the packets of a WinDivertRecvEx batch: count IP
// packets packed without gaps into b, each as long as its IPv4 total
// length or IPv6 header plus payload length says. It appends count+1
// offsets to offs (packet i is b[offs[i]:offs[i+1]]).
func splitBatch(b []byte, count int, offs []int) ([]int, error) {
	off := 0
	offs = append(offs, 0)
	for range count {
		rest := b[off:]
		if len(rest) < 1 {
			return offs, errBatchTruncated
		}
		var n int
		switch rest[0] >> 4 {
		case 4:
			if len(rest) < 20 {
				return offs, errBatchTruncated
			}
			n = int(binary.BigEndian.Uint16(rest[2:4]))
			if n < 20 || n < int(rest[0]&0x0f)*4 {
				return offs, errBatchLength
			}
		case 6:
			if len(rest) < 40 {
				return offs, errBatchTruncated
			}
			// A zero payload length is a jumbogram (RFC 2675); WinDivert
			// never captures one (MTUMax), so it is malformed here.
			pl := int(binary.BigEndian.Uint16(rest[4:6]))
			if pl == 0 && rest[6] == 0 {
				return offs, errBatchLength
			}
			n = 40 + pl
		default:
			return offs, errBatchVersion
		}
		if n > len(rest) {
			return offs, errBatchTruncated
		}
		off += n
		offs = append(offs, off)
	}
	if off != len(b) {
		return offs, errBatchTrailing
	}
	return offs, nil
}

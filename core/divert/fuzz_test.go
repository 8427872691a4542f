package divert

import (
	"encoding/binary"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/core/packet"
)

// FuzzProcess feeds arbitrary packets, in both directions and at moving
// times, to an engine that has a connection in every phase: nothing may
// panic, and every packet the engine emits must parse with a valid
// checksum (unless it is a rewrite of a packet whose checksum was
// already wrong).
func FuzzProcess(f *testing.F) {
	t := &testing.T{}
	add := func(dir byte, b []byte) []byte {
		rec := []byte{dir, 0, 0}
		binary.BigEndian.PutUint16(rec[1:], uint16(len(b)))
		return append(rec, b...)
	}
	var seed []byte
	seed = append(seed, add(0, seg(t, addrA, addrB, 1000, 0, packet.SYN, synOpts(), nil))...)
	synAck := seg(t, addrB, addrA, 5000, 1001, packet.SYN|packet.ACK, append(synOpts(), 69, 4, 0x01, 0x23), nil)
	seed = append(seed, add(1, synAck)...)
	seed = append(seed, add(0, seg(t, addrA, addrB, 1001, 5001, packet.ACK, nil, nil))...)
	seed = append(seed, add(1, seg(t, addrB, addrA, 5001, 1080, packet.ACK|packet.PSH, nil, []byte{0x09, 0x71, 0x05, 0xe0, 0, 0, 0, 74}))...)
	seed = append(seed, add(0, seg(t, addrA, addrB, 1001, 5001, packet.ACK|packet.PSH, nil, []byte("data")))...)
	f.Add(seed)
	f.Add(add(1, seg(t, addrB, addrA, 1, 0, packet.SYN, append(synOpts(), 69, 3, 0x23, 0), nil)))
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := New(Config{HandshakeTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		now := t0
		for len(in) >= 3 {
			dir := Direction(in[0] & 1)
			n := int(binary.BigEndian.Uint16(in[1:3]))
			in = in[3:]
			if n > len(in) {
				n = len(in)
			}
			buf := append(make([]byte, 0, n+256), in[:n]...)
			in = in[n:]
			now = now.Add(time.Duration(dir) * 300 * time.Millisecond)
			inValid := false
			if q, err := packet.Parse(buf); err == nil && q.VerifyTCPChecksum() {
				inValid = true
			}
			pk := []Packet{{Dir: dir, Buf: buf}}
			out := e.Process(pk, nil, now)
			// A rewrite keeps a corrupt checksum corrupt (the stack must
			// still drop such a packet); everything else must be valid.
			if pk[0].Modified && inValid {
				out = append(out, pk[0])
			}
			for _, p := range out {
				q, err := packet.Parse(p.Buf)
				if err != nil || !q.VerifyTCPChecksum() {
					t.Fatalf("engine emitted a broken packet: %v", err)
				}
			}
		}
		e.Process(nil, nil, now.Add(time.Hour))
		e.Close()
	})
}

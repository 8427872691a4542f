package redirect

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/core/packet"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

// FuzzHook feeds arbitrary packets in both directions, at moving times,
// to a hook with resumption on: nothing may panic, every packet it
// changes must parse with a valid checksum, and outcomes can be taken
// without blocking.
func FuzzHook(f *testing.F) {
	t := &testing.T{}
	rec := func(dir byte, b []byte) []byte {
		r := []byte{dir, 0, 0}
		binary.BigEndian.PutUint16(r[1:], uint16(len(b)))
		return append(r, b...)
	}
	var seed []byte
	seed = append(seed, rec(0, seg(t, addrA, addrB, 1000, 0, packet.SYN, linuxSYNOpts(), nil))...)
	seed = append(seed, rec(1, seg(t, addrB, addrA, 9000, 1001, packet.SYN|packet.ACK, append(linuxSYNOpts(), 69, 4, 0x01, 0x23, 1, 1), nil))...)
	seed = append(seed, rec(0, seg(t, addrA, addrB, 1001, 9001, packet.ACK, nil, nil))...)
	seed = append(seed, rec(1, seg(t, addrB, addrA, 9001, 1001, packet.ACK, nil, []byte("init2")))...)
	f.Add(seed)
	f.Add(rec(1, seg(t, addrB, addrA, 1, 0, packet.SYN, append(linuxSYNOpts(), 69, 3, 0x23, 0), []byte("syn data"))))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := NewHook(HookConfig{Policy: defaultPolicyResume(), Cache: tcpcrypt.NewCache(4), MaxEntries: 8, Expiry: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		now := t0
		for len(in) >= 3 {
			dir := Direction(in[0] & 1)
			n := int(binary.BigEndian.Uint16(in[1:3]))
			in = in[3:]
			n = min(n, len(in))
			buf := append(make([]byte, 0, n+64), in[:n]...)
			in = in[n:]
			now = now.Add(time.Duration(in0(in)) * 100 * time.Millisecond)
			valid := false
			if q, err := packet.Parse(buf); err == nil && q.VerifyTCPChecksum() {
				valid = true
			}
			out, v := h.Process(buf, dir, now)
			if v.Action == Modified && valid {
				if q, err := packet.Parse(out); err != nil || !q.VerifyTCPChecksum() {
					t.Fatalf("hook emitted a broken packet: %v", err)
				}
			}
			if q, err := packet.Parse(out); err == nil && q.HasTCP() {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				o, _ := h.Wait(ctx, q.Src(), q.Dst())
				o.Zero()
			}
		}
		h.Close()
	})
}

func in0(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0] & 3
}

package platform_windows

import (
	"encoding/binary"
	"errors"
	"testing"
)

func ipv4Packet(n int) []byte {
	b := make([]byte, n)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(n))
	b[9] = 6
	return b
}

func ipv6Packet(payload int) []byte {
	b := make([]byte, 40+payload)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(payload))
	b[6] = 6
	return b
}

func TestSplitBatch(t *testing.T) {
	var batch []byte
	pkts := [][]byte{ipv4Packet(40), ipv6Packet(20), ipv4Packet(1500), ipv6Packet(0), ipv4Packet(20)}
	for _, p := range pkts {
		batch = append(batch, p...)
	}
	offs, err := splitBatch(batch, len(pkts), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []int{0, 40, 100, 1600, 1640, 1660}
	if len(offs) != len(want) {
		t.Fatalf("offsets %v, want %v", offs, want)
	}
	for i := range want {
		if offs[i] != want[i] {
			t.Fatalf("offsets %v, want %v", offs, want)
		}
	}

	for _, c := range []struct {
		name  string
		b     []byte
		count int
		err   error
	}{
		{"empty but one expected", nil, 1, errBatchTruncated},
		{"short ipv4 header", ipv4Packet(40)[:10], 1, errBatchTruncated},
		{"ipv4 longer than the batch", ipv4Packet(60)[:50], 1, errBatchTruncated},
		{"ipv4 total length below header", func() []byte { b := ipv4Packet(40); b[3] = 10; return b }(), 1, errBatchLength},
		{"ipv4 total length below IHL", func() []byte { b := ipv4Packet(40); b[0] = 0x4f; return b }(), 1, errBatchLength},
		{"version 5", []byte{0x50, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 1, errBatchVersion},
		{"trailing bytes", append(ipv4Packet(20), 0), 1, errBatchTrailing},
		{"short ipv6", ipv6Packet(0)[:39], 1, errBatchTruncated},
	} {
		if _, err := splitBatch(c.b, c.count, nil); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
	// A zero-payload IPv6 packet with a hop-by-hop header is a jumbogram.
	jb := ipv6Packet(0)
	jb[6] = 0
	if _, err := splitBatch(jb, 1, nil); !errors.Is(err, errBatchLength) {
		t.Errorf("jumbogram: %v", err)
	}
}

func TestSplitBatchAllocs(t *testing.T) {
	batch := append(ipv4Packet(40), ipv6Packet(20)...)
	offs := make([]int, 0, BatchMax+1)
	if n := testing.AllocsPerRun(100, func() { offs, _ = splitBatch(batch, 2, offs[:0]) }); n != 0 {
		t.Errorf("%v allocations per batch", n)
	}
}

// FuzzSplitBatch: any bytes and count give offsets that stay inside the
// batch and increase, or an error; never a panic.
func FuzzSplitBatch(f *testing.F) {
	f.Add(append(ipv4Packet(40), ipv6Packet(20)...), 2)
	f.Add(ipv4Packet(20), 1)
	f.Add([]byte{0x60}, 1)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, b []byte, count int) {
		count %= BatchMax + 1
		if count < 0 {
			count = -count
		}
		offs, err := splitBatch(b, count, nil)
		for i := 1; i < len(offs); i++ {
			if offs[i] <= offs[i-1] || offs[i] > len(b) {
				t.Fatalf("offsets %v for %d bytes", offs, len(b))
			}
		}
		if err == nil && (len(offs) != count+1 || offs[count] != len(b)) {
			t.Fatalf("accepted %d bytes as %d packets: %v", len(b), count, offs)
		}
	})
}

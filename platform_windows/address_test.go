package platform_windows

import (
	"bytes"
	"encoding/hex"
	"testing"
	"unsafe"
)

// TestAddressLayout checks the Go struct against WINDIVERT_ADDRESS's
// documented offsets: the driver writes arrays of them into our memory.
func TestAddressLayout(t *testing.T) {
	var a Address
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof", unsafe.Sizeof(a), 80},
		{"alignof", unsafe.Alignof(a), 8},
		{"Timestamp", unsafe.Offsetof(a.Timestamp), 0},
		{"bit field", unsafe.Offsetof(a.bits), 8},
		{"Reserved2", unsafe.Offsetof(a.reserved2), 12},
		{"union", unsafe.Offsetof(a.data), 16},
		{"union size", unsafe.Sizeof(a.data), 64},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	// Arrays are packed with no padding (batches are arrays).
	var arr [2]Address
	if d := uintptr(unsafe.Pointer(&arr[1])) - uintptr(unsafe.Pointer(&arr[0])); d != 80 {
		t.Errorf("array stride %d, want 80", d)
	}
}

// TestAddressBits sets each flag alone and checks the exact bytes the
// driver would read: bit fields are allocated from the low bit of the
// little-endian UINT32 at offset 8.
func TestAddressBits(t *testing.T) {
	for _, c := range []struct {
		name  string
		set   func(*Address)
		get   func(*Address) bool
		off   int // byte offset in the 80-byte form
		value byte
	}{
		{"Sniffed", func(a *Address) { a.SetSniffed(true) }, (*Address).Sniffed, 10, 0x01},
		{"Outbound", func(a *Address) { a.SetOutbound(true) }, (*Address).Outbound, 10, 0x02},
		{"Loopback", func(a *Address) { a.SetLoopback(true) }, (*Address).Loopback, 10, 0x04},
		{"Impostor", func(a *Address) { a.SetImpostor(true) }, (*Address).Impostor, 10, 0x08},
		{"IPv6", func(a *Address) { a.SetIPv6(true) }, (*Address).IPv6, 10, 0x10},
		{"IPChecksum", func(a *Address) { a.SetIPChecksum(true) }, (*Address).IPChecksum, 10, 0x20},
		{"TCPChecksum", func(a *Address) { a.SetTCPChecksum(true) }, (*Address).TCPChecksum, 10, 0x40},
		{"UDPChecksum", func(a *Address) { a.SetUDPChecksum(true) }, (*Address).UDPChecksum, 10, 0x80},
	} {
		var a Address
		c.set(&a)
		b, _ := a.MarshalBinary()
		want := make([]byte, 80)
		want[c.off] = c.value
		if !bytes.Equal(b, want) {
			t.Errorf("%s: bytes\n%s\nwant\n%s", c.name, hex.Dump(b), hex.Dump(want))
		}
		if !c.get(&a) {
			t.Errorf("%s: getter false after set", c.name)
		}
		// The in-memory form is the same bytes (what the driver sees).
		if mem := unsafe.Slice((*byte)(unsafe.Pointer(&a)), 80); !bytes.Equal(mem, want) {
			t.Errorf("%s: memory\n%s", c.name, hex.Dump(mem))
		}
	}
}

// TestAddressDecode decodes an address as the driver writes it for an
// inbound IPv6 TCP packet on interface 7.5 whose checksums the NIC
// checked, captured at 0x0102030405060708.
func TestAddressDecode(t *testing.T) {
	raw, _ := hex.DecodeString("" +
		"0807060504030201" + // Timestamp, little-endian
		"0000700000000000" + // Layer 0, Event 0, bits 20 (IPv6), 21, 22 (checksums); Reserved2
		"0700000005000000" + // Network.IfIdx 7, SubIfIdx 5
		"0000000000000000000000000000000000000000000000000000000000000000" +
		"000000000000000000000000000000000000000000000000")
	var a Address
	if err := a.UnmarshalBinary(raw); err != nil {
		t.Fatal(err)
	}
	if a.Timestamp != 0x0102030405060708 || a.Layer() != LayerNetwork || a.Event() != EventNetworkPacket {
		t.Errorf("timestamp/layer/event: %#x %d %d", a.Timestamp, a.Layer(), a.Event())
	}
	if a.Outbound() || a.Loopback() || a.Impostor() || a.Sniffed() || a.UDPChecksum() {
		t.Error("unexpected flag set")
	}
	if !a.IPv6() || !a.IPChecksum() || !a.TCPChecksum() {
		t.Error("IPv6/IPChecksum/TCPChecksum not set")
	}
	if i, s := a.Interface(); i != 7 || s != 5 {
		t.Errorf("interface %d.%d, want 7.5", i, s)
	}
	// Round trip, and the memory form matches.
	back, _ := a.MarshalBinary()
	if !bytes.Equal(back, raw) {
		t.Errorf("round trip:\n%s", hex.Dump(back))
	}
	if mem := unsafe.Slice((*byte)(unsafe.Pointer(&a)), 80); !bytes.Equal(mem, raw) {
		t.Errorf("memory form:\n%s", hex.Dump(mem))
	}
	if err := a.UnmarshalBinary(raw[:79]); err == nil {
		t.Error("79 bytes accepted")
	}
}

func TestAddressLayerEventClearing(t *testing.T) {
	var a Address
	a.SetOutbound(true)
	a.SetLayer(LayerReflect)
	a.SetEvent(9)
	a.SetLayer(LayerFlow)
	if a.Layer() != LayerFlow || a.Event() != 9 || !a.Outbound() {
		t.Errorf("layer %d event %d outbound %v", a.Layer(), a.Event(), a.Outbound())
	}
	a.SetOutbound(false)
	if a.Outbound() || a.bits != 0x0902 {
		t.Errorf("bits %#x", a.bits)
	}
}

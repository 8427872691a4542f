package platform_linux

import (
	"encoding/binary"
	"errors"
	"testing"
)

// packetMsg builds an NFQNL_MSG_PACKET message body (nfgenmsg and
// attributes) as the kernel sends it.
func packetMsg(id uint32, hook uint8, mark, skbInfo, capLen uint32, payload []byte) []byte {
	b := []byte{2, 0, 0, 7} // AF_INET, version 0, queue 7
	hdr := binary.BigEndian.AppendUint32(nil, id)
	hdr = append(hdr, 0x08, 0x00, hook)
	b = appendAttr(b, nfqaPacketHdr, hdr)
	if mark != 0 {
		b = appendAttr(b, nfqaMark, binary.BigEndian.AppendUint32(nil, mark))
	}
	b = appendAttr(b, 5, []byte{0, 0, 0, 2}) // NFQA_IFINDEX_INDEV: ignored
	if skbInfo != 0 {
		b = appendAttr(b, nfqaSkbInfo, binary.BigEndian.AppendUint32(nil, skbInfo))
	}
	if capLen != 0 {
		b = appendAttr(b, nfqaCapLen, binary.BigEndian.AppendUint32(nil, capLen))
	}
	if payload != nil {
		b = appendAttr(b, nfqaPayload|0x4000, payload) // byte-order flag is masked off
	}
	return b
}

func TestParsePacketMsg(t *testing.T) {
	pl := []byte("\x45\x00\x00\x15 an IP packet, 21 bytes!")[:21]
	m := packetMsg(0xdeadbeef, 3, 0x0c000000, nfqaSkbGSO|nfqaSkbCsumNotReady, 0, pl)
	p, err := parsePacketMsg(m)
	if err != nil {
		t.Fatal(err)
	}
	if p.id != 0xdeadbeef || p.hook != 3 || p.mark != 0x0c000000 || p.skbInfo != nfqaSkbGSO|nfqaSkbCsumNotReady {
		t.Fatalf("parsed %+v", p)
	}
	if !p.hasPayload || string(m[p.payStart:p.payEnd]) != string(pl) || p.truncated() {
		t.Fatalf("payload %q truncated=%v", m[p.payStart:p.payEnd], p.truncated())
	}
	// The payload is the last attribute: what follows it in a slot is
	// free for the engine to grow the packet into.
	if p.payEnd != len(m)-(4-len(pl)%4)%4 {
		t.Fatalf("payload ends at %d of %d", p.payEnd, len(m))
	}

	if p, _ := parsePacketMsg(packetMsg(1, 1, 0, 0, 70000, pl)); !p.truncated() {
		t.Fatal("a packet with NFQA_CAP_LEN beyond its payload is not reported truncated")
	}

	for name, bad := range map[string][]byte{
		"empty":             nil,
		"no header":         appendAttr([]byte{2, 0, 0, 0}, nfqaMark, []byte{0, 0, 0, 1}),
		"short header":      appendAttr([]byte{2, 0, 0, 0}, nfqaPacketHdr, []byte{0, 0, 0, 1}),
		"attr overrun":      append(packetMsg(1, 1, 0, 0, 0, nil), 0xff, 0x00, 10, 0),
		"attr too short":    append(packetMsg(1, 1, 0, 0, 0, nil), 2, 0, 10, 0),
		"truncated attr hd": append(packetMsg(1, 1, 0, 0, 0, nil), 8, 0),
		"short mark":        appendAttr(packetMsg(1, 1, 0, 0, 0, nil), nfqaMark, []byte{1}),
	} {
		p, err := parsePacketMsg(bad)
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
		// Without the header no verdict can name the packet.
		hasID := !errors.Is(err, errNoID)
		if want := name != "empty" && name != "no header" && name != "short header"; hasID != want {
			t.Errorf("%s: has id %v (id %d), want %v", name, hasID, p.id, want)
		}
	}
}

// FuzzParsePacketMsg: no input crashes the parser, and what it returns
// stays inside the message.
func FuzzParsePacketMsg(f *testing.F) {
	f.Add(packetMsg(7, 3, 0x0c000000, nfqaSkbGSO, 0, []byte("\x45\x00\x00\x14abcdefghijklmnop")))
	f.Add(packetMsg(7, 1, 0, 0, 65600, make([]byte, 100)))
	f.Add([]byte{2, 0, 0, 0, 4, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePacketMsg(b)
		if err != nil {
			return
		}
		if p.hasPayload && (p.payStart < 0 || p.payStart > p.payEnd || p.payEnd > len(b)) {
			t.Fatalf("payload [%d, %d) outside a %d-byte message", p.payStart, p.payEnd, len(b))
		}
	})
}

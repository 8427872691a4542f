//go:build linux

package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/core/packet"
)

// optENO is the TCP-ENO option kind (RFC 8547).
const optENO = 69

// capture is tcpdump recording one link of a namespace.
type capture struct {
	n    *node
	p    *proc
	file string
}

// startCapture records the TCP segments to or from port on link.
func (n *node) startCapture(link string, port int) *capture {
	n.t.Helper()
	c := &capture{n: n, file: filepath.Join(n.dir, fmt.Sprintf("%s-%d.pcap", link, time.Now().UnixNano()))}
	c.p = n.start("tcpdump-"+link, "tcpdump", "-i", link, "-n", "-s", "0", "-U", "-B", "8192", "-w", c.file,
		fmt.Sprintf("tcp port %d", port))
	if !waitFor(10*time.Second, func() bool { return strings.Contains(c.p.output(), "listening on") || c.p.exited() }) || c.p.exited() {
		n.t.Fatalf("tcpdump on %s in %s did not start:\n%s", link, n.name, c.p.output())
	}
	return c
}

// wire is what a capture saw.
type wire struct {
	where    string
	raw      []byte // the pcap file
	packets  int
	payload  int // TCP payload bytes
	syns     int // SYN and SYN-ACK segments
	synsENO  int // ... carrying the ENO option
	dropped  string
	linkType uint32
}

// stop ends the capture and reads it.
func (c *capture) stop() wire {
	t := c.n.t
	t.Helper()
	c.p.cmd.Process.Signal(syscall.SIGINT)
	if err := c.p.wait(10 * time.Second); err != nil {
		t.Logf("tcpdump: %v", err)
	}
	raw, err := os.ReadFile(c.file)
	if err != nil {
		t.Fatalf("reading the capture: %v", err)
	}
	w, err := parsePcap(raw)
	if err != nil {
		t.Fatalf("parsing the capture %s: %v", c.file, err)
	}
	w.where = c.n.name
	for l := range strings.SplitSeq(c.p.output(), "\n") {
		if strings.Contains(l, "dropped by kernel") && !strings.HasPrefix(l, "0 ") {
			w.dropped = l
		}
	}
	return w
}

// count is how often s occurs in the raw capture.
func (w wire) count(s string) int { return bytes.Count(w.raw, []byte(s)) }

// requireCiphertext fails the test if the capture is empty or holds the
// plaintext marker, and checks that the SYNs carried ENO.
func (w wire) requireCiphertext(t *testing.T, marker string) {
	t.Helper()
	if w.packets < 10 || w.payload == 0 {
		t.Errorf("capture in %s saw only %d packets with %d payload bytes: the wire check proves nothing", w.where, w.packets, w.payload)
	}
	if n := w.count(marker); n != 0 {
		t.Errorf("plaintext on the wire: marker %q occurs %d times in the capture in %s", marker, n, w.where)
	}
	if w.synsENO == 0 {
		t.Errorf("capture in %s: none of %d SYNs carries the ENO option", w.where, w.syns)
	}
	if w.dropped != "" {
		t.Logf("capture in %s: %s", w.where, w.dropped)
	}
	t.Logf("wire in %s: %d packets, %d payload bytes, %d/%d SYNs with ENO, marker absent", w.where, w.packets, w.payload, w.synsENO, w.syns)
}

// requirePlaintext checks that the marker is on the wire: the control
// for cases where tcpinc must leave the connection plain.
func (w wire) requirePlaintext(t *testing.T, marker string) {
	t.Helper()
	if n := w.count(marker); n == 0 {
		t.Errorf("expected plain TCP, but marker %q is not in the capture in %s (%d packets)", marker, w.where, w.packets)
	} else {
		t.Logf("wire in %s: plain as expected, marker seen %d times", w.where, n)
	}
}

// parsePcap reads a classic pcap file of Ethernet frames.
func parsePcap(b []byte) (wire, error) {
	w := wire{raw: b}
	if len(b) < 24 {
		return w, fmt.Errorf("pcap file of %d bytes has no header", len(b))
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return w, fmt.Errorf("not a pcap file (magic %x)", b[:4])
	}
	w.linkType = bo.Uint32(b[20:])
	if w.linkType != 1 {
		return w, fmt.Errorf("link type %d, want Ethernet (1)", w.linkType)
	}
	for off := 24; off+16 <= len(b); {
		incl := int(bo.Uint32(b[off+8:]))
		off += 16
		if incl > len(b)-off {
			break // cut short by the SIGINT
		}
		frame := b[off : off+incl]
		off += incl
		if len(frame) < 14 {
			continue
		}
		et := binary.BigEndian.Uint16(frame[12:])
		if et != 0x0800 && et != 0x86dd {
			continue
		}
		pk, err := packet.Parse(frame[14:])
		if err != nil || !pk.HasTCP() {
			continue
		}
		w.packets++
		w.payload += pk.PayloadLen()
		tcp := pk.TCP()
		if tcp.Flags()&packet.SYN != 0 {
			w.syns++
			if tcp.Options().Count(optENO) > 0 {
				w.synsENO++
			}
		}
	}
	return w, nil
}

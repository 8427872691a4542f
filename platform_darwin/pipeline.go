package platform_darwin

import (
	"net/netip"
	"time"

	"tcpinc.dev/tcpinc/core/packet"
	"tcpinc.dev/tcpinc/core/redirect"
)

// The OS-neutral steps between a captured packet and the redirect hook,
// shared by the Darwin read loops and the tests.

// legKey names a wire leg as this host sees it.
type legKey struct{ local, remote netip.AddrPort }

// reflectResult is what became of one reflected segment.
type reflectResult uint8

const (
	reflectInject    reflectResult = iota // send out (the mark is cleared)
	reflectDrop                           // the hook dropped it
	reflectDuplicate                      // a second copy of one just handled
	reflectBad                            // not a marked TCP segment
)

// reflector turns the kernel's marked handshake segments of wire legs
// into the segments that go on the wire.
type reflector struct {
	hook *redirect.Hook
	mark uint8
	dd   dedup
}

// process runs the hook on one reflected IP packet. buf must have room to
// grow by 40 bytes (the hook may add the ENO option). On reflectInject,
// out is the packet to send, with the mark cleared and every checksum
// valid. done says the hook needs no more segments of the leg key (local,
// remote as this host sees them).
func (r *reflector) process(buf []byte, now time.Time) (out []byte, res reflectResult, done bool, key legKey) {
	p, err := packet.Parse(buf)
	if err != nil || !p.HasTCP() || !hasMark(&p, r.mark) {
		return nil, reflectBad, false, legKey{}
	}
	key = legKey{p.Src(), p.Dst()}
	if r.dd.seen(&p, now) {
		return nil, reflectDuplicate, false, key
	}
	out, v := r.hook.Process(buf, redirect.Outbound, now)
	if v.Action == redirect.Drop {
		return nil, reflectDrop, v.Done, key
	}
	q, err := packet.Parse(out)
	if err != nil {
		return nil, reflectBad, v.Done, key
	}
	clearMark(&q)
	return q.Bytes(), reflectInject, v.Done, key
}

// snoop gives the hook one received segment (a SYN-ACK from the real
// interfaces). The kernel has its own copy; the hook only reads it. ok
// is false for a packet that is not TCP.
func snoop(h *redirect.Hook, buf []byte, now time.Time) (done bool, key legKey, ok bool) {
	p, err := packet.Parse(buf)
	if err != nil || !p.HasTCP() {
		return false, legKey{}, false
	}
	_, v := h.Process(buf, redirect.Inbound, now)
	return v.Done, legKey{p.Dst(), p.Src()}, true
}

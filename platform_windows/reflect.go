package platform_windows

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/packet"
)

// Redirect mode reflects packets: an application's outbound SYN to R:rp
// from L:lp leaves as nothing; instead the host receives R:lp → L:P (the
// addresses swapped, the destination port the proxy's), which the proxy's
// listener accepts. Its replies L:P → R:lp are reflected back as R:rp →
// L:lp. Windows routes both halves as ordinary traffic to and from R, so
// neither is loopback and the proxy's listener needs no special address.

var errReflectFamily = errors.New("windivert: reflection between IPv4 and IPv6")

// rewriteFlow sets a TCP packet's addresses and ports and recomputes its
// checksums (IPv4 header and TCP).
func rewriteFlow(buf []byte, src, dst netip.AddrPort) error {
	pk, err := packet.Parse(buf)
	if err != nil || !pk.HasTCP() {
		return fmt.Errorf("windivert: reflecting a packet that is not TCP: %w", err)
	}
	if src.Addr().Is4() != (pk.Version() == 4) || dst.Addr().Is4() != (pk.Version() == 4) {
		return errReflectFamily
	}
	if pk.Version() == 4 {
		ip := pk.IPv4()
		if err := ip.SetSrc(src.Addr()); err != nil {
			return err
		}
		if err := ip.SetDst(dst.Addr()); err != nil {
			return err
		}
		ip.UpdateChecksum()
	} else {
		ip := pk.IPv6()
		if err := ip.SetSrc(src.Addr()); err != nil {
			return err
		}
		if err := ip.SetDst(dst.Addr()); err != nil {
			return err
		}
	}
	tcp := pk.TCP()
	tcp.SetSrcPort(src.Port())
	tcp.SetDstPort(dst.Port())
	pk.UpdateTCPChecksum()
	return nil
}

// PortRange of the redirect proxy: its listener and its own outbound
// (wire-leg) sockets bind ports from it, so that the WinDivert filter can
// leave every other inbound packet alone.
const (
	DefaultProxyPortLo = 44300
	DefaultProxyPortHi = 44999
)

// ownPorts are the local ports of the proxy's own sockets: packets with
// one of them are wire legs (the SYN hook's business), never applications'
// connections to reflect. An application that binds a port of the range
// is not mistaken for the proxy: only ports the proxy bound are in the set.
type ownPorts struct {
	mu     sync.Mutex
	lo, hi uint16
	ports  map[uint16]struct{}
	rand   *rand.Rand
}

func newOwnPorts(lo, hi uint16) *ownPorts {
	return &ownPorts{lo: lo, hi: hi, ports: make(map[uint16]struct{}),
		rand: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x7463))}
}

// take picks a free port of the range (not taken by the proxy; the OS
// still decides whether another socket holds it) and marks it taken.
func (o *ownPorts) take(except uint16) (uint16, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := int(o.hi) - int(o.lo) + 1
	start := o.rand.IntN(n)
	for i := range n {
		p := o.lo + uint16((start+i)%n)
		if _, used := o.ports[p]; !used && p != except {
			o.ports[p] = struct{}{}
			return p, true
		}
	}
	return 0, false
}

func (o *ownPorts) add(p uint16) {
	o.mu.Lock()
	o.ports[p] = struct{}{}
	o.mu.Unlock()
}

func (o *ownPorts) release(p uint16) {
	o.mu.Lock()
	delete(o.ports, p)
	o.mu.Unlock()
}

func (o *ownPorts) has(p uint16) bool {
	o.mu.Lock()
	_, ok := o.ports[p]
	o.mu.Unlock()
	return ok
}

func (o *ownPorts) inRange(p uint16) bool { return p >= o.lo && p <= o.hi }

// RedirectFilter is the WinDivert filter of redirect mode: every TCP
// packet that is not loopback and not excluded, as in divert mode with
// one worker. Outbound: applications' SYNs to hold and reflect, the
// packets of reflected connections, the proxy's wire legs. Inbound: peers'
// SYNs to hold and redirect, and the packets of redirected connections,
// which carry the servers' ports, so no narrower filter can name them.
// Everything else takes the fast path.
func RedirectFilter(p *core.Policy) (string, error) {
	return DivertFilter(p, 0, 1)
}

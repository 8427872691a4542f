// Package core holds what every capture backend shares: the contract a
// platform backend offers the service (Backend), the description of one
// connection (ConnInfo), the policy a backend applies to new connections
// (Policy), and counter flattening for the control API.
//
// Its subpackages are the platform-neutral protocol and engines: packet,
// eno, tcpcrypt, divert (packet rewriting) and redirect (stream proxy).
// Nothing under core imports anything OS-specific.
package core

import (
	"context"
	"net/netip"
	"time"

	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

// Mode is how a backend captures connections.
type Mode string

const (
	// ModeDivert rewrites the kernel's packets (NFQUEUE, WinDivert).
	ModeDivert Mode = "divert"
	// ModeRedirect proxies the kernel's streams through a local proxy,
	// with a packet hook for the ENO option in SYN segments.
	ModeRedirect Mode = "redirect"
)

// Backend is a running capture backend of one mode on one platform, as
// the service drives it. Every method may be called concurrently with
// Run and with each other.
type Backend interface {
	// Mode is the capture mode this backend implements.
	Mode() Mode
	// Run captures until ctx is done or a fatal error occurs. It is
	// called once.
	Run(ctx context.Context) error
	// Close stops capturing: encrypted connections are reset (they
	// cannot continue without the backend), capture rules are removed
	// and every secret is erased. It is idempotent.
	Close() error
	// Conns describes every connection the backend tracks.
	Conns() []ConnInfo
	// Lookup describes the connection between a local and a remote
	// address (as this host sees them), if the backend tracks it.
	Lookup(local, remote netip.AddrPort) (ConnInfo, bool)
	// Counters are the backend's counters, flattened to snake_case
	// names (see Flatten).
	Counters() map[string]uint64
	// Apply changes the policy for connections opened from now on;
	// connections already encrypted keep their keys and keep working.
	Apply(Policy) error
}

// Policy is what a backend does with new connections. The zero value
// disables encryption; DefaultPolicy is the service's default.
type Policy struct {
	// Enabled: when false, new connections are left plain (no ENO
	// option is sent or answered); established ones are not touched.
	Enabled bool
	// ExcludePorts: connections with one of these ports at either end
	// are left plain.
	ExcludePorts []uint16
	// ExcludeAddrs: connections with an address in one of these
	// prefixes at either end are left plain. Loopback always is.
	ExcludeAddrs []netip.Prefix
	// TEPs in increasing order of preference; empty means every TEP the
	// engine supports, X25519 preferred.
	TEPs []eno.TEP
	// AEADs, most preferred first; empty means tcpcrypt.DefaultAEADs.
	AEADs []tcpcrypt.AEADID
	// Resumption allows session resumption (RFC 8548 §3.5).
	Resumption bool
	// AAMandatory is TCP_ENO_AA_MANDATORY for every connection: ENO is
	// disabled unless the peer sets the application-aware bit.
	AAMandatory bool
}

// DefaultPolicy is on, every TEP and AEAD, resumption on, no exclusions.
func DefaultPolicy() Policy { return Policy{Enabled: true, Resumption: true} }

// Excluded reports whether a connection between a and b is left plain by
// the policy's exclusions (loopback always is).
func (p *Policy) Excluded(a, b netip.AddrPort) bool {
	for _, ap := range [2]netip.AddrPort{a, b} {
		addr := ap.Addr().Unmap()
		if addr.IsLoopback() {
			return true
		}
		for _, pfx := range p.ExcludeAddrs {
			if unmapPrefix(pfx).Contains(addr) {
				return true
			}
		}
		for _, port := range p.ExcludePorts {
			if ap.Port() == port {
				return true
			}
		}
	}
	return false
}

// unmapPrefix turns an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) into
// the IPv4 prefix it denotes, since addresses are compared unmapped.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// ConnInfo describes one connection a backend tracks. Nothing in it is
// secret: the session ID is public by design (RFC 8547 §5.1).
type ConnInfo struct {
	Mode          Mode
	Local, Remote netip.AddrPort
	State         string // negotiating, key-exchange, encrypted, plain, closing
	Role          eno.Role
	TEP           eno.TEP
	NegTEP        byte // the negotiated TEP suboption byte, v bit included
	AEAD          tcpcrypt.AEADID
	SessionID     []byte // nil unless encrypted
	Resumed       bool
	SelfGOpt      byte // this host's global suboption
	PeerGOpt      byte // the peer's global suboption
	PlainReason   eno.Reason
	BytesOut      uint64 // application bytes encrypted
	BytesIn       uint64 // application bytes decrypted
	Created       time.Time
}

package simnet

import (
	"fmt"
	"net/netip"
	"time"

	"tcpinc.dev/tcpinc/core/divert"
)

// Engine is what sits between a host's stack and the link
// (core/divert.Engine satisfies it).
//
// The network calls an engine only from its driver goroutine, never
// concurrently, and always with simulated time.
type Engine interface {
	// Process decides on a batch of captured packets (setting Verdict,
	// possibly rewriting Buf in place or growing it within cap) and
	// appends any packets it wants to inject (each with Dir set) to out,
	// returning it.
	Process(pkts []divert.Packet, out []divert.Packet, now time.Time) []divert.Packet
	// NextDeadline is when the engine next wants Process to be called
	// with no packets (zero = never).
	NextDeadline() time.Time
}

// HostID names one of the two hosts.
type HostID uint8

const (
	// A is the host that usually dials; it is the inside of the NAT.
	A HostID = iota
	// B is the host that usually listens.
	B
)

func (h HostID) String() string {
	switch h {
	case A:
		return "A"
	case B:
		return "B"
	}
	return fmt.Sprintf("HostID(%d)", uint8(h))
}

// Peer returns the other host.
func (h HostID) Peer() HostID { return 1 - h }

// Host addresses. They exist only inside the process.
var (
	AddrA4 = netip.MustParseAddr("10.99.0.1")
	AddrB4 = netip.MustParseAddr("10.99.0.2")
	AddrA6 = netip.MustParseAddr("fd00::1")
	AddrB6 = netip.MustParseAddr("fd00::2")
	// NATAddr4 and NATAddr6 are the default public addresses of the NAT.
	NATAddr4 = netip.MustParseAddr("10.99.0.100")
	NATAddr6 = netip.MustParseAddr("fd00::100")
)

// DefaultMTU is the link MTU unless Config.MTU says otherwise.
const DefaultMTU = 1500

// DefaultBandwidth is the link rate unless LinkConfig.Bandwidth says
// otherwise: 1 Gbit/s.
const DefaultBandwidth = 1_000_000_000

// Config describes a network. The zero value is a clean 1500-byte link
// between two hosts without tcpinc and with a random seed.
type Config struct {
	// Seed drives every random decision of the link and the stacks'
	// random sources. Zero picks a random seed. The -simnet.seed flag and
	// the TCPINC_SIM_SEED environment variable override it, so that a
	// failure (which always reports the seed) can be replayed.
	Seed uint64
	// MTU of both NICs and of the link (default 1500). Packets larger
	// than the MTU are dropped on the link unless AllowOversize is set.
	MTU int
	// AllowOversize lets packets larger than the MTU cross the link.
	AllowOversize bool
	// BufferCap is the capacity of every packet buffer handed to an
	// engine, which may grow packets up to it (default MTU+256).
	BufferCap int

	// AtoB and BtoA are the impairments of each direction of the link.
	AtoB, BtoA LinkConfig
	// NAT, if set, puts A behind a network address translator.
	NAT *NATConfig

	// EngineA and EngineB sit between each host's stack and the link;
	// nil is a host without tcpinc.
	EngineA, EngineB Engine
	// NoPacketChecks turns off the check that every packet an engine
	// rewrote (Modified) or injected parses and has correct checksums.
	NoPacketChecks bool

	// Taps see every packet at every tap point, on the driver goroutine.
	Taps []Tap
	// Capture records a copy of every packet sent on the link, for
	// WireContains and Captured. It costs memory proportional to the
	// traffic.
	Capture bool

	// DisableSACK turns off SACK in both stacks (it is on by default,
	// as in every mainstream kernel).
	DisableSACK bool
	// IdleGrace is how long, in real time, the network must stay idle
	// before simulated time jumps to the next stack timer (default
	// 2ms, 5ms under the race detector). Shorter runs faster but risks firing a retransmission timer
	// while a stack goroutine is still about to send.
	IdleGrace time.Duration
}

// LinkConfig is the impairment of one direction of the link. Packets go
// through the middleboxes (option stripping, MSS clamping, resegmenting,
// in that order; the NAT sits next to A), then loss, duplication,
// reordering and delay. Probabilities are fractions in [0, 1].
type LinkConfig struct {
	// Loss is the probability that a packet is dropped.
	Loss float64
	// Duplicate is the probability that a packet is delivered twice.
	Duplicate float64
	// Reorder is the probability that a packet is held back and
	// delivered after ReorderDepth later packets have passed, or after
	// ReorderMaxHold, whichever comes first.
	Reorder        float64
	ReorderDepth   int           // default 3
	ReorderMaxHold time.Duration // default 5ms (simulated)

	// Bandwidth is the link rate in bits per second (default
	// DefaultBandwidth; negative: unlimited). Each packet occupies the
	// link for its serialization time, so packets queue behind each
	// other and simulated time moves while data flows, as TCP's RTT
	// estimation and RACK loss detection need.
	Bandwidth int64

	// Delay is added to every packet, plus a uniformly random extra in
	// [0, Jitter) (jitter can reorder packets too). Simulated time.
	Delay, Jitter time.Duration

	// Split is the probability that a resegmenting middlebox cuts a TCP
	// data segment in two at a random point.
	Split float64
	// Coalesce is the probability that the resegmenting middlebox holds
	// a TCP data segment to merge it with the next one, which happens if
	// that one follows it directly in sequence space within the same
	// flow, with the same flags (PSH aside), ACK and options, and the
	// result fits the MTU. A held segment is released after CoalesceHold
	// (default 1ms, simulated) if nothing arrives.
	Coalesce     float64
	CoalesceHold time.Duration

	// StripOptions removes TCP options, like a middlebox that does not
	// know them.
	StripOptions []OptionStrip
	// ClampMSS, if nonzero, lowers the MSS option of SYNs to this value.
	ClampMSS uint16
}

// OptionStrip removes one TCP option kind.
type OptionStrip struct {
	Kind uint8
	// AllSegments strips the option from every segment; otherwise only
	// from segments with SYN set.
	AllSegments bool
	// Remove deletes the option and shrinks the header; otherwise the
	// option's bytes are overwritten with NOPs.
	Remove bool
}

// NATConfig translates A's connections: packets from A leave with source
// Addr4 (or Addr6) and a port allocated from FirstPort upward, and
// replies are translated back. B sees only the translated peer.
type NATConfig struct {
	Addr4, Addr6 netip.Addr // defaults NATAddr4, NATAddr6
	FirstPort    uint16     // default 40000
}

func (c *Config) withDefaults() Config {
	cfg := *c
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.BufferCap == 0 {
		cfg.BufferCap = cfg.MTU + 256
	}
	if cfg.IdleGrace == 0 {
		cfg.IdleGrace = 2 * time.Millisecond
		if raceEnabled {
			cfg.IdleGrace = 5 * time.Millisecond
		}
	}
	for _, l := range []*LinkConfig{&cfg.AtoB, &cfg.BtoA} {
		if l.Bandwidth == 0 {
			l.Bandwidth = DefaultBandwidth
		}
		if l.ReorderDepth == 0 {
			l.ReorderDepth = 3
		}
		if l.ReorderMaxHold == 0 {
			l.ReorderMaxHold = 5 * time.Millisecond
		}
		if l.CoalesceHold == 0 {
			l.CoalesceHold = time.Millisecond
		}
	}
	if cfg.NAT != nil {
		nat := *cfg.NAT
		if !nat.Addr4.IsValid() {
			nat.Addr4 = NATAddr4
		}
		if !nat.Addr6.IsValid() {
			nat.Addr6 = NATAddr6
		}
		if nat.FirstPort == 0 {
			nat.FirstPort = 40000
		}
		cfg.NAT = &nat
	}
	return cfg
}

func (c *Config) validate() error {
	if c.MTU < 1280 && c.MTU != 0 {
		// IPv6 needs 1280; IPv4 alone could go lower, but both are
		// configured on every NIC.
		return fmt.Errorf("simnet: MTU %d below 1280", c.MTU)
	}
	if c.MTU > 65535 {
		return fmt.Errorf("simnet: MTU %d above 65535", c.MTU)
	}
	if c.BufferCap != 0 && c.BufferCap < c.MTU {
		return fmt.Errorf("simnet: BufferCap %d below MTU %d", c.BufferCap, c.MTU)
	}
	for _, l := range []struct {
		name string
		c    *LinkConfig
	}{{"AtoB", &c.AtoB}, {"BtoA", &c.BtoA}} {
		for _, p := range []struct {
			name string
			v    float64
		}{{"Loss", l.c.Loss}, {"Duplicate", l.c.Duplicate}, {"Reorder", l.c.Reorder}, {"Split", l.c.Split}, {"Coalesce", l.c.Coalesce}} {
			if p.v < 0 || p.v > 1 {
				return fmt.Errorf("simnet: %s.%s = %v, want a probability in [0, 1]", l.name, p.name, p.v)
			}
		}
		if l.c.Delay < 0 || l.c.Jitter < 0 || l.c.ReorderDepth < 0 {
			return fmt.Errorf("simnet: %s: negative delay, jitter or reorder depth", l.name)
		}
	}
	return nil
}

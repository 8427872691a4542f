package divert

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

// Config is the engine's configuration. The zero value is usable: every
// tcpcrypt TEP (X25519 most preferred), the default AEADs, no resumption.
type Config struct {
	// TEPs in increasing order of preference (TCP_ENO_TEPS); empty
	// means DefaultTEPs.
	TEPs []eno.TEP
	// AEADs, most preferred first; empty means tcpcrypt.DefaultAEADs.
	AEADs []tcpcrypt.AEADID
	// Cache enables session resumption when non-nil. It may be shared
	// by several engines (one per worker).
	Cache *tcpcrypt.Cache
	// ResumeNonceLen is the resumption nonce length, 0–8. RFC 8548 §3.5
	// requires 8 unless secret reuse can be ruled out, so 0 means 8 here;
	// use NoResumeNonce for a true zero.
	ResumeNonceLen int

	// MaxConns bounds the connection table. New connections past it are
	// left plain (and counted). 0 means 65536.
	MaxConns int
	// MaxBuffer bounds each connection's buffered bytes per direction
	// (unacknowledged wire bytes on the send side; reassembly and
	// re-delivery on the receive side). 0 means 4 MiB.
	MaxBuffer int
	// HandshakeTimeout bounds the Init1/Init2 exchange; a connection
	// that has not finished it by then is reset. 0 means 10 s.
	HandshakeTimeout time.Duration
	// InitRTO is the first retransmission timeout of an Init message the
	// engine injected; it doubles on each retry. 0 means 250 ms.
	InitRTO time.Duration
	// IdleTimeout expires connections without packets for this long,
	// when the backend calls Sweep. An expired encrypted connection
	// leaves a tombstone for 24 hours that refuses its packets (and
	// resets the local end) rather than let them pass as plaintext.
	// 0 means 2 hours. Plain connections' entries go after a minute.
	IdleTimeout time.Duration
	// TimeWait keeps a closed connection's entry this long, to answer
	// retransmissions. 0 means 30 s.
	TimeWait time.Duration
	// MaxIntegrityFailures: after this many frames in a row fail
	// authentication, the connection is reset (RFC 8548 §3.6 says
	// abort; dropping a segment that no one acknowledged lets a
	// retransmission repair corruption). 0 means 4.
	MaxIntegrityFailures int

	// Ephemerals, if set, supplies ephemeral keys generated ahead of
	// time (a KeyPool's Get), so that a fresh key exchange does not wait
	// for key generation; nil answers mean the engine generates one. It
	// is called with the engine locked and must not block.
	Ephemerals func(tcpcrypt.TEP) *tcpcrypt.Ephemeral

	// Rand is the randomness source for nonces; nil means crypto/rand.
	Rand io.Reader
	// Log receives connection events at debug level and failures at
	// info or warn. nil discards.
	Log *slog.Logger
	// OnEvent, if set, is called synchronously for connection events a
	// backend acts on (a connection became plain: stop capturing it).
	OnEvent func(Event)
}

// NoResumeNonce selects empty resumption nonces; only safe where secret
// reuse (VM cloning, hibernation replay) is impossible.
const NoResumeNonce = -1

// DefaultTEPs in increasing preference: X25519 last, so it wins.
var DefaultTEPs = []eno.TEP{eno.TEPTcpcryptP521, eno.TEPTcpcryptP256, eno.TEPTcpcryptCurve448, eno.TEPTcpcryptCurve25519}

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if len(out.TEPs) == 0 {
		out.TEPs = DefaultTEPs
	}
	for _, t := range out.TEPs {
		if !tcpcrypt.TEP(t).Supported() {
			return out, fmt.Errorf("divert: TEP %v is not a tcpcrypt TEP this engine runs", t)
		}
	}
	if len(out.AEADs) == 0 {
		out.AEADs = tcpcrypt.DefaultAEADs
	}
	if err := (&tcpcrypt.Config{AEADs: out.AEADs}).Validate(); err != nil {
		return out, err
	}
	switch {
	case out.ResumeNonceLen == 0:
		out.ResumeNonceLen = tcpcrypt.MaxResumeNonceLen
	case out.ResumeNonceLen == NoResumeNonce:
		out.ResumeNonceLen = 0
	case out.ResumeNonceLen < 0 || out.ResumeNonceLen > tcpcrypt.MaxResumeNonceLen:
		return out, fmt.Errorf("divert: resumption nonce length %d: allowed 0–8", out.ResumeNonceLen)
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&out.HandshakeTimeout, 10*time.Second)
	def(&out.InitRTO, 250*time.Millisecond)
	def(&out.IdleTimeout, 2*time.Hour)
	def(&out.TimeWait, 30*time.Second)
	if out.MaxConns <= 0 {
		out.MaxConns = 65536
	}
	if out.MaxBuffer <= 0 {
		out.MaxBuffer = 4 << 20
	}
	if out.MaxIntegrityFailures <= 0 {
		out.MaxIntegrityFailures = 4
	}
	if out.Log == nil {
		out.Log = slog.New(slog.DiscardHandler)
	}
	return out, nil
}

// EventKind says what happened to a connection.
type EventKind uint8

const (
	// EventPlain: the connection will stay plain TCP; the backend should
	// stop capturing it (plain TCP must cost nothing after the handshake).
	EventPlain EventKind = iota + 1
	// EventEncrypted: the connection's keys are established.
	EventEncrypted
	// EventClosed: the connection left the table.
	EventClosed
)

func (k EventKind) String() string {
	switch k {
	case EventPlain:
		return "plain"
	case EventEncrypted:
		return "encrypted"
	case EventClosed:
		return "closed"
	}
	return "unknown"
}

// Event reports a connection's change to the backend.
type Event struct {
	Kind   EventKind
	Local  netip.AddrPort
	Remote netip.AddrPort
	// SessionID is set for EventEncrypted (it is not secret). OnEvent
	// runs with the engine locked: it must not call back into it.
	SessionID []byte
}

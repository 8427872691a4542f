package tcpcrypt

import (
	"crypto/rand"
	"fmt"
	"io"
	"slices"
)

// Role is a host's TCP-ENO role in the current connection.
type Role uint8

const (
	RoleA Role = iota // sent b=0; normally the active opener
	RoleB             // sent b=1; normally the passive opener
)

func (r Role) String() string {
	if r == RoleB {
		return "B"
	}
	return "A"
}

// DefaultAEADs is the default AEAD list: the mandatory AES-128-GCM first
// (fast with AES instructions), then ChaCha20-Poly1305 and AES-256-GCM.
var DefaultAEADs = []AEADID{AES128GCM, ChaCha20Poly1305, AES256GCM}

// Config holds one host's tcpcrypt preferences.
type Config struct {
	// AEADs lists the AEADs this host accepts, most preferred first.
	// As A it is the Init1 sym_cipher list (order is irrelevant there);
	// as B it is the preference used to choose Init2's sym_cipher
	// (TCP_CRYPT_ACONF / TCP_CRYPT_BCONF of the API draft, with 2-byte
	// ids). Empty means DefaultAEADs.
	AEADs []AEADID
	// Rand is the randomness source for nonces; nil means crypto/rand.
	Rand io.Reader
}

func (c *Config) aeads() []AEADID {
	if c == nil || len(c.AEADs) == 0 {
		return DefaultAEADs
	}
	return c.AEADs
}

func (c *Config) rand() io.Reader {
	if c == nil || c.Rand == nil {
		return rand.Reader
	}
	return c.Rand
}

// Validate reports configuration errors in terms a user can act on.
func (c *Config) Validate() error {
	for _, id := range c.aeads() {
		if !id.Supported() {
			return fmt.Errorf("tcpcrypt: AEAD %v is not supported; use %v, %v or %v", id, AES128GCM, AES256GCM, ChaCha20Poly1305)
		}
	}
	return nil
}

// Ephemeral fixes a handshake's ephemeral key and nonce. Only tests and
// the vector generator use it; normal handshakes generate both.
type Ephemeral struct {
	Key   *PrivateKey
	Nonce [NonceLen]byte
}

// Handshake runs a fresh key exchange (Init1/Init2) for one host.
// Construct it with NewInitiator (role A) or NewResponder (role B).
type Handshake struct {
	role       Role
	tep        TEP
	cfg        *Config
	transcript []byte
	key        *PrivateKey
	nonce      [NonceLen]byte
	init1      []byte // A: as built; B: as received
}

func newHandshake(cfg *Config, role Role, tep TEP, transcript []byte, eph *Ephemeral) (*Handshake, error) {
	tep &^= ResumeBit
	if !tep.Supported() {
		return nil, fmt.Errorf("tcpcrypt: %w: %v", ErrUnsupportedTEP, tep)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Handshake{role: role, tep: tep, cfg: cfg, transcript: slices.Clone(transcript)}
	if eph != nil {
		if eph.Key == nil || eph.Key.TEP() != tep {
			return nil, fmt.Errorf("tcpcrypt: ephemeral key does not match %v", tep)
		}
		h.key, h.nonce = eph.Key, eph.Nonce
		return h, nil
	}
	var err error
	if h.key, err = GenerateKey(tep, nil); err != nil {
		return nil, fmt.Errorf("tcpcrypt: generate %v key: %w", tep, err)
	}
	if _, err := io.ReadFull(cfg.rand(), h.nonce[:]); err != nil {
		h.Destroy()
		return nil, fmt.Errorf("tcpcrypt: read nonce: %w", err)
	}
	return h, nil
}

// NewInitiator starts A's side of a fresh key exchange for tep, after
// TCP-ENO negotiated it with the given transcript, and builds Init1.
func NewInitiator(cfg *Config, tep TEP, transcript []byte, eph *Ephemeral) (*Handshake, error) {
	h, err := newHandshake(cfg, RoleA, tep, transcript, eph)
	if err != nil {
		return nil, err
	}
	m := Init1{AEADs: cfg.aeads(), NonceA: h.nonce, PubA: h.key.AppendPublic(nil)}
	if h.init1, err = AppendInit1(nil, &m); err != nil {
		h.Destroy()
		return nil, err
	}
	return h, nil
}

// NewResponder starts B's side of a fresh key exchange.
func NewResponder(cfg *Config, tep TEP, transcript []byte, eph *Ephemeral) (*Handshake, error) {
	return newHandshake(cfg, RoleB, tep, transcript, eph)
}

// Role returns the host's role.
func (h *Handshake) Role() Role { return h.role }

// TEP returns the negotiated TEP.
func (h *Handshake) TEP() TEP { return h.tep }

// Init1 returns A's Init1 message, to be sent at the start of A's data
// stream (the segment with its last byte carries PSH).
func (h *Handshake) Init1() []byte { return h.init1 }

// ReadInit1 is B's step: it parses A's complete Init1 (see InitLen),
// chooses the AEAD, and returns Init2 and the session.
func (h *Handshake) ReadInit1(msg []byte) (init2 []byte, s *Session, err error) {
	if h.role != RoleB || h.key == nil {
		return nil, nil, fmt.Errorf("tcpcrypt: ReadInit1 on a handshake that is not B's or is finished")
	}
	// A key exchange cannot be retried: erase the ephemeral key on
	// every path.
	defer h.Destroy()
	m, err := ParseInit1(h.tep, msg)
	if err != nil {
		return nil, nil, err
	}
	aead, ok := chooseAEAD(h.cfg.aeads(), m.AEADs)
	if !ok {
		return nil, nil, ErrNoCommonAEAD
	}
	es, err := h.key.SharedSecret(m.PubA)
	if err != nil {
		return nil, nil, fmt.Errorf("tcpcrypt: Init1 public key: %w", err)
	}
	init2 = AppendInit2(nil, &Init2{AEAD: aead, NonceB: h.nonce, PubB: h.key.AppendPublic(nil)})
	h.init1 = slices.Clone(msg)
	ss := PRK(m.NonceA[:], h.transcript, h.init1, init2, es)
	clear(es)
	s, err = newSession(h.tep, byte(h.tep), aead, &ss, nil, false, false)
	h.Destroy()
	if err != nil {
		return nil, nil, err
	}
	return init2, s, nil
}

// ReadInit2 is A's step: it parses B's complete Init2 and returns the
// session.
func (h *Handshake) ReadInit2(msg []byte) (*Session, error) {
	if h.role != RoleA || h.key == nil {
		return nil, fmt.Errorf("tcpcrypt: ReadInit2 on a handshake that is not A's or is finished")
	}
	defer h.Destroy()
	m, err := ParseInit2(h.tep, msg)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(h.cfg.aeads(), m.AEAD) {
		return nil, fmt.Errorf("%w: %v", ErrAEADNotOffered, m.AEAD)
	}
	es, err := h.key.SharedSecret(m.PubB)
	if err != nil {
		return nil, fmt.Errorf("tcpcrypt: Init2 public key: %w", err)
	}
	ss := PRK(h.nonce[:], h.transcript, h.init1, msg, es)
	clear(es)
	s, err := newSession(h.tep, byte(h.tep), m.AEAD, &ss, nil, true, false)
	h.Destroy()
	return s, err
}

// Destroy erases the ephemeral key and nonce. The handshake cannot be
// used afterwards. Sessions are independent of it.
func (h *Handshake) Destroy() {
	if h.key != nil {
		h.key.Destroy()
		h.key = nil
	}
	clear(h.nonce[:])
}

// chooseAEAD picks B's most preferred AEAD among those A offered.
func chooseAEAD(pref, offered []AEADID) (AEADID, bool) {
	for _, id := range pref {
		if slices.Contains(offered, id) {
			return id, true
		}
	}
	return 0, false
}

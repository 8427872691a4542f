package eno

import "fmt"

// OptionKind is the TCP option kind assigned to TCP-ENO (RFC 8547 §4.1, §11).
const OptionKind = 69

// The experimental encoding used before RFC 8547 was option 253 (or 254)
// with the RFC 6994 ExID 0x454E. It is never negotiated here, but it still
// counts towards the one-ENO-option-per-SYN limit (RFC 8547 §11).
const legacyExID = 0x454e

// Sizes fixed by TCP and by RFC 8547 §4.4.
const (
	// MaxOptionLen is the largest ENO option, kind and length bytes
	// included: the whole TCP options area.
	MaxOptionLen = 40
	// MaxSuboptions bounds the suboptions of one SYN-form option (one byte
	// each at the least).
	MaxSuboptions = MaxOptionLen - 2
	// MaxDataLen is the most suboption data a length byte can announce.
	// Only the last suboption of an option may carry more.
	MaxDataLen = 32
	// MinSessionIDLen is the shortest session ID a TEP may define (§5.1).
	MinSessionIDLen = 33
	// MaxSessionIDLen is the longest session ID this package stores.
	// TEPs MAY define IDs longer than 33 bytes; tcpcrypt's have 33.
	MaxSessionIDLen = 64
)

// Bits of the global suboption (RFC 8547 §4.2, Figure 5).
const (
	GlobalB byte = 0x01 // passive role bit: 1 on passive openers, 0 by default on active ones
	GlobalA byte = 0x02 // application-aware bit
	GlobalZ byte = 0x1c // z1–z3: sent as 0, ignored on receipt
)

// VBit is the high bit of an initial suboption byte (RFC 8547 §4.1,
// Figure 4). On a TEP identifier it announces suboption data; tcpcrypt uses
// it to mark resumption (RFC 8548 §3.5).
const VBit byte = 0x80

// TEP is a TCP encryption protocol identifier: the 7-bit glt value
// 0x20–0x7f of a suboption, without the v bit (RFC 8547 §3, §4.1).
type TEP byte

// Identifiers from the IANA registry "TCP Encryption Protocol Identifiers"
// (RFC 8547 §11, RFC 8548 §7 Table 4).
const (
	TEPExperimental       TEP = 0x20 // for experimental use
	TEPTcpcryptP256       TEP = 0x21 // TCPCRYPT_ECDHE_P256
	TEPTcpcryptP521       TEP = 0x22 // TCPCRYPT_ECDHE_P521
	TEPTcpcryptCurve25519 TEP = 0x23 // TCPCRYPT_ECDHE_Curve25519
	TEPTcpcryptCurve448   TEP = 0x24 // TCPCRYPT_ECDHE_Curve448
)

// Valid reports whether t is in the TEP identifier range 0x20–0x7f.
func (t TEP) Valid() bool { return t >= 0x20 && t <= 0x7f }

// Reserved reports whether t is in 0x70–0x7f, kept for a future extended
// identifier format (RFC 8547 §11). Such ids can match on the wire but
// cannot be configured.
func (t TEP) Reserved() bool { return t >= 0x70 && t <= 0x7f }

func (t TEP) String() string {
	switch t {
	case TEPExperimental:
		return "experimental"
	case TEPTcpcryptP256:
		return "TCPCRYPT_ECDHE_P256"
	case TEPTcpcryptP521:
		return "TCPCRYPT_ECDHE_P521"
	case TEPTcpcryptCurve25519:
		return "TCPCRYPT_ECDHE_Curve25519"
	case TEPTcpcryptCurve448:
		return "TCPCRYPT_ECDHE_Curve448"
	}
	return fmt.Sprintf("TEP(%#02x)", byte(t))
}

// Role is a host's TCP-ENO role (RFC 8547 §4.3). Its value is the role
// byte of the API draft's TCP_ENO_ROLE and of SELF_NAME / PEER_NAME.
type Role uint8

const (
	RoleA Role = 0 // sent b = 0, normally the active opener
	RoleB Role = 1 // sent b = 1, always the passive opener
)

// Peer returns the other role.
func (r Role) Peer() Role { return r ^ 1 }

func (r Role) String() string {
	if r == RoleB {
		return "B"
	}
	return "A"
}

// Suboption is a global suboption or a TEP suboption of a SYN-form ENO
// option. Length bytes are not suboptions of their own: the decoder folds
// a length byte into the TEP suboption it announces, and the encoder
// writes one where it is needed.
type Suboption struct {
	// Byte is the initial byte as sent: v bit and glt (§4.1, Table 1).
	// 0x00–0x1f is a global suboption, 0x20–0x7f a TEP without data and
	// 0xa0–0xff a TEP with data; 0x80–0x9f (length bytes) never appears.
	Byte byte
	// Data is the suboption data of a TEP with v = 1, possibly empty when
	// the suboption is the last one. Decoded data aliases the option
	// bytes, capacity clipped.
	Data []byte
}

// Global reports whether s is a global suboption (§4.2).
func (s Suboption) Global() bool { return s.Byte < 0x20 }

// TEP returns the glt of s: the TEP identifier with the v bit cleared.
// For a global suboption it is the suboption byte, which is not a TEP.
func (s Suboption) TEP() TEP { return TEP(s.Byte &^ VBit) }

// V reports whether the v bit of s is set.
func (s Suboption) V() bool { return s.Byte&VBit != 0 }

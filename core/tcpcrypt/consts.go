package tcpcrypt

// TEP is a TCP-ENO encryption protocol identifier (RFC 8547 §4.1), the
// 7-bit glt value without the v bit. tcpcrypt registers four of them,
// one per key-agreement scheme (RFC 8548 §7, Table 4).
type TEP byte

const (
	TEPP256       TEP = 0x21 // TCPCRYPT_ECDHE_P256, OPTIONAL
	TEPP521       TEP = 0x22 // TCPCRYPT_ECDHE_P521, OPTIONAL
	TEPCurve25519 TEP = 0x23 // TCPCRYPT_ECDHE_Curve25519, REQUIRED
	TEPCurve448   TEP = 0x24 // TCPCRYPT_ECDHE_Curve448, RECOMMENDED
)

// ResumeBit is the v bit of an ENO suboption byte. tcpcrypt sets it on a
// TEP byte that carries resumption data (RFC 8548 §3.5).
const ResumeBit = 0x80

// String returns the registry name of the TEP.
func (t TEP) String() string {
	switch t &^ ResumeBit {
	case TEPP256:
		return "TCPCRYPT_ECDHE_P256"
	case TEPP521:
		return "TCPCRYPT_ECDHE_P521"
	case TEPCurve25519:
		return "TCPCRYPT_ECDHE_Curve25519"
	case TEPCurve448:
		return "TCPCRYPT_ECDHE_Curve448"
	}
	return "TEP(0x" + hex2(byte(t)) + ")"
}

// Supported reports whether t (the v bit ignored) is a tcpcrypt TEP this
// implementation can run.
func (t TEP) Supported() bool {
	switch t &^ ResumeBit {
	case TEPP256, TEPP521, TEPCurve25519, TEPCurve448:
		return true
	}
	return false
}

// Constants of the key schedule and the Init messages (RFC 8548 §4.3).
const (
	constNextK  = 0x01
	constSessID = 0x02
	constRekey  = 0x03
	constKeyA   = 0x04
	constKeyB   = 0x05
	constResume = 0x06

	init1Magic uint32 = 0x15101a0e
	init2Magic uint32 = 0x097105e0
)

// Sizes shared by every tcpcrypt TEP (RFC 8548 §5: N_A_LEN, N_B_LEN, K_LEN).
const (
	NonceLen          = 32 // N_A and N_B
	SecretLen         = 32 // K_LEN: ss[i], mk[j], PRK
	SessionIDLen      = 1 + SecretLen
	ResumeIDLen       = 18 // resume[i]; each side sends half
	ResumeHalfLen     = ResumeIDLen / 2
	MaxResumeNonceLen = 8
)

func hex2(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&0xf]})
}

package tcpcrypt

// Ephemeral key agreement for the four tcpcrypt TEPs (RFC 8548 §3.3, §5).
//
// Wire encodings of Pub_A / Pub_B:
//
//	TCPCRYPT_ECDHE_Curve25519  32 raw bytes (RFC 7748 u-coordinate)
//	TCPCRYPT_ECDHE_Curve448    56 raw bytes
//	TCPCRYPT_ECDHE_P256        pubkey_len (2 bytes, big-endian) || 0x02/0x03 || X   (35 bytes)
//	TCPCRYPT_ECDHE_P521        pubkey_len (2 bytes, big-endian) || 0x02/0x03 || X   (69 bytes)
//
// pubkey_len counts its own two bytes: the figure in RFC 8548 §5 numbers
// the field's bytes 0 … L-1, pubkey_len included, and sets pubkey_len = L.
// The RFC requires compressed points (IEEE 1363 E.2.3), so only 0x02/0x03
// are accepted; uncompressed, hybrid and infinity encodings are rejected.
//
// ES is the X25519/X448 output, or for the NIST curves the ECSVDP-DH
// output: the x-coordinate of the shared point as a fixed-length
// big-endian octet string (32 bytes for P-256, 66 for P-521).

import (
	"crypto/ecdh"
	cryptorand "crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/cloudflare/circl/dh/x448"
)

// Key-agreement errors. They never carry key bytes; wrapped errors add
// only the TEP and lengths. Callers match them with errors.Is.
var (
	// ErrUnsupportedTEP means the TEP names no key-agreement scheme this
	// package implements.
	ErrUnsupportedTEP = errors.New("tcpcrypt: unsupported TEP")

	// ErrInvalidPublicKey means the peer's public key failed decoding or
	// validation (RFC 8548 §5). The connection MUST be aborted with an
	// error distinct from EOF (RFC 8548 §3.3).
	ErrInvalidPublicKey = errors.New("tcpcrypt: invalid peer public key")

	// ErrZeroSharedSecret means X25519/X448 produced the all-zero value,
	// i.e. the peer sent a low-order point (RFC 7748 §6, RFC 8548 §5).
	ErrZeroSharedSecret = errors.New("tcpcrypt: all-zero shared secret")

	// ErrInvalidPrivateKey means a scalar given to NewPrivateKey has the
	// wrong length or, for P-256/P-521, is not in [1, n-1].
	ErrInvalidPrivateKey = errors.New("tcpcrypt: invalid private key")

	// ErrKeyDestroyed means the PrivateKey was used after Destroy.
	ErrKeyDestroyed = errors.New("tcpcrypt: private key destroyed")
)

// Scalar and public-key sizes of the Montgomery curves (RFC 7748).
const (
	x25519Size = 32
	x448Size   = x448.Size // 56
)

// PrivateKey is one host's ephemeral key-agreement key for one TEP.
//
// Use a PrivateKey for one handshake and Destroy it afterwards: RFC 8548
// §3.3 requires ephemeral keys to be refreshed frequently and never
// written to persistent storage. A PrivateKey is safe for concurrent
// SharedSecret calls, but not concurrently with Destroy.
type PrivateKey struct {
	tep TEP

	// Exactly one of ecdhKey (X25519, P-256, P-521) and x448Key (X448) is
	// in use.
	ecdhKey *ecdh.PrivateKey
	x448Key x448.Key

	pub       []byte // Pub exactly as sent in Init1/Init2
	destroyed bool
}

// GenerateKey returns a fresh ephemeral key for tep (the v bit is
// ignored). A nil rand means crypto/rand.Reader, which is what production
// code should use.
//
// A non-nil rand is read for the scalar bytes, so a deterministic reader
// gives a deterministic key (test vectors). For P-256/P-521 the scalar is
// drawn by rejection sampling (cf. FIPS 186-5 A.4.2). Unlike
// crypto/ecdh.Curve.GenerateKey since Go 1.26, this honours a non-nil
// rand: callers must pass a cryptographically secure reader or nil.
func GenerateKey(tep TEP, rand io.Reader) (*PrivateKey, error) {
	tep &^= ResumeBit
	switch tep {
	case TEPCurve25519:
		if rand == nil {
			return generateECDH(tep, ecdh.X25519())
		}
		var scalar [x25519Size]byte
		defer clear(scalar[:])
		if _, err := io.ReadFull(rand, scalar[:]); err != nil {
			return nil, fmt.Errorf("tcpcrypt: generate %v key: %w", tep, err)
		}
		return NewPrivateKey(tep, scalar[:])

	case TEPCurve448:
		if rand == nil {
			rand = cryptorand.Reader
		}
		k := &PrivateKey{tep: tep}
		if _, err := io.ReadFull(rand, k.x448Key[:]); err != nil {
			clear(k.x448Key[:])
			return nil, fmt.Errorf("tcpcrypt: generate %v key: %w", tep, err)
		}
		k.initX448Public()
		return k, nil

	case TEPP256, TEPP521:
		c := nistCurveFor(tep)
		if rand == nil {
			// crypto/ecdh's own generator, so the FIPS module's pairwise
			// consistency test and BoringCrypto paths apply.
			return generateECDH(tep, c.curve)
		}
		return c.sampleKey(tep, rand)
	}
	return nil, fmt.Errorf("%w: %v", ErrUnsupportedTEP, tep)
}

// NewPrivateKey builds a key from a fixed scalar, for test vectors and
// known-answer tests. The v bit of tep is ignored.
//
//   - X25519: 32 bytes, X448: 56 bytes, as RFC 7748 writes them
//     (little-endian, unclamped). Clamping happens inside X25519/X448,
//     as RFC 7748 §5 specifies, so any byte string is a valid scalar.
//   - P-256: 32 bytes, P-521: 66 bytes, big-endian, in [1, n-1].
//
// The scalar is copied; the caller may wipe its slice afterwards.
func NewPrivateKey(tep TEP, scalar []byte) (*PrivateKey, error) {
	tep &^= ResumeBit
	switch tep {
	case TEPCurve25519:
		if len(scalar) != x25519Size {
			return nil, fmt.Errorf("%w: %v scalar is %d bytes, want %d", ErrInvalidPrivateKey, tep, len(scalar), x25519Size)
		}
		ek, err := ecdh.X25519().NewPrivateKey(scalar)
		if err != nil {
			return nil, fmt.Errorf("%w: %v: %v", ErrInvalidPrivateKey, tep, err)
		}
		return newECDHKey(tep, ek), nil

	case TEPCurve448:
		if len(scalar) != x448Size {
			return nil, fmt.Errorf("%w: %v scalar is %d bytes, want %d", ErrInvalidPrivateKey, tep, len(scalar), x448Size)
		}
		k := &PrivateKey{tep: tep}
		copy(k.x448Key[:], scalar)
		k.initX448Public()
		return k, nil

	case TEPP256, TEPP521:
		c := nistCurveFor(tep)
		if len(scalar) != c.size {
			return nil, fmt.Errorf("%w: %v scalar is %d bytes, want %d", ErrInvalidPrivateKey, tep, len(scalar), c.size)
		}
		if !c.scalarInRange(scalar) {
			return nil, fmt.Errorf("%w: %v scalar not in [1, n-1]", ErrInvalidPrivateKey, tep)
		}
		ek, err := c.curve.NewPrivateKey(scalar)
		if err != nil {
			return nil, fmt.Errorf("%w: %v: %v", ErrInvalidPrivateKey, tep, err)
		}
		return newECDHKey(tep, ek), nil
	}
	return nil, fmt.Errorf("%w: %v", ErrUnsupportedTEP, tep)
}

// PublicKeyLen returns the wire length of Pub for tep (v bit ignored), or
// 0 if tep is not a supported tcpcrypt TEP.
func PublicKeyLen(tep TEP) int {
	switch tep &^ ResumeBit {
	case TEPCurve25519:
		return x25519Size
	case TEPCurve448:
		return x448Size
	case TEPP256:
		return p256KA.wireLen()
	case TEPP521:
		return p521KA.wireLen()
	}
	return 0
}

// SharedSecretLen returns the length of ES for tep (v bit ignored), or 0
// if tep is not a supported tcpcrypt TEP.
func SharedSecretLen(tep TEP) int {
	switch tep &^ ResumeBit {
	case TEPCurve25519:
		return x25519Size
	case TEPCurve448:
		return x448Size
	case TEPP256:
		return p256KA.size
	case TEPP521:
		return p521KA.size
	}
	return 0
}

// TEP returns the key's TEP, without the v bit.
func (k *PrivateKey) TEP() TEP { return k.tep }

// AppendPublic appends Pub, exactly as it goes on the wire in Init1 or
// Init2, to dst. The public key stays available after Destroy.
func (k *PrivateKey) AppendPublic(dst []byte) []byte {
	return append(dst, k.pub...)
}

// SharedSecret validates the peer's wire-encoded public key and returns
// ES, a fresh slice of SharedSecretLen(k.TEP()) bytes that the caller
// should wipe once the key schedule has consumed it.
//
// Errors wrap ErrInvalidPublicKey (bad length, encoding, or point) or
// ErrZeroSharedSecret (low-order X25519/X448 point); both require the
// connection to be aborted.
func (k *PrivateKey) SharedSecret(peerPub []byte) ([]byte, error) {
	if k == nil || k.destroyed {
		return nil, ErrKeyDestroyed
	}
	switch k.tep {
	case TEPCurve25519:
		if len(peerPub) != x25519Size {
			return nil, badPubLen(k.tep, len(peerPub), x25519Size)
		}
		pk, err := ecdh.X25519().NewPublicKey(peerPub)
		if err != nil {
			return nil, fmt.Errorf("%w: %v: %v", ErrInvalidPublicKey, k.tep, err)
		}
		es, err := k.ecdhKey.ECDH(pk)
		if err != nil || allZero(es) {
			// With a key that NewPrivateKey accepted and a 32-byte peer
			// key, crypto/ecdh fails only when the output is all zero
			// (it performs the RFC 7748 §6 check itself); allZero is a
			// second guard for the MUST in RFC 8548 §5.
			return nil, fmt.Errorf("%w: %v", ErrZeroSharedSecret, k.tep)
		}
		return es, nil

	case TEPCurve448:
		if len(peerPub) != x448Size {
			return nil, badPubLen(k.tep, len(peerPub), x448Size)
		}
		es := make([]byte, x448Size)
		// x448.Shared reports false for the low-order points; the explicit
		// all-zero check is the one RFC 8548 §5 mandates.
		ok := x448.Shared((*x448.Key)(es), &k.x448Key, (*x448.Key)(peerPub))
		if !ok || allZero(es) {
			clear(es)
			return nil, fmt.Errorf("%w: %v", ErrZeroSharedSecret, k.tep)
		}
		return es, nil

	case TEPP256, TEPP521:
		c := nistCurveFor(k.tep)
		pk, err := c.decodePublic(k.tep, peerPub)
		if err != nil {
			return nil, err
		}
		// crypto/ecdh returns the x-coordinate, FE2OSP-encoded to the
		// field size: exactly the ECSVDP-DH output.
		es, err := k.ecdhKey.ECDH(pk)
		if err != nil {
			return nil, fmt.Errorf("%w: %v: %v", ErrInvalidPublicKey, k.tep, err)
		}
		return es, nil
	}
	return nil, fmt.Errorf("%w: %v", ErrUnsupportedTEP, k.tep)
}

// Destroy wipes the scalar bytes this PrivateKey holds and makes further
// SharedSecret calls fail with ErrKeyDestroyed. It is best effort: the
// X25519 and NIST scalars live inside crypto/ecdh, which offers no way to
// wipe them, so Destroy only drops the reference and leaves the memory
// to the garbage collector. The X448 scalar is stored here and zeroed.
func (k *PrivateKey) Destroy() {
	if k == nil {
		return
	}
	clear(k.x448Key[:])
	k.ecdhKey = nil
	k.destroyed = true
}

// String identifies the key without revealing it, so that logging a
// PrivateKey with %v or %+v cannot print the scalar.
// The value receiver covers formatting a dereferenced PrivateKey too.
func (k PrivateKey) String() string {
	return "tcpcrypt.PrivateKey(" + k.tep.String() + ")"
}

// GoString is String for %#v.
func (k PrivateKey) GoString() string { return k.String() }

func generateECDH(tep TEP, curve ecdh.Curve) (*PrivateKey, error) {
	ek, err := curve.GenerateKey(cryptorand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tcpcrypt: generate %v key: %w", tep, err)
	}
	return newECDHKey(tep, ek), nil
}

// newECDHKey wraps a crypto/ecdh key and precomputes its wire encoding.
func newECDHKey(tep TEP, ek *ecdh.PrivateKey) *PrivateKey {
	k := &PrivateKey{tep: tep, ecdhKey: ek}
	pub := ek.PublicKey().Bytes()
	switch tep {
	case TEPP256, TEPP521:
		k.pub = nistCurveFor(tep).compress(pub)
	default:
		k.pub = pub
	}
	return k
}

func (k *PrivateKey) initX448Public() {
	var pub x448.Key
	x448.KeyGen(&pub, &k.x448Key)
	k.pub = pub[:]
}

func badPubLen(tep TEP, got, want int) error {
	return fmt.Errorf("%w: %v public key is %d bytes, want %d", ErrInvalidPublicKey, tep, got, want)
}

// allZero reports, in constant time, whether b is all zero bytes.
func allZero(b []byte) bool {
	var acc byte
	for _, v := range b {
		acc |= v
	}
	return subtle.ConstantTimeByteEq(acc, 0) == 1
}

// nistKA holds what tcpcrypt needs of a NIST prime curve beyond
// crypto/ecdh: point decompression and scalar-range checks.
type nistKA struct {
	curve ecdh.Curve
	size  int // bytes of a field element and of a scalar

	p, b    *big.Int // y² = x³ − 3x + b (mod p)
	sqrtExp *big.Int // (p+1)/4: a square root of a is a^((p+1)/4) since p ≡ 3 (mod 4)
	n       []byte   // group order, big-endian, size bytes
	topMask byte     // bits of the first scalar byte that can be set below 2^bitlen(n)
}

var (
	// Curve parameters p, b and n from SP 800-186 (the FIPS 186-5 curves);
	// a test checks them against crypto/elliptic.
	p256KA = newNISTKA(ecdh.P256(), 32, 0xff,
		"ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
		"5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
		"ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
	p521KA = newNISTKA(ecdh.P521(), 66, 0x01,
		"01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"+
			"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
		"0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109"+
			"e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00",
		"01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"+
			"fa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409")
)

func newNISTKA(curve ecdh.Curve, size int, topMask byte, pHex, bHex, nHex string) *nistKA {
	parse := func(s string) *big.Int {
		v, ok := new(big.Int).SetString(s, 16)
		if !ok {
			panic("tcpcrypt: bad curve constant")
		}
		return v
	}
	c := &nistKA{curve: curve, size: size, topMask: topMask, p: parse(pHex), b: parse(bHex)}
	if c.p.Bit(0) != 1 || c.p.Bit(1) != 1 {
		panic("tcpcrypt: curve prime is not 3 mod 4")
	}
	c.sqrtExp = new(big.Int).Add(c.p, big.NewInt(1))
	c.sqrtExp.Rsh(c.sqrtExp, 2)
	c.n = parse(nHex).FillBytes(make([]byte, size))
	return c
}

func nistCurveFor(tep TEP) *nistKA {
	if tep == TEPP521 {
		return p521KA
	}
	return p256KA
}

// wireLen is the length of the pubkey_len-prefixed compressed point.
func (c *nistKA) wireLen() int { return 2 + 1 + c.size }

// compress turns crypto/ecdh's uncompressed encoding 04 || X || Y into the
// wire form pubkey_len || (02 + (Y mod 2)) || X.
func (c *nistKA) compress(uncompressed []byte) []byte {
	wire := make([]byte, c.wireLen())
	binary.BigEndian.PutUint16(wire, uint16(len(wire)))
	wire[2] = 0x02 | uncompressed[len(uncompressed)-1]&1
	copy(wire[3:], uncompressed[1:1+c.size])
	return wire
}

// decodePublic parses and validates a wire-encoded peer key (IEEE 1363
// A.16.10: the point is not the identity, its coordinates are reduced, and
// it is on the curve; the cofactor is 1, so that is enough). Public data
// only, so variable-time math/big is fine here.
func (c *nistKA) decodePublic(tep TEP, wire []byte) (*ecdh.PublicKey, error) {
	want := c.wireLen()
	if len(wire) != want {
		return nil, badPubLen(tep, len(wire), want)
	}
	if l := int(binary.BigEndian.Uint16(wire)); l != want {
		return nil, fmt.Errorf("%w: %v pubkey_len is %d, want %d", ErrInvalidPublicKey, tep, l, want)
	}
	form := wire[2]
	if form != 0x02 && form != 0x03 {
		return nil, fmt.Errorf("%w: %v point is not in compressed form", ErrInvalidPublicKey, tep)
	}
	x := new(big.Int).SetBytes(wire[3:])
	if x.Cmp(c.p) >= 0 {
		return nil, fmt.Errorf("%w: %v x-coordinate is not reduced modulo p", ErrInvalidPublicKey, tep)
	}

	// rhs = x³ − 3x + b mod p
	rhs := new(big.Int).Mul(x, x)
	rhs.Mul(rhs, x)
	t := new(big.Int).Lsh(x, 1)
	t.Add(t, x)
	rhs.Sub(rhs, t)
	rhs.Add(rhs, c.b)
	rhs.Mod(rhs, c.p)

	y := new(big.Int).Exp(rhs, c.sqrtExp, c.p)
	if t.Mul(y, y).Mod(t, c.p).Cmp(rhs) != 0 {
		return nil, fmt.Errorf("%w: %v x-coordinate is not on the curve", ErrInvalidPublicKey, tep)
	}
	// The curves have prime order, so no point has y = 0 and both
	// parities exist; the guard only keeps y reduced if that ever changed.
	if y.Bit(0) != uint(form&1) {
		if y.Sign() == 0 {
			return nil, fmt.Errorf("%w: %v invalid point", ErrInvalidPublicKey, tep)
		}
		y.Sub(c.p, y)
	}

	uncompressed := make([]byte, 1+2*c.size)
	uncompressed[0] = 0x04
	x.FillBytes(uncompressed[1 : 1+c.size])
	y.FillBytes(uncompressed[1+c.size:])
	// crypto/ecdh re-checks that the point is on the curve and is not the
	// identity, independently of the arithmetic above.
	pk, err := c.curve.NewPublicKey(uncompressed)
	if err != nil {
		return nil, fmt.Errorf("%w: %v: %v", ErrInvalidPublicKey, tep, err)
	}
	return pk, nil
}

// scalarInRange reports whether the big-endian scalar s (c.size bytes) is
// in [1, n-1], in constant time since s is secret.
func (c *nistKA) scalarInRange(s []byte) bool {
	var borrow, acc int
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i]) - int(c.n[i]) - borrow
		borrow = (d >> 8) & 1 // 1 iff d < 0
		acc |= int(s[i])
	}
	nonZero := subtle.ConstantTimeByteEq(byte(acc), 0) ^ 1
	return nonZero&borrow == 1
}

// sampleKey draws a scalar from r by rejection sampling: take size bytes,
// clear the bits above n's bit length, retry unless 1 ≤ s < n. A try fails
// with probability about 2^-32 (P-256) or 2^-260 (P-521), so the bound on
// tries only stops a broken reader.
func (c *nistKA) sampleKey(tep TEP, r io.Reader) (*PrivateKey, error) {
	buf := make([]byte, c.size)
	defer clear(buf)
	for range 64 {
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("tcpcrypt: generate %v key: %w", tep, err)
		}
		buf[0] &= c.topMask
		if c.scalarInRange(buf) {
			return NewPrivateKey(tep, buf)
		}
	}
	return nil, fmt.Errorf("tcpcrypt: generate %v key: random source keeps producing out-of-range scalars", tep)
}

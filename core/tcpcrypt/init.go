package tcpcrypt

import (
	"encoding/binary"
	"fmt"
)

// Init1 and Init2 (RFC 8548 §4.1) open A's and B's data streams in a fresh
// key exchange. All integers are big-endian.
//
//	Init1: magic(4) | message_len(4) | nciphers(1) | sym_cipher(2)*K | N_A(32) | Pub_A | ignored
//	Init2: magic(4) | message_len(4) | sym_cipher(2) | N_B(32) | Pub_B | ignored
const (
	initHeaderLen = 8
	// MaxInitLen bounds message_len. The RFC sets no limit; a real Init
	// is at most a few hundred bytes, and a bound keeps a hostile peer
	// from making us buffer without end.
	MaxInitLen = 64 << 10
)

// Init1 is A's key-exchange message.
type Init1 struct {
	AEADs  []AEADID // sym_cipher list, as offered
	NonceA [NonceLen]byte
	PubA   []byte // wire encoding, TEP-specific
}

// Init2 is B's key-exchange message.
type Init2 struct {
	AEAD   AEADID
	NonceB [NonceLen]byte
	PubB   []byte
}

// InitLen reads the message_len of an Init message at the start of b,
// checking the magic (init1Magic for Init1, else Init2). It returns
// ErrNeedMore until the 8-byte header is present.
func InitLen(b []byte, isInit1 bool) (int, error) {
	want := init2Magic
	minLen := initHeaderLen + 2 + NonceLen
	if isInit1 {
		want = init1Magic
		minLen = initHeaderLen + 1 + 2 + NonceLen
	}
	if len(b) < 4 {
		// Check the magic bytes we already have, so garbage is rejected
		// as early as possible.
		var m [4]byte
		binary.BigEndian.PutUint32(m[:], want)
		for i := range b {
			if b[i] != m[i] {
				return 0, ErrBadMagic
			}
		}
		return 0, ErrNeedMore
	}
	if binary.BigEndian.Uint32(b) != want {
		return 0, ErrBadMagic
	}
	if len(b) < initHeaderLen {
		return 0, ErrNeedMore
	}
	m := binary.BigEndian.Uint32(b[4:8])
	if m < uint32(minLen) || m > MaxInitLen {
		return 0, fmt.Errorf("%w: message_len %d", ErrBadInitLength, m)
	}
	return int(m), nil
}

// AppendInit1 encodes an Init1 message with an empty "ignored" field.
func AppendInit1(dst []byte, m *Init1) ([]byte, error) {
	if len(m.AEADs) == 0 || len(m.AEADs) > 255 {
		return dst, fmt.Errorf("%w: %d AEADs offered", ErrMalformedInit, len(m.AEADs))
	}
	n := initHeaderLen + 1 + 2*len(m.AEADs) + NonceLen + len(m.PubA)
	dst = binary.BigEndian.AppendUint32(dst, init1Magic)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, byte(len(m.AEADs)))
	for _, id := range m.AEADs {
		dst = binary.BigEndian.AppendUint16(dst, uint16(id))
	}
	dst = append(dst, m.NonceA[:]...)
	return append(dst, m.PubA...), nil
}

// AppendInit2 encodes an Init2 message with an empty "ignored" field.
func AppendInit2(dst []byte, m *Init2) []byte {
	n := initHeaderLen + 2 + NonceLen + len(m.PubB)
	dst = binary.BigEndian.AppendUint32(dst, init2Magic)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.AEAD))
	dst = append(dst, m.NonceB[:]...)
	return append(dst, m.PubB...)
}

// ParseInit1 parses a complete Init1 (exactly message_len bytes) for the
// negotiated TEP. Trailing "ignored" bytes are accepted and skipped, as
// §4.1 requires. The returned slices alias b.
func ParseInit1(tep TEP, b []byte) (Init1, error) {
	var m Init1
	n, err := InitLen(b, true)
	if err != nil {
		return m, err
	}
	if len(b) != n {
		return m, fmt.Errorf("%w: have %d bytes, message_len %d", ErrBadInitLength, len(b), n)
	}
	k := int(b[8])
	if k == 0 {
		return m, fmt.Errorf("%w: nciphers is 0", ErrMalformedInit)
	}
	pubLen := PublicKeyLen(tep)
	if pubLen == 0 {
		return m, fmt.Errorf("tcpcrypt: Init1 for %w %v", ErrUnsupportedTEP, tep)
	}
	p := 9 + 2*k
	if n < p+NonceLen+pubLen {
		return m, fmt.Errorf("%w: Init1 of %d bytes too short for %d ciphers and %v key", ErrMalformedInit, n, k, tep)
	}
	m.AEADs = make([]AEADID, k)
	for i := range m.AEADs {
		m.AEADs[i] = AEADID(binary.BigEndian.Uint16(b[9+2*i:]))
	}
	copy(m.NonceA[:], b[p:])
	m.PubA = b[p+NonceLen : p+NonceLen+pubLen]
	return m, nil
}

// ParseInit2 parses a complete Init2 for the negotiated TEP.
func ParseInit2(tep TEP, b []byte) (Init2, error) {
	var m Init2
	n, err := InitLen(b, false)
	if err != nil {
		return m, err
	}
	if len(b) != n {
		return m, fmt.Errorf("%w: have %d bytes, message_len %d", ErrBadInitLength, len(b), n)
	}
	pubLen := PublicKeyLen(tep)
	if pubLen == 0 {
		return m, fmt.Errorf("tcpcrypt: Init2 for %w %v", ErrUnsupportedTEP, tep)
	}
	if n < 10+NonceLen+pubLen {
		return m, fmt.Errorf("%w: Init2 of %d bytes too short for %v key", ErrMalformedInit, n, tep)
	}
	m.AEAD = AEADID(binary.BigEndian.Uint16(b[8:10]))
	copy(m.NonceB[:], b[10:])
	m.PubB = b[10+NonceLen : 10+NonceLen+pubLen]
	return m, nil
}

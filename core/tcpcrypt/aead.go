package tcpcrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// AEADID identifies an AEAD algorithm in Init1/Init2 ("tcpcrypt AEAD
// Algorithms" registry, RFC 8548 §7). It is two bytes on the wire.
type AEADID uint16

const (
	AES128GCM        AEADID = 0x0001 // AEAD_AES_128_GCM, REQUIRED
	AES256GCM        AEADID = 0x0002 // AEAD_AES_256_GCM, RECOMMENDED
	ChaCha20Poly1305 AEADID = 0x0010 // AEAD_CHACHA20_POLY1305, RECOMMENDED
)

const (
	// TagLen is the authentication tag length of every supported AEAD.
	TagLen = 16
	// aeadNonceLen is ae_nonce_len, 12 for every supported AEAD.
	aeadNonceLen = 12
)

// KeyLen returns ae_key_len, or 0 for an unsupported id.
func (id AEADID) KeyLen() int {
	switch id {
	case AES128GCM:
		return 16
	case AES256GCM, ChaCha20Poly1305:
		return 32
	}
	return 0
}

// TrafficKeyLen returns the length of k_ab[j] / k_ba[j] for the AEAD:
// the key followed by the 12-byte nonce randomizer NR (RFC 8548 §3.4).
func (id AEADID) TrafficKeyLen() int { return id.KeyLen() + aeadNonceLen }

// Supported reports whether this implementation can run the AEAD.
func (id AEADID) Supported() bool { return id.KeyLen() != 0 }

func (id AEADID) String() string {
	switch id {
	case AES128GCM:
		return "AEAD_AES_128_GCM"
	case AES256GCM:
		return "AEAD_AES_256_GCM"
	case ChaCha20Poly1305:
		return "AEAD_CHACHA20_POLY1305"
	}
	return fmt.Sprintf("AEAD(0x%04x)", uint16(id))
}

// TrafficKey is one direction's key for one key generation: the AEAD
// instance and the nonce randomizer. Its key never changes, so a packet
// engine may keep an old generation's key for retransmissions. It is not
// safe for concurrent use: it keeps a nonce scratch buffer so that
// sealing and opening do not allocate (a slice passed through the
// cipher.AEAD interface escapes). Each direction of a connection has its
// own key, used by one goroutine at a time.
type TrafficKey struct {
	aead  AEADID
	gen   uint64
	ae    cipher.AEAD
	nr    [aeadNonceLen]byte
	nonce [aeadNonceLen]byte // scratch for nonceFor
}

// NewTrafficKey builds a traffic key from k_ab[j] or k_ba[j] (key || NR).
// The caller keeps ownership of material and should zero it.
func NewTrafficKey(id AEADID, gen uint64, material []byte) (*TrafficKey, error) {
	if !id.Supported() {
		return nil, fmt.Errorf("tcpcrypt: %w: %v", ErrUnsupportedAEAD, id)
	}
	if len(material) != id.TrafficKeyLen() {
		return nil, fmt.Errorf("tcpcrypt: traffic key for %v must be %d bytes, got %d", id, id.TrafficKeyLen(), len(material))
	}
	key := material[:id.KeyLen()]
	k := &TrafficKey{aead: id, gen: gen}
	copy(k.nr[:], material[id.KeyLen():])
	var err error
	switch id {
	case AES128GCM, AES256GCM:
		var block cipher.Block
		block, err = aes.NewCipher(key)
		if err == nil {
			k.ae, err = cipher.NewGCM(block)
		}
	case ChaCha20Poly1305:
		k.ae, err = chacha20poly1305.New(key)
	}
	if err != nil {
		return nil, fmt.Errorf("tcpcrypt: init %v: %w", id, err)
	}
	return k, nil
}

// AEAD returns the algorithm of the key.
func (k *TrafficKey) AEAD() AEADID { return k.aead }

// Generation returns the key generation j the key belongs to.
func (k *TrafficKey) Generation() uint64 { return k.gen }

// nonceFor computes frame ID XOR NR (RFC 8548 §4.2): the frame ID is the
// 8-byte big-endian offset left-padded with zeros to 12 bytes. The result
// lives in k's scratch buffer until the next call.
func (k *TrafficKey) nonceFor(offset uint64) []byte {
	n := k.nonce[:]
	clear(n[:4])
	binary.BigEndian.PutUint64(n[4:], offset)
	subtle.XORBytes(n, n, k.nr[:])
	return n
}

// Destroy zeroes the nonce randomizer and drops the AEAD. The standard
// library keeps the expanded cipher key inside the AEAD object where it
// cannot be wiped; dropping the last reference is the best Go allows.
func (k *TrafficKey) Destroy() {
	if k == nil {
		return
	}
	clear(k.nr[:])
	clear(k.nonce[:])
	k.ae = nil
}

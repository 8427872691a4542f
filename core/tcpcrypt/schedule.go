package tcpcrypt

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
)

// The key schedule of RFC 8548 §3.3–§3.5. CPRF is HKDF-Expand-SHA256 and
// Extract is HKDF-Extract-SHA256 for every tcpcrypt TEP (§5). These are
// written on top of crypto/hmac directly, rather than crypto/hkdf, so
// that the per-connection derivations use caller arrays and can be
// zeroed; primitives_test.go checks them against RFC 5869.

// Secret is a 32-byte key-schedule value: PRK, ss[i] or mk[j].
type Secret [SecretLen]byte

// extract computes HKDF-Extract(salt, IKM) where IKM is the
// concatenation of parts, without building the concatenation.
func extract(salt []byte, parts ...[]byte) Secret {
	m := hmac.New(sha256.New, salt)
	for _, p := range parts {
		m.Write(p)
	}
	var out Secret
	m.Sum(out[:0])
	return out
}

// cprf computes CPRF(key, info, len(out)) = HKDF-Expand-SHA256 into out.
// info is the concatenation of infoParts.
func cprf(out []byte, key *Secret, infoParts ...[]byte) {
	m := hmac.New(sha256.New, key[:])
	var t [sha256.Size]byte
	var tLen int
	for i, done := byte(1), 0; done < len(out); i++ {
		m.Reset()
		m.Write(t[:tLen])
		for _, p := range infoParts {
			m.Write(p)
		}
		m.Write([]byte{i})
		m.Sum(t[:0])
		tLen = len(t)
		done += copy(out[done:], t[:])
	}
	clear(t[:])
	zeroHMAC(m)
}

// zeroHMAC resets m so the keyed state it holds is overwritten with the
// initial hash state. The key's padded copies inside crypto/hmac cannot be
// reached; this is the best the standard library allows.
func zeroHMAC(m hash.Hash) { m.Reset() }

// PRK computes ss[0] = HKDF-Extract(N_A, transcript | Init1 | Init2 | ES)
// (RFC 8548 §3.3). init1 and init2 are the whole messages as sent.
func PRK(nonceA, transcript, init1, init2, es []byte) Secret {
	return extract(nonceA, transcript, init1, init2, es)
}

// NextSecret computes ss[i] = CPRF(ss[i-1], CONST_NEXTK, K_LEN) (§3.5).
func NextSecret(prev *Secret) Secret {
	var s Secret
	cprf(s[:], prev, []byte{constNextK})
	return s
}

// SessionID computes TEP-byte | CPRF(ss[i], CONST_SESSID | sn[i], K_LEN)
// (§3.4). tepByte is the negotiated TEP byte exactly as B sent it, v bit
// included. sn is empty for a fresh session and nonce_a | nonce_b for a
// resumed one.
func SessionID(tepByte byte, ss *Secret, sn []byte) [SessionIDLen]byte {
	var id [SessionIDLen]byte
	id[0] = tepByte
	cprf(id[1:], ss, []byte{constSessID}, sn)
	return id
}

// MasterKey computes mk[0] = CPRF(ss[i], CONST_REKEY | sn[i], K_LEN).
func MasterKey(ss *Secret, sn []byte) Secret {
	var mk Secret
	cprf(mk[:], ss, []byte{constRekey}, sn)
	return mk
}

// NextMasterKey computes mk[j] = CPRF(mk[j-1], CONST_REKEY, K_LEN). sn is
// not repeated for later generations (§3.8).
func NextMasterKey(mk *Secret) Secret {
	var next Secret
	cprf(next[:], mk, []byte{constRekey})
	return next
}

// TrafficKeyMaterial computes k_ab[j] (ab = true) or k_ba[j] from mk[j]:
// CPRF(mk[j], CONST_KEY_A/B, ae_key_len + ae_nonce_len), written to out,
// which must have id.TrafficKeyLen() bytes.
func TrafficKeyMaterial(out []byte, mk *Secret, ab bool) {
	c := byte(constKeyB)
	if ab {
		c = constKeyA
	}
	cprf(out, mk, []byte{c})
}

// ResumeID computes resume[i] = CPRF(ss[i], CONST_RESUME, 18) (§3.5).
// The host whose original role was A sends the first 9 bytes, the other
// host the last 9.
func ResumeID(ss *Secret) [ResumeIDLen]byte {
	var r [ResumeIDLen]byte
	cprf(r[:], ss, []byte{constResume})
	return r
}

// Zero overwrites the secret.
func (s *Secret) Zero() { clear(s[:]) }

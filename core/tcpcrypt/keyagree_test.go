package tcpcrypt

import (
	"bytes"
	"crypto/elliptic"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"
)

var kaTEPs = []TEP{TEPCurve25519, TEPCurve448, TEPP256, TEPP521}

// kaTestReader is a deterministic byte source for reproducible keys.
func kaTestReader(seed byte) *mrand.ChaCha8 {
	var s [32]byte
	s[0] = seed
	return mrand.NewChaCha8(s)
}

func TestKeyAgreeRoundTrip(t *testing.T) {
	wantPub := map[TEP]int{TEPCurve25519: 32, TEPCurve448: 56, TEPP256: 35, TEPP521: 69}
	wantES := map[TEP]int{TEPCurve25519: 32, TEPCurve448: 56, TEPP256: 32, TEPP521: 66}
	for _, tep := range kaTEPs {
		t.Run(tep.String(), func(t *testing.T) {
			if got := PublicKeyLen(tep); got != wantPub[tep] {
				t.Errorf("PublicKeyLen = %d, want %d", got, wantPub[tep])
			}
			if got := SharedSecretLen(tep); got != wantES[tep] {
				t.Errorf("SharedSecretLen = %d, want %d", got, wantES[tep])
			}
			for i := range 8 {
				a, err := GenerateKey(tep, nil)
				if err != nil {
					t.Fatalf("GenerateKey A: %v", err)
				}
				b, err := GenerateKey(tep, nil)
				if err != nil {
					t.Fatalf("GenerateKey B: %v", err)
				}
				if a.TEP() != tep || b.TEP() != tep {
					t.Fatalf("TEP() = %v, %v; want %v", a.TEP(), b.TEP(), tep)
				}
				pubA, pubB := a.AppendPublic(nil), b.AppendPublic([]byte("prefix"))
				if !bytes.HasPrefix(pubB, []byte("prefix")) {
					t.Fatal("AppendPublic dropped dst")
				}
				pubB = pubB[len("prefix"):]
				if len(pubA) != wantPub[tep] || len(pubB) != wantPub[tep] {
					t.Fatalf("public key lengths %d, %d; want %d", len(pubA), len(pubB), wantPub[tep])
				}
				if bytes.Equal(pubA, pubB) {
					t.Fatal("two generated keys have the same public key")
				}
				if tep == TEPP256 || tep == TEPP521 {
					for _, p := range [][]byte{pubA, pubB} {
						if l := binary.BigEndian.Uint16(p); int(l) != wantPub[tep] {
							t.Fatalf("pubkey_len = %d, want %d", l, wantPub[tep])
						}
						if p[2] != 0x02 && p[2] != 0x03 {
							t.Fatalf("point form byte %#x, want 0x02 or 0x03", p[2])
						}
					}
				}
				esA, err := a.SharedSecret(pubB)
				if err != nil {
					t.Fatalf("A.SharedSecret: %v", err)
				}
				esB, err := b.SharedSecret(pubA)
				if err != nil {
					t.Fatalf("B.SharedSecret: %v", err)
				}
				if !bytes.Equal(esA, esB) {
					t.Fatalf("iteration %d: ES differs: %x vs %x", i, esA, esB)
				}
				if len(esA) != wantES[tep] {
					t.Fatalf("len(ES) = %d, want %d", len(esA), wantES[tep])
				}
				a.Destroy()
				b.Destroy()
			}
		})
	}
}

func TestKeyAgreeDeterministicRand(t *testing.T) {
	for _, tep := range kaTEPs {
		t.Run(tep.String(), func(t *testing.T) {
			k1, err := GenerateKey(tep, kaTestReader(1))
			if err != nil {
				t.Fatal(err)
			}
			k2, err := GenerateKey(tep, kaTestReader(1))
			if err != nil {
				t.Fatal(err)
			}
			k3, err := GenerateKey(tep, kaTestReader(2))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(k1.AppendPublic(nil), k2.AppendPublic(nil)) {
				t.Error("same seed gave different keys")
			}
			if bytes.Equal(k1.AppendPublic(nil), k3.AppendPublic(nil)) {
				t.Error("different seeds gave the same key")
			}
			es1, err := k1.SharedSecret(k3.AppendPublic(nil))
			if err != nil {
				t.Fatal(err)
			}
			es3, err := k3.SharedSecret(k1.AppendPublic(nil))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(es1, es3) {
				t.Error("ES differs between deterministic keys")
			}
		})
	}
}

func TestKeyAgreeShortRandomSource(t *testing.T) {
	for _, tep := range kaTEPs {
		_, err := GenerateKey(tep, bytes.NewReader(make([]byte, 3)))
		if err == nil {
			t.Errorf("%v: GenerateKey succeeded with a 3-byte random source", tep)
		}
	}
	// A source of only zero bytes never yields a valid NIST scalar; the
	// sampler must give up rather than loop forever.
	for _, tep := range []TEP{TEPP256, TEPP521} {
		if _, err := GenerateKey(tep, zeroReader{}); err == nil {
			t.Errorf("%v: GenerateKey accepted an all-zero random source", tep)
		}
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestKeyAgreeResumeBitIgnored(t *testing.T) {
	for _, tep := range kaTEPs {
		k, err := GenerateKey(tep|ResumeBit, nil)
		if err != nil {
			t.Fatalf("%v|v: %v", tep, err)
		}
		if k.TEP() != tep {
			t.Errorf("TEP() = %v, want %v", k.TEP(), tep)
		}
		if PublicKeyLen(tep|ResumeBit) != PublicKeyLen(tep) || SharedSecretLen(tep|ResumeBit) != SharedSecretLen(tep) {
			t.Errorf("%v: lengths depend on the v bit", tep)
		}
	}
}

func TestKeyAgreeUnsupportedTEP(t *testing.T) {
	for _, tep := range []TEP{0x00, 0x01, 0x20, 0x25, 0x7f, 0xa0, 0xff} {
		if _, err := GenerateKey(tep, nil); !errors.Is(err, ErrUnsupportedTEP) {
			t.Errorf("GenerateKey(%v) error = %v, want ErrUnsupportedTEP", tep, err)
		}
		if _, err := NewPrivateKey(tep, make([]byte, 32)); !errors.Is(err, ErrUnsupportedTEP) {
			t.Errorf("NewPrivateKey(%v) error = %v, want ErrUnsupportedTEP", tep, err)
		}
		if PublicKeyLen(tep) != 0 || SharedSecretLen(tep) != 0 {
			t.Errorf("%v: non-zero lengths for an unsupported TEP", tep)
		}
	}
}

// kaMustKey builds a key from a hex scalar or fails the test.
func kaMustKey(t *testing.T, tep TEP, scalarHex string) *PrivateKey {
	t.Helper()
	k, err := NewPrivateKey(tep, rfcHexBytes(t, scalarHex))
	if err != nil {
		t.Fatalf("NewPrivateKey(%v): %v", tep, err)
	}
	return k
}

// RFC 7748 §5.2: X25519(scalar, u) through NewPrivateKey + SharedSecret.
func TestX25519RFC7748ScalarMult(t *testing.T) {
	tests := []struct{ scalar, u, out string }{
		{
			scalar: "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
			u:      "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
			out:    "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
		},
		{
			// u has its top bit set; X25519 must mask it (RFC 7748 §5).
			scalar: "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
			u:      "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
			out:    "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
		},
	}
	for i, tt := range tests {
		es, err := kaMustKey(t, TEPCurve25519, tt.scalar).SharedSecret(rfcHexBytes(t, tt.u))
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		if want := rfcHexBytes(t, tt.out); !bytes.Equal(es, want) {
			t.Errorf("vector %d: got %x, want %x", i, es, want)
		}
	}
}

// RFC 7748 §5.2: X448(scalar, u).
func TestX448RFC7748ScalarMult(t *testing.T) {
	tests := []struct{ scalar, u, out string }{
		{
			scalar: `3d262fddf9ec8e88495266fea19a34d28882acef045104d0d1aae121
			         700a779c984c24f8cdd78fbff44943eba368f54b29259a4f1c600ad3`,
			u: `06fce640fa3487bfda5f6cf2d5263f8aad88334cbd07437f020f08f9
			    814dc031ddbdc38c19c6da2583fa5429db94ada18aa7a7fb4ef8a086`,
			out: `ce3e4ff95a60dc6697da1db1d85e6afbdf79b50a2412d7546d5f239f
			      e14fbaadeb445fc66a01b0779d98223961111e21766282f73dd96b6f`,
		},
		{
			scalar: `203d494428b8399352665ddca42f9de8fef600908e0d461cb021f8c5
			         38345dd77c3e4806e25f46d3315c44e0a5b4371282dd2c8d5be3095f`,
			u: `0fbcc2f993cd56d3305b0b7d9e55d4c1a8fb5dbb52f8e9a1e9b6201b
			    165d015894e56c4d3570bee52fe205e28a78b91cdfbde71ce8d157db`,
			out: `884a02576239ff7a2f2f63b2db6a9ff37047ac13568e1e30fe63c4a7
			      ad1b3ee3a5700df34321d62077e63633c575c1c954514e99da7c179d`,
		},
	}
	for i, tt := range tests {
		es, err := kaMustKey(t, TEPCurve448, tt.scalar).SharedSecret(rfcHexBytes(t, tt.u))
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		if want := rfcHexBytes(t, tt.out); !bytes.Equal(es, want) {
			t.Errorf("vector %d: got %x, want %x", i, es, want)
		}
	}
}

// RFC 7748 §5.2, second kind: iterate k, u = f(k, u), k. The 1,000,000
// iteration value is left out (minutes of CPU).
func TestX25519X448RFC7748Iterated(t *testing.T) {
	tests := []struct {
		tep         TEP
		start       string
		one, thousd string
	}{
		{
			tep:    TEPCurve25519,
			start:  "0900000000000000000000000000000000000000000000000000000000000000",
			one:    "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079",
			thousd: "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51",
		},
		{
			tep: TEPCurve448,
			start: `05000000000000000000000000000000000000000000000000000000
			        00000000000000000000000000000000000000000000000000000000`,
			one: `3f482c8a9f19b01e6c46ee9711d9dc14fd4bf67af30765c2ae2b846a
			      4d23a8cd0db897086239492caf350b51f833868b9bc2b3bca9cf4113`,
			thousd: `aa3b4749d55b9daf1e5b00288826c467274ce3ebbdd5c17b975e09d4
			         af6c67cf10d087202db88286e2b79fceea3ec353ef54faa26e219f38`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.tep.String(), func(t *testing.T) {
			k := rfcHexBytes(t, tt.start)
			u := bytes.Clone(k)
			n := 1000
			if testing.Short() {
				n = 1
			}
			for i := 1; i <= n; i++ {
				key, err := NewPrivateKey(tt.tep, k)
				if err != nil {
					t.Fatal(err)
				}
				out, err := key.SharedSecret(u)
				if err != nil {
					t.Fatalf("iteration %d: %v", i, err)
				}
				k, u = out, k
				switch i {
				case 1:
					if want := rfcHexBytes(t, tt.one); !bytes.Equal(k, want) {
						t.Fatalf("after 1 iteration: %x, want %x", k, want)
					}
				case 1000:
					if want := rfcHexBytes(t, tt.thousd); !bytes.Equal(k, want) {
						t.Fatalf("after 1000 iterations: %x, want %x", k, want)
					}
				}
			}
		})
	}
}

// RFC 7748 §6.1 and §6.2: both public keys via AppendPublic and the shared
// secret computed from both sides.
func TestX25519X448RFC7748DiffieHellman(t *testing.T) {
	tests := []struct {
		tep                         TEP
		privA, pubA, privB, pubB, k string
	}{
		{
			tep:   TEPCurve25519,
			privA: "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
			pubA:  "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
			privB: "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
			pubB:  "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
			k:     "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
		},
		{
			tep: TEPCurve448,
			privA: `9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28d
			        d9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b`,
			pubA: `9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c
			       22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0`,
			privB: `1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d
			        6927c120bb5ee8972b0d3e21374c9c921b09d1b0366f10b65173992d`,
			pubB: `3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b430
			       27d8b972fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609`,
			k: `07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282b
			    b60c0b56fd2464c335543936521c24403085d59a449a5037514a879d`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.tep.String(), func(t *testing.T) {
			a := kaMustKey(t, tt.tep, tt.privA)
			b := kaMustKey(t, tt.tep, tt.privB)
			if got, want := a.AppendPublic(nil), rfcHexBytes(t, tt.pubA); !bytes.Equal(got, want) {
				t.Errorf("Alice's public key %x, want %x", got, want)
			}
			if got, want := b.AppendPublic(nil), rfcHexBytes(t, tt.pubB); !bytes.Equal(got, want) {
				t.Errorf("Bob's public key %x, want %x", got, want)
			}
			want := rfcHexBytes(t, tt.k)
			for name, es := range map[string]func() ([]byte, error){
				"Alice": func() ([]byte, error) { return a.SharedSecret(rfcHexBytes(t, tt.pubB)) },
				"Bob":   func() ([]byte, error) { return b.SharedSecret(rfcHexBytes(t, tt.pubA)) },
			} {
				got, err := es()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s's K = %x, want %x", name, got, want)
				}
			}
		})
	}
}

// leBytes encodes v little-endian in n bytes, as RFC 7748 encodes u.
func leBytes(v *big.Int, n int) []byte {
	b := v.FillBytes(make([]byte, n))
	slices.Reverse(b)
	return b
}

func bigHex(t *testing.T, s string) *big.Int {
	t.Helper()
	v, ok := new(big.Int).SetString(s, 16)
	if !ok {
		t.Fatalf("bad hex %q", s)
	}
	return v
}

// x25519LowOrderInputs lists u encodings that force the all-zero output:
// the points of order 1, 2, 4 and 8 on Curve25519 and its twist (0, 1,
// p-1 and the two order-8 u-coordinates, as listed in Bernstein's "How do
// I validate Curve25519 public keys?" and libsodium's blocklist), their
// non-canonical forms u+p where they fit in 255 bits, and every one of
// those with the ignored bit 255 set.
func x25519LowOrderInputs(t *testing.T) [][]byte {
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	two255 := new(big.Int).Lsh(big.NewInt(1), 255)
	order8 := []string{
		// Big-endian forms of the little-endian encodings
		// e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800 and
		// 5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157.
		"00b8495f16056286fdb1329ceb8d09da6ac49ff1fae35616aeb8413b7c7aebe0",
		"57119fd0dd4e22d8868e1c58c45c44045bef839c55b1d0b1248c50a3bc959c5f",
	}
	base := []*big.Int{big.NewInt(0), big.NewInt(1), new(big.Int).Sub(p, big.NewInt(1))}
	for _, s := range order8 {
		base = append(base, bigHex(t, s))
	}
	var vals []*big.Int
	for _, u := range base {
		vals = append(vals, u)
		if up := new(big.Int).Add(u, p); up.Cmp(two255) < 0 {
			vals = append(vals, up)
		}
	}
	var out [][]byte
	for _, v := range vals {
		out = append(out, leBytes(v, 32))
		out = append(out, leBytes(new(big.Int).Or(v, two255), 32))
	}
	return out
}

func TestX25519LowOrderPoints(t *testing.T) {
	inputs := x25519LowOrderInputs(t)
	for seed := range byte(4) {
		k, err := GenerateKey(TEPCurve25519, kaTestReader(seed))
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range inputs {
			es, err := k.SharedSecret(u)
			if !errors.Is(err, ErrZeroSharedSecret) {
				t.Errorf("u=%x: ES=%x err=%v, want ErrZeroSharedSecret", u, es, err)
			}
			if es != nil {
				t.Errorf("u=%x: non-nil ES with an error", u)
			}
		}
	}
}

func TestX448LowOrderPoints(t *testing.T) {
	p := new(big.Int).Lsh(big.NewInt(1), 448)
	p.Sub(p, new(big.Int).Lsh(big.NewInt(1), 224))
	p.Sub(p, big.NewInt(1))
	one := big.NewInt(1)
	vals := []*big.Int{
		big.NewInt(0), one, new(big.Int).Sub(p, one), // order 2, 4 (twist), 4
		new(big.Int).Set(p), new(big.Int).Add(p, one), // non-canonical 0 and 1
	}
	for seed := range byte(4) {
		k, err := GenerateKey(TEPCurve448, kaTestReader(seed))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			u := leBytes(v, 56)
			if es, err := k.SharedSecret(u); !errors.Is(err, ErrZeroSharedSecret) {
				t.Errorf("u=%x: ES=%x err=%v, want ErrZeroSharedSecret", u, es, err)
			}
		}
	}
}

// RFC 7748 §5: implementations MUST accept non-canonical u (≥ p) and
// reduce it; X25519 also ignores bit 255. Such inputs must give the same
// ES as the canonical value.
func TestX25519X448NonCanonicalU(t *testing.T) {
	p25519 := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	p448 := new(big.Int).Lsh(big.NewInt(1), 448)
	p448.Sub(p448, new(big.Int).Lsh(big.NewInt(1), 224))
	p448.Sub(p448, big.NewInt(1))
	tests := []struct {
		tep   TEP
		size  int
		base  int64
		p     *big.Int
		extra *big.Int // a bit the function ignores, or nil
	}{
		{TEPCurve25519, 32, 9, p25519, new(big.Int).Lsh(big.NewInt(1), 255)},
		{TEPCurve448, 56, 5, p448, nil},
	}
	for _, tt := range tests {
		k, err := GenerateKey(tt.tep, kaTestReader(9))
		if err != nil {
			t.Fatal(err)
		}
		u := big.NewInt(tt.base)
		want, err := k.SharedSecret(leBytes(u, tt.size))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(want, k.AppendPublic(nil)) {
			t.Errorf("%v: SharedSecret(base point) != public key", tt.tep)
		}
		variants := []*big.Int{new(big.Int).Add(u, tt.p)}
		if tt.extra != nil {
			variants = append(variants, new(big.Int).Or(u, tt.extra))
		}
		for _, v := range variants {
			got, err := k.SharedSecret(leBytes(v, tt.size))
			if err != nil {
				t.Errorf("%v: u=%x: %v", tt.tep, v, err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%v: u=%x gave a different ES", tt.tep, v)
			}
		}
	}
}

func TestKeyAgreeWrongPublicKeyLength(t *testing.T) {
	for _, tep := range kaTEPs {
		k, err := GenerateKey(tep, nil)
		if err != nil {
			t.Fatal(err)
		}
		valid := k.AppendPublic(nil)
		n := len(valid)
		cases := map[string][]byte{
			"nil":         nil,
			"empty":       {},
			"one byte":    {0x02},
			"short by 1":  valid[:n-1],
			"long by 1":   append(bytes.Clone(valid), 0),
			"double":      append(bytes.Clone(valid), valid...),
			"other curve": make([]byte, otherLen(tep)),
		}
		for name, pub := range cases {
			if _, err := k.SharedSecret(pub); !errors.Is(err, ErrInvalidPublicKey) {
				t.Errorf("%v %s (%d bytes): err = %v, want ErrInvalidPublicKey", tep, name, len(pub), err)
			}
		}
	}
}

// otherLen returns a public-key length that belongs to another TEP.
func otherLen(tep TEP) int {
	if tep == TEPCurve25519 {
		return PublicKeyLen(TEPCurve448)
	}
	return PublicKeyLen(TEPCurve25519)
}

// nistWire builds a pubkey_len-prefixed encoding with an arbitrary form
// byte and body.
func nistWire(pubkeyLen int, form byte, body []byte) []byte {
	w := binary.BigEndian.AppendUint16(nil, uint16(pubkeyLen))
	w = append(w, form)
	return append(w, body...)
}

func TestP256P521BadPubkeyLen(t *testing.T) {
	for _, tep := range []TEP{TEPP256, TEPP521} {
		k, err := GenerateKey(tep, nil)
		if err != nil {
			t.Fatal(err)
		}
		peer, err := GenerateKey(tep, nil)
		if err != nil {
			t.Fatal(err)
		}
		valid := peer.AppendPublic(nil)
		L := len(valid)
		if _, err := k.SharedSecret(valid); err != nil {
			t.Fatalf("%v: valid key rejected: %v", tep, err)
		}
		// L-2 is what pubkey_len would be if it did not count itself: the
		// other reading of RFC 8548 §5, which we reject.
		for _, l := range []int{0, 1, 2, L - 2, L - 1, L + 1, 0x0100 + L, 0xffff} {
			bad := bytes.Clone(valid)
			binary.BigEndian.PutUint16(bad, uint16(l))
			if _, err := k.SharedSecret(bad); !errors.Is(err, ErrInvalidPublicKey) {
				t.Errorf("%v pubkey_len=%d: err = %v, want ErrInvalidPublicKey", tep, l, err)
			}
		}
	}
}

func TestP256P521NonCompressedEncodings(t *testing.T) {
	for _, tep := range []TEP{TEPP256, TEPP521} {
		c := nistCurveFor(tep)
		k, err := GenerateKey(tep, nil)
		if err != nil {
			t.Fatal(err)
		}
		ek, err := c.curve.GenerateKey(crand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		unc := ek.PublicKey().Bytes() // 04 || X || Y
		x, y := unc[1:1+c.size], unc[1+c.size:]
		hybrid := append([]byte{0x06 | y[len(y)-1]&1}, unc[1:]...)

		cases := map[string][]byte{
			// Self-consistent pubkey_len, but not compressed.
			"uncompressed":       nistWire(2+len(unc), unc[0], unc[1:]),
			"hybrid":             nistWire(2+len(hybrid), hybrid[0], hybrid[1:]),
			"wrong-parity hybrd": nistWire(2+len(hybrid), hybrid[0]^1, hybrid[1:]),
			// Right total length, wrong form byte.
			"form 04, X only": nistWire(c.wireLen(), 0x04, x),
			"form 06, X only": nistWire(c.wireLen(), 0x06, x),
			"form 07, X only": nistWire(c.wireLen(), 0x07, x),
			"form 00, X only": nistWire(c.wireLen(), 0x00, x),
			"form 01, X only": nistWire(c.wireLen(), 0x01, x),
			"form ff, X only": nistWire(c.wireLen(), 0xff, x),
			"form 12, X only": nistWire(c.wireLen(), 0x12, x),
			// Point at infinity: IEEE 1363 / SEC 1 encode it as one 0x00.
			"infinity 00":      {0x00, 0x03, 0x00},
			"infinity no data": {0x00, 0x02},
			"infinity padded":  nistWire(c.wireLen(), 0x00, make([]byte, c.size)),
			"all zero":         make([]byte, c.wireLen()),
			"all ff":           bytes.Repeat([]byte{0xff}, c.wireLen()),
		}
		for name, pub := range cases {
			if _, err := k.SharedSecret(pub); !errors.Is(err, ErrInvalidPublicKey) {
				t.Errorf("%v %s: err = %v, want ErrInvalidPublicKey", tep, name, err)
			}
		}
	}
}

func TestP256P521CoordinateNotReduced(t *testing.T) {
	for _, tep := range []TEP{TEPP256, TEPP521} {
		c := nistCurveFor(tep)
		k, err := GenerateKey(tep, nil)
		if err != nil {
			t.Fatal(err)
		}
		pPlus := func(d int64) []byte {
			return new(big.Int).Add(c.p, big.NewInt(d)).FillBytes(make([]byte, c.size))
		}
		// Find a valid x whose x+p still fits: then x+p would decode to a
		// real point if the range check were missing.
		var validSmallX []byte
		for i := int64(0); i < 100; i++ {
			if big.Jacobi(kaRHS(c, big.NewInt(i)), c.p) == 1 {
				validSmallX = pPlus(i)
				break
			}
		}
		xs := [][]byte{pPlus(0), pPlus(1), bytes.Repeat([]byte{0xff}, c.size)}
		if validSmallX != nil && len(validSmallX) == c.size {
			xs = append(xs, validSmallX)
		}
		for _, x := range xs {
			for _, form := range []byte{0x02, 0x03} {
				pub := nistWire(c.wireLen(), form, x)
				if _, err := k.SharedSecret(pub); !errors.Is(err, ErrInvalidPublicKey) {
					t.Errorf("%v x=%x: err = %v, want ErrInvalidPublicKey", tep, x, err)
				}
			}
		}
	}
}

// kaRHS computes x³ − 3x + b mod p, independently of decodePublic.
func kaRHS(c *nistKA, x *big.Int) *big.Int {
	r := new(big.Int).Exp(x, big.NewInt(3), c.p)
	r.Sub(r, new(big.Int).Mul(big.NewInt(3), x))
	r.Add(r, c.b)
	return r.Mod(r, c.p)
}

func TestP256P521NotOnCurve(t *testing.T) {
	for _, tep := range []TEP{TEPP256, TEPP521} {
		c := nistCurveFor(tep)
		k, err := GenerateKey(tep, nil)
		if err != nil {
			t.Fatal(err)
		}
		peer, err := GenerateKey(tep, nil)
		if err != nil {
			t.Fatal(err)
		}
		valid := peer.AppendPublic(nil)

		// x-coordinates with no point: small ones, and a valid key's x
		// nudged until x³ − 3x + b is a non-residue (Jacobi symbol −1,
		// computed without the decoder's square root).
		var bad [][]byte
		for i := int64(0); len(bad) < 3 && i < 1000; i++ {
			if big.Jacobi(kaRHS(c, big.NewInt(i)), c.p) == -1 {
				bad = append(bad, big.NewInt(i).FillBytes(make([]byte, c.size)))
			}
		}
		x := new(big.Int).SetBytes(valid[3:])
		for len(bad) < 6 {
			x.Add(x, big.NewInt(1))
			if x.Cmp(c.p) < 0 && big.Jacobi(kaRHS(c, x), c.p) == -1 {
				bad = append(bad, x.FillBytes(make([]byte, c.size)))
			}
		}
		for _, bx := range bad {
			for _, form := range []byte{0x02, 0x03} {
				pub := nistWire(c.wireLen(), form, bx)
				if _, err := k.SharedSecret(pub); !errors.Is(err, ErrInvalidPublicKey) {
					t.Errorf("%v x=%x: err = %v, want ErrInvalidPublicKey", tep, bx, err)
				}
			}
		}
	}
}

// Compressing our keys and decompressing the peer's must agree with
// crypto/ecdh's uncompressed encoding, and ES must equal crypto/ecdh's
// ECDH on the uncompressed key.
func TestP256P521CompressDecompressProperty(t *testing.T) {
	iters := 64
	if testing.Short() {
		iters = 8
	}
	for _, tep := range []TEP{TEPP256, TEPP521} {
		t.Run(tep.String(), func(t *testing.T) {
			c := nistCurveFor(tep)
			parity := [2]int{}
			for range iters {
				ek, err := c.curve.GenerateKey(crand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				unc := ek.PublicKey().Bytes()
				k, err := NewPrivateKey(tep, ek.Bytes())
				if err != nil {
					t.Fatal(err)
				}
				wire := k.AppendPublic(nil)
				odd := unc[len(unc)-1] & 1
				parity[odd]++
				if want := nistWire(c.wireLen(), 0x02|odd, unc[1:1+c.size]); !bytes.Equal(wire, want) {
					t.Fatalf("wire %x, want %x", wire, want)
				}
				pk, err := c.decodePublic(tep, wire)
				if err != nil {
					t.Fatalf("decodePublic: %v", err)
				}
				if !bytes.Equal(pk.Bytes(), unc) {
					t.Fatalf("decompressed %x, want %x", pk.Bytes(), unc)
				}

				other, err := c.curve.GenerateKey(crand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				want, err := other.ECDH(ek.PublicKey())
				if err != nil {
					t.Fatal(err)
				}
				ko, err := NewPrivateKey(tep, other.Bytes())
				if err != nil {
					t.Fatal(err)
				}
				got, err := ko.SharedSecret(wire)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) || len(got) != c.size {
					t.Fatalf("ES %x, want %x", got, want)
				}
			}
			if iters >= 64 && (parity[0] == 0 || parity[1] == 0) {
				t.Errorf("parities seen: %v; both forms should occur", parity)
			}
		})
	}
}

// The base point decompresses to the published generator (SP 800-186).
func TestP256P521Generator(t *testing.T) {
	tests := []struct {
		tep  TEP
		x, y string
	}{
		{
			TEPP256,
			"6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
			"4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
		},
		{
			TEPP521,
			"00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3d" +
				"baa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66",
			"011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e66" +
				"2c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650",
		},
	}
	for _, tt := range tests {
		c := nistCurveFor(tt.tep)
		x, y := rfcHexBytes(t, tt.x), rfcHexBytes(t, tt.y)
		form := 0x02 | y[len(y)-1]&1
		pk, err := c.decodePublic(tt.tep, nistWire(c.wireLen(), form, x))
		if err != nil {
			t.Fatalf("%v: %v", tt.tep, err)
		}
		want := append(append([]byte{0x04}, x...), y...)
		if !bytes.Equal(pk.Bytes(), want) {
			t.Errorf("%v: generator decompressed to %x", tt.tep, pk.Bytes())
		}
		// The other parity is −G, also a valid point.
		if _, err := c.decodePublic(tt.tep, nistWire(c.wireLen(), form^1, x)); err != nil {
			t.Errorf("%v: −G rejected: %v", tt.tep, err)
		}
		// With scalar 1, ES is the peer's x-coordinate.
		one := make([]byte, c.size)
		one[len(one)-1] = 1
		k, err := NewPrivateKey(tt.tep, one)
		if err != nil {
			t.Fatal(err)
		}
		if got := k.AppendPublic(nil); !bytes.Equal(got, nistWire(c.wireLen(), form, x)) {
			t.Errorf("%v: 1·G encodes as %x", tt.tep, got)
		}
	}
}

// The hard-coded curve constants match crypto/elliptic's parameters.
func TestP256P521CurveConstants(t *testing.T) {
	for _, tt := range []struct {
		c      *nistKA
		params *elliptic.CurveParams
	}{
		{p256KA, elliptic.P256().Params()},
		{p521KA, elliptic.P521().Params()},
	} {
		if tt.c.p.Cmp(tt.params.P) != 0 || tt.c.b.Cmp(tt.params.B) != 0 ||
			new(big.Int).SetBytes(tt.c.n).Cmp(tt.params.N) != 0 {
			t.Errorf("%s: constants differ from crypto/elliptic", tt.params.Name)
		}
		if (tt.params.BitSize+7)/8 != tt.c.size {
			t.Errorf("%s: size %d, want %d", tt.params.Name, tt.c.size, (tt.params.BitSize+7)/8)
		}
		if top := tt.params.N.BitLen() - 8*(tt.c.size-1); tt.c.topMask != byte(1<<top-1) {
			t.Errorf("%s: topMask %#x, want %#x", tt.params.Name, tt.c.topMask, byte(1<<top-1))
		}
	}
}

func TestKeyAgreeNewPrivateKeyInvalid(t *testing.T) {
	n256 := p256KA.n
	n521 := p521KA.n
	minus1 := func(n []byte) []byte {
		v := new(big.Int).SetBytes(n)
		return v.Sub(v, big.NewInt(1)).FillBytes(make([]byte, len(n)))
	}
	plus1 := func(n []byte) []byte {
		v := new(big.Int).SetBytes(n)
		return v.Add(v, big.NewInt(1)).FillBytes(make([]byte, len(n)))
	}
	p521Max := append([]byte{0x01}, bytes.Repeat([]byte{0xff}, 65)...)
	tests := []struct {
		name   string
		tep    TEP
		scalar []byte
		ok     bool
	}{
		{"X25519 31 bytes", TEPCurve25519, make([]byte, 31), false},
		{"X25519 33 bytes", TEPCurve25519, make([]byte, 33), false},
		{"X25519 zero (clamped to a valid scalar)", TEPCurve25519, make([]byte, 32), true},
		{"X448 55 bytes", TEPCurve448, make([]byte, 55), false},
		{"X448 57 bytes", TEPCurve448, make([]byte, 57), false},
		{"X448 zero (clamped to a valid scalar)", TEPCurve448, make([]byte, 56), true},
		{"P-256 31 bytes", TEPP256, make([]byte, 31), false},
		{"P-256 33 bytes", TEPP256, make([]byte, 33), false},
		{"P-256 zero", TEPP256, make([]byte, 32), false},
		{"P-256 n", TEPP256, n256, false},
		{"P-256 n+1", TEPP256, plus1(n256), false},
		{"P-256 all ff", TEPP256, bytes.Repeat([]byte{0xff}, 32), false},
		{"P-256 n-1", TEPP256, minus1(n256), true},
		{"P-521 65 bytes", TEPP521, make([]byte, 65), false},
		{"P-521 67 bytes", TEPP521, make([]byte, 67), false},
		{"P-521 zero", TEPP521, make([]byte, 66), false},
		{"P-521 n", TEPP521, n521, false},
		{"P-521 n+1", TEPP521, plus1(n521), false},
		{"P-521 2^521-1", TEPP521, p521Max, false},
		{"P-521 above 2^521", TEPP521, bytes.Repeat([]byte{0xff}, 66), false},
		{"P-521 n-1", TEPP521, minus1(n521), true},
	}
	for _, tt := range tests {
		k, err := NewPrivateKey(tt.tep, tt.scalar)
		if tt.ok {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			} else if len(k.AppendPublic(nil)) != PublicKeyLen(tt.tep) {
				t.Errorf("%s: bad public key length", tt.name)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidPrivateKey) {
			t.Errorf("%s: err = %v, want ErrInvalidPrivateKey", tt.name, err)
		}
	}
}

func TestKeyAgreeScalarInRange(t *testing.T) {
	for _, c := range []*nistKA{p256KA, p521KA} {
		n := new(big.Int).SetBytes(c.n)
		for _, d := range []int64{-3, -2, -1, 0, 1, 2} {
			v := new(big.Int).Add(n, big.NewInt(d))
			want := d < 0
			if got := c.scalarInRange(v.FillBytes(make([]byte, c.size))); got != want {
				t.Errorf("size %d: scalarInRange(n%+d) = %v, want %v", c.size, d, got, want)
			}
		}
		r := kaTestReader(7)
		for range 200 {
			s := make([]byte, c.size)
			r.Read(s)
			s[0] &= c.topMask
			v := new(big.Int).SetBytes(s)
			want := v.Sign() > 0 && v.Cmp(n) < 0
			if got := c.scalarInRange(s); got != want {
				t.Fatalf("scalarInRange(%x) = %v, want %v", s, got, want)
			}
		}
		if c.scalarInRange(make([]byte, c.size)) {
			t.Error("zero scalar in range")
		}
	}
}

func TestKeyAgreeDestroy(t *testing.T) {
	for _, tep := range kaTEPs {
		k, err := GenerateKey(tep, nil)
		if err != nil {
			t.Fatal(err)
		}
		peer, err := GenerateKey(tep, nil)
		if err != nil {
			t.Fatal(err)
		}
		pub := k.AppendPublic(nil)
		k.Destroy()
		if _, err := k.SharedSecret(peer.AppendPublic(nil)); !errors.Is(err, ErrKeyDestroyed) {
			t.Errorf("%v: SharedSecret after Destroy: err = %v", tep, err)
		}
		if !bytes.Equal(k.AppendPublic(nil), pub) {
			t.Errorf("%v: public key changed by Destroy", tep)
		}
		if k.ecdhKey != nil || !allZero(k.x448Key[:]) {
			t.Errorf("%v: key material left after Destroy", tep)
		}
		k.Destroy() // idempotent
	}
	var nilKey *PrivateKey
	nilKey.Destroy()
	if _, err := nilKey.SharedSecret(nil); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("nil key: err = %v", err)
	}
}

// Errors and formatted keys must not reveal key bytes.
func TestKeyAgreeNoKeyBytesInOutput(t *testing.T) {
	for _, tep := range kaTEPs {
		scalar := make([]byte, map[TEP]int{TEPCurve25519: 32, TEPCurve448: 56, TEPP256: 32, TEPP521: 66}[tep])
		kaTestReader(3).Read(scalar)
		scalar[0] &= nistTopMaskOr(tep)
		k, err := NewPrivateKey(tep, scalar)
		if err != nil {
			t.Fatal(err)
		}
		peer, err := GenerateKey(tep, nil)
		if err != nil {
			t.Fatal(err)
		}
		pub := peer.AppendPublic(nil)
		bad := bytes.Clone(pub)
		if tep == TEPP256 || tep == TEPP521 {
			bad[2] = 0x04
		}
		scalarHex := hex.EncodeToString(scalar)
		for _, s := range []string{
			fmt.Sprint(k), fmt.Sprintf("%+v", k), fmt.Sprintf("%#v", k), fmt.Sprintf("%x", k),
			fmt.Sprintf("%v", *k),
		} {
			if strings.Contains(s, scalarHex[:16]) || strings.Contains(s, fmt.Sprint(scalar[:8])) {
				t.Errorf("%v: formatted key reveals scalar: %q", tep, s)
			}
		}
		var errs []error
		for _, p := range [][]byte{bad, pub[:len(pub)-1], append(bytes.Clone(pub), 0)} {
			if _, err := k.SharedSecret(p); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) < 2 {
			t.Fatalf("%v: expected errors, got %d", tep, len(errs))
		}
		for _, e := range errs {
			msg := e.Error()
			if strings.Contains(msg, hex.EncodeToString(pub[3:11])) || strings.Contains(msg, scalarHex[:16]) {
				t.Errorf("%v: error reveals key bytes: %q", tep, msg)
			}
		}
	}
}

// nistTopMaskOr keeps the P-521 scalar below n; other TEPs take any bytes
// (a P-256 random scalar is ≥ n with probability < 2^-32).
func nistTopMaskOr(tep TEP) byte {
	if tep == TEPP521 {
		return p521KA.topMask
	}
	return 0xff
}

func TestKeyAgreeConcurrentSharedSecret(t *testing.T) {
	for _, tep := range kaTEPs {
		k, err := GenerateKey(tep, nil)
		if err != nil {
			t.Fatal(err)
		}
		peer, err := GenerateKey(tep, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := peer.SharedSecret(k.AppendPublic(nil))
		if err != nil {
			t.Fatal(err)
		}
		pub := peer.AppendPublic(nil)
		errc := make(chan error, 4)
		for range 4 {
			go func() {
				es, err := k.SharedSecret(pub)
				if err == nil && !bytes.Equal(es, want) {
					err = fmt.Errorf("%v: ES mismatch", tep)
				}
				errc <- err
			}()
		}
		for range 4 {
			if err := <-errc; err != nil {
				t.Error(err)
			}
		}
	}
}

// The NIST ES is the x-coordinate only, so a peer key with the parity bit
// flipped (−P) gives the same ES. Harmless in tcpcrypt because Init1 and
// Init2 are hashed into PRK, but pinned here so that it is a known
// property rather than a surprise.
func TestP256P521ParityFlipSameES(t *testing.T) {
	for _, tep := range []TEP{TEPP256, TEPP521} {
		k, err := GenerateKey(tep, nil)
		if err != nil {
			t.Fatal(err)
		}
		peer, err := GenerateKey(tep, nil)
		if err != nil {
			t.Fatal(err)
		}
		pub := peer.AppendPublic(nil)
		es1, err := k.SharedSecret(pub)
		if err != nil {
			t.Fatal(err)
		}
		pub[2] ^= 1
		es2, err := k.SharedSecret(pub)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(es1, es2) {
			t.Errorf("%v: ES changed with the point's sign", tep)
		}
	}
}

func BenchmarkKeyAgreement(b *testing.B) {
	for _, tep := range kaTEPs {
		b.Run(tep.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ka, err := GenerateKey(tep, nil)
				if err != nil {
					b.Fatal(err)
				}
				kb, err := GenerateKey(tep, nil)
				if err != nil {
					b.Fatal(err)
				}
				esA, err := ka.SharedSecret(kb.AppendPublic(nil))
				if err != nil {
					b.Fatal(err)
				}
				esB, err := kb.SharedSecret(ka.AppendPublic(nil))
				if err != nil {
					b.Fatal(err)
				}
				if len(esA) != len(esB) {
					b.Fatal("ES length mismatch")
				}
				ka.Destroy()
				kb.Destroy()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(b.N), "µs/op")
		})
	}
}

// Decompression is the only part of SharedSecret that is ours rather than
// crypto/ecdh's, so measure it alone.
func BenchmarkKeyAgreeNISTDecompress(b *testing.B) {
	for _, tep := range []TEP{TEPP256, TEPP521} {
		b.Run(tep.String(), func(b *testing.B) {
			k, err := GenerateKey(tep, nil)
			if err != nil {
				b.Fatal(err)
			}
			wire := k.AppendPublic(nil)
			c := nistCurveFor(tep)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.decodePublic(tep, wire); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

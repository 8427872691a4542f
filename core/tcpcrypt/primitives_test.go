package tcpcrypt

// Known-answer tests for the primitives tcpcrypt is built on: HKDF-SHA256
// (Extract and CPRF = Expand), AES-GCM and ChaCha20-Poly1305. They guard
// against regressions in the libraries and in how we call them. Every hex
// value is copied from the RFC text in /work/rfc; spaces and line breaks
// follow the RFC's layout and are ignored.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// rfcHexBytes decodes hex written the way RFCs print it: whitespace and
// a leading "0x" are ignored.
func rfcHexBytes(t testing.TB, s string) []byte {
	t.Helper()
	s = strings.Join(strings.Fields(s), "")
	s = strings.TrimPrefix(s, "0x")
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in test table: %v", err)
	}
	return b
}

func TestPrimitiveHKDFSHA256RFC5869(t *testing.T) {
	tests := []struct {
		name                      string
		ikm, salt, info, prk, okm string
		length                    int
	}{
		{
			name: "A.1",
			ikm:  "0x0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
			salt: "0x000102030405060708090a0b0c",
			info: "0xf0f1f2f3f4f5f6f7f8f9",
			prk: `0x077709362c2e32df0ddc3f0dc47bba63
			        90b6c73bb50f9c3122ec844ad7c2b3e5`,
			okm: `0x3cb25f25faacd57a90434f64d0362f2a
			        2d2d0a90cf1a5a4c5db02d56ecc4c5bf
			        34007208d5b887185865`,
			length: 42,
		},
		{
			name: "A.2",
			ikm: `0x000102030405060708090a0b0c0d0e0f
			        101112131415161718191a1b1c1d1e1f
			        202122232425262728292a2b2c2d2e2f
			        303132333435363738393a3b3c3d3e3f
			        404142434445464748494a4b4c4d4e4f`,
			salt: `0x606162636465666768696a6b6c6d6e6f
			        707172737475767778797a7b7c7d7e7f
			        808182838485868788898a8b8c8d8e8f
			        909192939495969798999a9b9c9d9e9f
			        a0a1a2a3a4a5a6a7a8a9aaabacadaeaf`,
			info: `0xb0b1b2b3b4b5b6b7b8b9babbbcbdbebf
			        c0c1c2c3c4c5c6c7c8c9cacbcccdcecf
			        d0d1d2d3d4d5d6d7d8d9dadbdcdddedf
			        e0e1e2e3e4e5e6e7e8e9eaebecedeeef
			        f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff`,
			prk: `0x06a6b88c5853361a06104c9ceb35b45c
			        ef760014904671014a193f40c15fc244`,
			okm: `0xb11e398dc80327a1c8e7f78c596a4934
			        4f012eda2d4efad8a050cc4c19afa97c
			        59045a99cac7827271cb41c65e590e09
			        da3275600c2f09b8367793a9aca3db71
			        cc30c58179ec3e87c14c01d5c1f3434f
			        1d87`,
			length: 82,
		},
		{
			name: "A.3", // zero-length salt and info
			ikm:  "0x0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
			salt: "",
			info: "",
			prk: `0x19ef24a32c717b167f33a91d6f648bdf
			        96596776afdb6377ac434c1c293ccb04`,
			okm: `0x8da4e775a563c18f715f802a063c5a31
			        b8a11f5c5ee1879ec3454e5f3c738d2d
			        9d201395faa4b61a96c8`,
			length: 42,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ikm := rfcHexBytes(t, tt.ikm)
			salt := rfcHexBytes(t, tt.salt)
			info := rfcHexBytes(t, tt.info)
			wantPRK := rfcHexBytes(t, tt.prk)
			wantOKM := rfcHexBytes(t, tt.okm)
			if len(wantOKM) != tt.length {
				t.Fatalf("table: OKM is %d bytes, L = %d", len(wantOKM), tt.length)
			}

			prk, err := hkdf.Extract(sha256.New, ikm, salt)
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if !bytes.Equal(prk, wantPRK) {
				t.Errorf("PRK = %x, want %x", prk, wantPRK)
			}
			okm, err := hkdf.Expand(sha256.New, prk, string(info), tt.length)
			if err != nil {
				t.Fatalf("Expand: %v", err)
			}
			if !bytes.Equal(okm, wantOKM) {
				t.Errorf("OKM = %x, want %x", okm, wantOKM)
			}
			// Expand output is a prefix-stable stream: the first K_LEN
			// bytes of a longer expansion equal a K_LEN expansion.
			short, err := hkdf.Expand(sha256.New, prk, string(info), SecretLen)
			if err != nil {
				t.Fatalf("Expand(%d): %v", SecretLen, err)
			}
			if !bytes.Equal(short, wantOKM[:SecretLen]) {
				t.Errorf("Expand(%d) = %x, want prefix %x", SecretLen, short, wantOKM[:SecretLen])
			}
		})
	}
}

// RFC 7714 §16 uses one RTP packet for all examples: a 12-octet header
// (the AAD) and the 38-octet payload "Gallia est omnis divisa in partes
// tres", with the IV 51753c6580c2726f20718414 formed from the salt.
const (
	rfc7714AAD = "8040f17b 8041f8d3 5501a0b2"
	rfc7714PT  = `47616c6c 69612065 7374206f 6d6e6973
	              20646976 69736120 696e2070 61727465
	              73207472 6573`
	rfc7714IV = "51 75 3c 65 80 c2 72 6f 20 71 84 14"
)

func TestPrimitiveAESGCMRFC7714(t *testing.T) {
	tests := []struct {
		name string
		key  string
		aad  string
		pt   string
		out  string // "Cipher with tag"
	}{
		{
			name: "16.1.1 AEAD_AES_128_GCM encryption",
			key:  "00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f",
			aad:  rfc7714AAD,
			pt:   rfc7714PT,
			out: `f24de3a3 fb34de6c acba861c 9d7e4bca
			      be633bd5 0d294e6f 42a5f47a 51c7d19b
			      36de3adf 8833899d 7f27beb1 6a9152cf
			      765ee439 0cce`,
		},
		{
			name: "16.2.1 AEAD_AES_256_GCM encryption",
			key: `00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f
			      10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f`,
			aad: rfc7714AAD,
			pt:  rfc7714PT,
			out: `32b1de78 a822fe12 ef9f78fa 332e33aa
			      b1801238 9a58e2f3 b50b2a02 76ffae0f
			      1ba63799 b87b7aa3 db36dfff d6b0f9bb
			      7878d7a7 6c13`,
		},
		{
			// Authentication only: the whole packet is AAD, no plaintext.
			name: "16.1.3 AEAD_AES_128_GCM authentication tagging",
			key:  "00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f",
			aad:  rfc7714AAD + rfc7714PT,
			pt:   "",
			out:  "22493f82 d2bce397 e9d79e3b 19aa4216",
		},
		{
			name: "16.2.3 AEAD_AES_256_GCM authentication tagging",
			key: `00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f
			      10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f`,
			aad: rfc7714AAD + rfc7714PT,
			pt:  "",
			out: "a866d591 0f887463 067ceefe c45215d4",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := rfcHexBytes(t, tt.key)
			block, err := aes.NewCipher(key)
			if err != nil {
				t.Fatalf("aes.NewCipher: %v", err)
			}
			aead, err := cipher.NewGCM(block)
			if err != nil {
				t.Fatalf("cipher.NewGCM: %v", err)
			}
			checkAEADVector(t, aead, rfcHexBytes(t, rfc7714IV), rfcHexBytes(t, tt.aad), rfcHexBytes(t, tt.pt), rfcHexBytes(t, tt.out))
		})
	}
}

func TestPrimitiveChaCha20Poly1305RFC8439(t *testing.T) {
	tests := []struct {
		name            string
		key, nonce, aad string
		pt, ct, tag     string
	}{
		{
			// The nonce is the 32-bit fixed-common part 07000000 followed
			// by the 64-bit IV 4041424344454647.
			name:  "2.8.2",
			key:   "80 81 82 83 84 85 86 87 88 89 8a 8b 8c 8d 8e 8f 90 91 92 93 94 95 96 97 98 99 9a 9b 9c 9d 9e 9f",
			nonce: "07 00 00 00" + "40 41 42 43 44 45 46 47",
			aad:   "50 51 52 53 c0 c1 c2 c3 c4 c5 c6 c7",
			pt: `4c 61 64 69 65 73 20 61 6e 64 20 47 65 6e 74 6c
			     65 6d 65 6e 20 6f 66 20 74 68 65 20 63 6c 61 73
			     73 20 6f 66 20 27 39 39 3a 20 49 66 20 49 20 63
			     6f 75 6c 64 20 6f 66 66 65 72 20 79 6f 75 20 6f
			     6e 6c 79 20 6f 6e 65 20 74 69 70 20 66 6f 72 20
			     74 68 65 20 66 75 74 75 72 65 2c 20 73 75 6e 73
			     63 72 65 65 6e 20 77 6f 75 6c 64 20 62 65 20 69
			     74 2e`,
			ct: `d3 1a 8d 34 64 8e 60 db 7b 86 af bc 53 ef 7e c2
			     a4 ad ed 51 29 6e 08 fe a9 e2 b5 a7 36 ee 62 d6
			     3d be a4 5e 8c a9 67 12 82 fa fb 69 da 92 72 8b
			     1a 71 de 0a 9e 06 0b 29 05 d6 a5 b6 7e cd 3b 36
			     92 dd bd 7f 2d 77 8b 8c 98 03 ae e3 28 09 1b 58
			     fa b3 24 e4 fa d6 75 94 55 85 80 8b 48 31 d7 bc
			     3f f4 de f0 8e 4b 7a 9d e5 76 d2 65 86 ce c6 4b
			     61 16`,
			tag: "1a e1 0b 59 4f 09 e2 6a 7e 90 2e cb d0 60 06 91",
		},
		{
			name:  "A.5 decryption",
			key:   "1c 92 40 a5 eb 55 d3 8a f3 33 88 86 04 f6 b5 f0 47 39 17 c1 40 2b 80 09 9d ca 5c bc 20 70 75 c0",
			nonce: "00 00 00 00 01 02 03 04 05 06 07 08",
			aad:   "f3 33 88 86 00 00 00 00 00 00 4e 91",
			pt: `49 6e 74 65 72 6e 65 74 2d 44 72 61 66 74 73 20
			     61 72 65 20 64 72 61 66 74 20 64 6f 63 75 6d 65
			     6e 74 73 20 76 61 6c 69 64 20 66 6f 72 20 61 20
			     6d 61 78 69 6d 75 6d 20 6f 66 20 73 69 78 20 6d
			     6f 6e 74 68 73 20 61 6e 64 20 6d 61 79 20 62 65
			     20 75 70 64 61 74 65 64 2c 20 72 65 70 6c 61 63
			     65 64 2c 20 6f 72 20 6f 62 73 6f 6c 65 74 65 64
			     20 62 79 20 6f 74 68 65 72 20 64 6f 63 75 6d 65
			     6e 74 73 20 61 74 20 61 6e 79 20 74 69 6d 65 2e
			     20 49 74 20 69 73 20 69 6e 61 70 70 72 6f 70 72
			     69 61 74 65 20 74 6f 20 75 73 65 20 49 6e 74 65
			     72 6e 65 74 2d 44 72 61 66 74 73 20 61 73 20 72
			     65 66 65 72 65 6e 63 65 20 6d 61 74 65 72 69 61
			     6c 20 6f 72 20 74 6f 20 63 69 74 65 20 74 68 65
			     6d 20 6f 74 68 65 72 20 74 68 61 6e 20 61 73 20
			     2f e2 80 9c 77 6f 72 6b 20 69 6e 20 70 72 6f 67
			     72 65 73 73 2e 2f e2 80 9d`,
			ct: `64 a0 86 15 75 86 1a f4 60 f0 62 c7 9b e6 43 bd
			     5e 80 5c fd 34 5c f3 89 f1 08 67 0a c7 6c 8c b2
			     4c 6c fc 18 75 5d 43 ee a0 9e e9 4e 38 2d 26 b0
			     bd b7 b7 3c 32 1b 01 00 d4 f0 3b 7f 35 58 94 cf
			     33 2f 83 0e 71 0b 97 ce 98 c8 a8 4a bd 0b 94 81
			     14 ad 17 6e 00 8d 33 bd 60 f9 82 b1 ff 37 c8 55
			     97 97 a0 6e f4 f0 ef 61 c1 86 32 4e 2b 35 06 38
			     36 06 90 7b 6a 7c 02 b0 f9 f6 15 7b 53 c8 67 e4
			     b9 16 6c 76 7b 80 4d 46 a5 9b 52 16 cd e7 a4 e9
			     90 40 c5 a4 04 33 22 5e e2 82 a1 b0 a0 6c 52 3e
			     af 45 34 d7 f8 3f a1 15 5b 00 47 71 8c bc 54 6a
			     0d 07 2b 04 b3 56 4e ea 1b 42 22 73 f5 48 27 1a
			     0b b2 31 60 53 fa 76 99 19 55 eb d6 31 59 43 4e
			     ce bb 4e 46 6d ae 5a 10 73 a6 72 76 27 09 7a 10
			     49 e6 17 d9 1d 36 10 94 fa 68 f0 ff 77 98 71 30
			     30 5b ea ba 2e da 04 df 99 7b 71 4d 6c 6f 2c 29
			     a6 ad 5c b4 02 2b 02 70 9b`,
			tag: "ee ad 9d 67 89 0c bb 22 39 23 36 fe a1 85 1f 38",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aead, err := chacha20poly1305.New(rfcHexBytes(t, tt.key))
			if err != nil {
				t.Fatalf("chacha20poly1305.New: %v", err)
			}
			out := append(rfcHexBytes(t, tt.ct), rfcHexBytes(t, tt.tag)...)
			checkAEADVector(t, aead, rfcHexBytes(t, tt.nonce), rfcHexBytes(t, tt.aad), rfcHexBytes(t, tt.pt), out)
		})
	}
}

// checkAEADVector checks Seal against a known ciphertext||tag, Open back
// to the plaintext, and that Open rejects any single-bit change of the
// ciphertext, tag or AAD. The tcpcrypt AEADs all use 12-byte nonces and
// 16-byte tags (RFC 8548 §6), so those sizes are checked too.
func checkAEADVector(t *testing.T, aead cipher.AEAD, nonce, aad, pt, want []byte) {
	t.Helper()
	if aead.NonceSize() != 12 || aead.Overhead() != 16 {
		t.Fatalf("NonceSize, Overhead = %d, %d; want 12, 16", aead.NonceSize(), aead.Overhead())
	}
	if len(want) != len(pt)+16 {
		t.Fatalf("table: output is %d bytes for %d bytes of plaintext", len(want), len(pt))
	}
	got := aead.Seal(nil, nonce, pt, aad)
	if !bytes.Equal(got, want) {
		t.Fatalf("Seal = %x\nwant   %x", got, want)
	}
	opened, err := aead.Open(nil, nonce, want, aad)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !bytes.Equal(opened, pt) {
		t.Fatalf("Open = %x, want %x", opened, pt)
	}
	for _, bit := range []int{0, 8*len(want) - 1, 8 * (len(want) - 16)} {
		bad := bytes.Clone(want)
		bad[bit/8] ^= 1 << (bit % 8)
		if _, err := aead.Open(nil, nonce, bad, aad); err == nil {
			t.Errorf("Open accepted output with bit %d flipped", bit)
		}
	}
	if len(aad) > 0 {
		badAAD := bytes.Clone(aad)
		badAAD[len(badAAD)-1] ^= 0x80
		if _, err := aead.Open(nil, nonce, want, badAAD); err == nil {
			t.Error("Open accepted a modified AAD")
		}
	}
}

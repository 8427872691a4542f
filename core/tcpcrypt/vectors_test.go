package tcpcrypt_test

// TestVectorsFile checks testdata/vectors.json the way another
// implementation would: from the documented schema, with crypto/hkdf and
// the AEADs used directly, not through this package's key schedule or
// frame code. Only key agreement and Init parsing come from the package.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

type vecFrame struct {
	Dir       string `json:"dir"`
	Offset    uint64 `json:"offset"`
	Gen       uint64 `json:"gen"`
	Control   int    `json:"control"`
	Plaintext string `json:"plaintext_hex"`
	Data      string `json:"data_hex"`
	Frame     string `json:"frame_hex"`
}

type vecKeys struct {
	Gen uint64 `json:"gen"`
	KAB string `json:"k_ab_hex"`
	KBA string `json:"k_ba_hex"`
}

type vec struct {
	Name       string     `json:"name"`
	Kind       string     `json:"kind"`
	TEP        int        `json:"tep"`
	AEAD       int        `json:"aead"`
	Transcript string     `json:"transcript_hex"`
	Init1      string     `json:"init1_hex"`
	Init2      string     `json:"init2_hex"`
	APriv      string     `json:"a_priv_hex"`
	BPriv      string     `json:"b_priv_hex"`
	ES         string     `json:"es_hex"`
	SS0        string     `json:"ss0_hex"`
	SS1        string     `json:"ss1_hex"`
	PrevSS     string     `json:"prev_ss_hex"`
	SS         string     `json:"ss_hex"`
	SSNext     string     `json:"ss_next_hex"`
	NonceA     string     `json:"nonce_a_hex"`
	NonceB     string     `json:"nonce_b_hex"`
	SubA       string     `json:"syn_subopt_a_hex"`
	SubB       string     `json:"syn_subopt_b_hex"`
	MK0        string     `json:"mk0_hex"`
	SessID     string     `json:"sessid_hex"`
	KAB        string     `json:"k_ab_hex"`
	KBA        string     `json:"k_ba_hex"`
	ResumeA    string     `json:"resume_a_hex"`
	ResumeB    string     `json:"resume_b_hex"`
	Keys       []vecKeys  `json:"keys"`
	Frames     []vecFrame `json:"frames"`
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func expand(t *testing.T, key []byte, info []byte, n int) []byte {
	t.Helper()
	out, err := hkdf.Expand(sha256.New, key, string(info), n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func eqHex(t *testing.T, field string, got []byte, want string) {
	t.Helper()
	if hex.EncodeToString(got) != want {
		t.Errorf("%s = %x, file says %s", field, got, want)
	}
}

func keyLen(aead int) int {
	if aead == 1 {
		return 16
	}
	return 32
}

func TestVectorsFile(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/vectors.json")
	if err != nil {
		t.Fatalf("read vectors (generate them with 'make vectors'): %v", err)
	}
	var file struct{ Vectors []vec }
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&file); err != nil {
		t.Fatal(err)
	}
	covered := map[[2]int]bool{}
	var resumed, rekeyed, above32 int
	for _, v := range file.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			var mk0 []byte
			switch v.Kind {
			case "", "fresh":
				mk0 = checkFresh(t, &v)
				covered[[2]int{v.TEP, v.AEAD}] = true
			case "resumed":
				mk0 = checkResumed(t, &v)
				resumed++
			default:
				t.Fatalf("unknown kind %q", v.Kind)
			}
			eqHex(t, "mk0", mk0, v.MK0)
			kl := keyLen(v.AEAD) + 12
			mk := mk0
			keys := map[uint64][2][]byte{}
			for gen := uint64(0); gen < uint64(len(v.Keys)) || gen == 0; gen++ {
				if gen > 0 {
					mk = expand(t, mk, []byte{0x03}, 32)
				}
				kab, kba := expand(t, mk, []byte{0x04}, kl), expand(t, mk, []byte{0x05}, kl)
				keys[gen] = [2][]byte{kab, kba}
				if gen == 0 {
					eqHex(t, "k_ab", kab, v.KAB)
					eqHex(t, "k_ba", kba, v.KBA)
				}
				if gen < uint64(len(v.Keys)) {
					eqHex(t, "keys.k_ab", kab, v.Keys[gen].KAB)
					eqHex(t, "keys.k_ba", kba, v.Keys[gen].KBA)
				}
			}
			r, a := checkFrames(t, &v, keys)
			rekeyed += r
			above32 += a
		})
	}
	teps := []int{0x21, 0x22, 0x23, 0x24}
	for _, tep := range teps {
		for _, aead := range []int{1, 2, 16} {
			if !covered[[2]int{tep, aead}] {
				t.Errorf("no fresh vector for TEP %#x AEAD %d", tep, aead)
			}
		}
	}
	if resumed == 0 || rekeyed == 0 || above32 == 0 {
		t.Errorf("coverage: %d resumed vectors, %d rekeyed frames, %d frames above 2^32", resumed, rekeyed, above32)
	}
}

func checkFresh(t *testing.T, v *vec) []byte {
	tep := tcpcrypt.TEP(v.TEP)
	init1, init2 := unhex(t, v.Init1), unhex(t, v.Init2)
	m1, err := tcpcrypt.ParseInit1(tep, init1)
	if err != nil {
		t.Fatalf("Init1: %v", err)
	}
	m2, err := tcpcrypt.ParseInit2(tep, init2)
	if err != nil {
		t.Fatalf("Init2: %v", err)
	}
	if int(m2.AEAD) != v.AEAD {
		t.Errorf("Init2 chose %v, vector says %d", m2.AEAD, v.AEAD)
	}
	a, err := tcpcrypt.NewPrivateKey(tep, unhex(t, v.APriv))
	if err != nil {
		t.Fatal(err)
	}
	b, err := tcpcrypt.NewPrivateKey(tep, unhex(t, v.BPriv))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.AppendPublic(nil), m1.PubA) || !bytes.Equal(b.AppendPublic(nil), m2.PubB) {
		t.Fatal("Init public keys do not belong to the private keys")
	}
	esA, err := a.SharedSecret(m2.PubB)
	if err != nil {
		t.Fatal(err)
	}
	esB, err := b.SharedSecret(m1.PubA)
	if err != nil || !bytes.Equal(esA, esB) {
		t.Fatalf("hosts disagree on ES: %v", err)
	}
	if v.ES != "" {
		eqHex(t, "es", esA, v.ES)
	}
	transcript := unhex(t, v.Transcript)
	if len(transcript) < 4 || transcript[0] != 69 || int(transcript[1]) >= len(transcript) || transcript[transcript[1]] != 69 {
		t.Fatalf("transcript is not two kind-69 options: %x", transcript)
	}
	ikm := bytes.Join([][]byte{transcript, init1, init2, esA}, nil)
	ss0, _ := hkdf.Extract(sha256.New, ikm, m1.NonceA[:])
	eqHex(t, "ss0", ss0, v.SS0)
	sid := append([]byte{byte(v.TEP)}, expand(t, ss0, []byte{0x02}, 32)...)
	eqHex(t, "sessid", sid, v.SessID)
	ss1 := expand(t, ss0, []byte{0x01}, 32)
	if v.SS1 != "" {
		eqHex(t, "ss1", ss1, v.SS1)
	}
	r1 := expand(t, ss1, []byte{0x06}, 18)
	eqHex(t, "resume_a", r1[:9], v.ResumeA)
	eqHex(t, "resume_b", r1[9:], v.ResumeB)
	return expand(t, ss0, []byte{0x03}, 32)
}

func checkResumed(t *testing.T, v *vec) []byte {
	prev := unhex(t, v.PrevSS)
	ss := expand(t, prev, []byte{0x01}, 32)
	eqHex(t, "ss", ss, v.SS)
	nA, nB := unhex(t, v.NonceA), unhex(t, v.NonceB)
	if len(nA) > 8 || len(nB) > 8 {
		t.Fatal("nonce longer than 8 bytes")
	}
	r := expand(t, ss, []byte{0x06}, 18)
	tepByte := byte(v.TEP) | 0x80
	eqHex(t, "syn_subopt_a", append(append([]byte{tepByte}, r[:9]...), nA...), v.SubA)
	eqHex(t, "syn_subopt_b", append(append([]byte{tepByte}, r[9:]...), nB...), v.SubB)
	if v.Transcript != "" {
		tr := unhex(t, v.Transcript)
		if !bytes.Contains(tr, unhex(t, v.SubA)) || !bytes.Contains(tr, unhex(t, v.SubB)) {
			t.Error("transcript lacks a resumption suboption")
		}
	}
	sn := append(append([]byte{}, nA...), nB...)
	sid := append([]byte{tepByte}, expand(t, ss, append([]byte{0x02}, sn...), 32)...)
	eqHex(t, "sessid", sid, v.SessID)
	next := expand(t, ss, []byte{0x01}, 32)
	if v.SSNext != "" {
		eqHex(t, "ss_next", next, v.SSNext)
	}
	rn := expand(t, next, []byte{0x06}, 18)
	eqHex(t, "resume_a", rn[:9], v.ResumeA)
	eqHex(t, "resume_b", rn[9:], v.ResumeB)
	return expand(t, ss, append([]byte{0x03}, sn...), 32)
}

func newAEAD(t *testing.T, id int, key []byte) cipher.AEAD {
	if id == 16 {
		a, err := chacha20poly1305.New(key)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := cipher.NewGCM(blk)
	return a
}

func checkFrames(t *testing.T, v *vec, keys map[uint64][2][]byte) (rekeyed, above32 int) {
	type dirState struct {
		gen    uint64
		end    uint64
		fin    bool
		frames int
	}
	state := map[string]*dirState{"ab": {}, "ba": {}}
	kl := keyLen(v.AEAD)
	for i, f := range v.Frames {
		st := state[f.Dir]
		if st == nil {
			t.Fatalf("frame %d: dir %q", i, f.Dir)
		}
		wire := unhex(t, f.Frame)
		if st.fin {
			t.Errorf("frame %d (%s) follows a FINp frame", i, f.Dir)
		}
		if st.frames > 0 && f.Offset < st.end {
			t.Errorf("frame %d (%s) at %d overlaps the previous frame ending at %d", i, f.Dir, f.Offset, st.end)
		}
		rekey := f.Control&1 == 1
		if rekey != (f.Gen == st.gen+1) || (!rekey && f.Gen != st.gen) {
			t.Errorf("frame %d: rekey bit %v with gen %d after gen %d", i, rekey, f.Gen, st.gen)
		}
		if f.Control&^1 != 0 {
			t.Errorf("frame %d: cres bits set", i)
		}
		k, ok := keys[f.Gen]
		if !ok {
			t.Fatalf("frame %d: no keys for gen %d", i, f.Gen)
		}
		tk := k[0]
		if f.Dir == "ba" {
			tk = k[1]
		}
		nonce := make([]byte, 12)
		binary.BigEndian.PutUint64(nonce[4:], f.Offset)
		for j := range nonce {
			nonce[j] ^= tk[kl+j]
		}
		if len(wire) < 3 || int(binary.BigEndian.Uint16(wire[1:3])) != len(wire)-3 || int(wire[0]) != f.Control {
			t.Fatalf("frame %d: bad header %x", i, wire[:min(3, len(wire))])
		}
		pt, err := newAEAD(t, v.AEAD, tk[:kl]).Open(nil, nonce, wire[3:], wire[:3])
		if err != nil {
			t.Fatalf("frame %d (%s, offset %d, gen %d) does not open: %v", i, f.Dir, f.Offset, f.Gen, err)
		}
		eqHex(t, "plaintext", pt, f.Plaintext)
		if pt[0]&^3 != 0 {
			t.Errorf("frame %d: fres bits set", i)
		}
		data := pt[1:]
		if pt[0]&2 != 0 {
			data = data[2:]
		}
		if f.Data != "" || len(data) == 0 {
			eqHex(t, "data", data, f.Data)
		}
		st.gen, st.end, st.fin = f.Gen, f.Offset+uint64(len(wire)), pt[0]&1 != 0
		st.frames++
		if rekey {
			rekeyed++
		}
		if f.Offset > 1<<32 {
			above32++
		}
	}
	return rekeyed, above32
}

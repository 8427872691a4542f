// Command genvectors writes the published tcpcrypt test vectors
// (testdata/vectors.json, schema in testdata/README.md).
//
// Every input is derived from fixed labels, so the output is identical on
// every run; `make test` regenerates the file and compares. Each value is
// computed twice: once step by step from the key-schedule primitives, and
// once by running the real handshake (Init1/Init2) and sessions; the two
// must agree before anything is written.
package main

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"

	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

type keyGen struct {
	Gen uint64 `json:"gen"`
	KAB string `json:"k_ab_hex"`
	KBA string `json:"k_ba_hex"`
	MK  string `json:"mk_hex"`
}

type frame struct {
	Dir       string `json:"dir"`
	Offset    uint64 `json:"offset"`
	Gen       uint64 `json:"gen"`
	Control   byte   `json:"control"`
	Plaintext string `json:"plaintext_hex"`
	Data      string `json:"data_hex"`
	Frame     string `json:"frame_hex"`
}

type vector struct {
	Name       string   `json:"name"`
	Kind       string   `json:"kind"`
	TEP        int      `json:"tep"`
	AEAD       int      `json:"aead"`
	Transcript string   `json:"transcript_hex,omitempty"`
	Init1      string   `json:"init1_hex,omitempty"`
	Init2      string   `json:"init2_hex,omitempty"`
	APriv      string   `json:"a_priv_hex,omitempty"`
	BPriv      string   `json:"b_priv_hex,omitempty"`
	ES         string   `json:"es_hex,omitempty"`
	PrevSS     string   `json:"prev_ss_hex,omitempty"`
	SS0        string   `json:"ss0_hex,omitempty"`
	SS         string   `json:"ss_hex,omitempty"`
	NonceA     string   `json:"nonce_a_hex,omitempty"`
	NonceB     string   `json:"nonce_b_hex,omitempty"`
	SubA       string   `json:"syn_subopt_a_hex,omitempty"`
	SubB       string   `json:"syn_subopt_b_hex,omitempty"`
	SS1        string   `json:"ss1_hex,omitempty"`
	SSNext     string   `json:"ss_next_hex,omitempty"`
	MK0        string   `json:"mk0_hex"`
	SessID     string   `json:"sessid_hex"`
	KAB        string   `json:"k_ab_hex"`
	KBA        string   `json:"k_ba_hex"`
	ResumeA    string   `json:"resume_a_hex"`
	ResumeB    string   `json:"resume_b_hex"`
	Keys       []keyGen `json:"keys"`
	Frames     []frame  `json:"frames"`
}

type file struct {
	Comment string   `json:"comment"`
	Vectors []vector `json:"vectors"`
}

var teps = []tcpcrypt.TEP{tcpcrypt.TEPCurve25519, tcpcrypt.TEPCurve448, tcpcrypt.TEPP256, tcpcrypt.TEPP521}
var aeads = []tcpcrypt.AEADID{tcpcrypt.AES128GCM, tcpcrypt.AES256GCM, tcpcrypt.ChaCha20Poly1305}

func main() {
	out := flag.String("o", "testdata/vectors.json", "output file (- for stdout)")
	flag.Parse()
	f := file{Comment: "tcpcrypt (RFC 8548) test vectors from tcpinc; every field is explained in testdata/README.md"}
	var resumeFrom *vector
	var resumeSS tcpcrypt.Secret
	for _, tep := range teps {
		for _, aead := range aeads {
			v, ss0, err := fresh(tep, aead)
			if err != nil {
				fatal(err)
			}
			f.Vectors = append(f.Vectors, v)
			if tep == tcpcrypt.TEPCurve25519 && aead == tcpcrypt.ChaCha20Poly1305 {
				resumeFrom, resumeSS = &f.Vectors[len(f.Vectors)-1], ss0
			}
		}
	}
	// Two resumptions in a row from the same ss[0] chain: ss[1], then
	// ss[2]; the second has empty nonces (the minimum the RFC allows).
	prev := resumeSS
	for i, nonceLen := range []int{8, 0} {
		v, next, err := resumed(resumeFrom.Name, i+1, tcpcrypt.TEPCurve25519, tcpcrypt.ChaCha20Poly1305, prev, nonceLen)
		if err != nil {
			fatal(err)
		}
		f.Vectors = append(f.Vectors, v)
		prev = next
	}
	b, err := json.MarshalIndent(&f, "", "  ")
	if err != nil {
		fatal(err)
	}
	b = append(b, '\n')
	if *out == "-" {
		os.Stdout.Write(b)
		return
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "genvectors:", err)
	os.Exit(1)
}

// label derives n deterministic bytes from a label.
func label(n int, parts ...string) []byte {
	var out []byte
	for ctr := 0; len(out) < n; ctr++ {
		h := sha512.New()
		fmt.Fprintf(h, "tcpinc test vector|%d", ctr)
		for _, p := range parts {
			h.Write([]byte("|" + p))
		}
		out = h.Sum(out)
	}
	return out[:n]
}

// scalar returns a fixed private scalar in the form NewPrivateKey takes.
func scalar(tep tcpcrypt.TEP, parts ...string) []byte {
	switch tep {
	case tcpcrypt.TEPCurve25519:
		return label(32, parts...)
	case tcpcrypt.TEPCurve448:
		return label(56, parts...)
	case tcpcrypt.TEPP256:
		return modOrder(label(40, parts...), "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551", 32)
	case tcpcrypt.TEPP521:
		return modOrder(label(80, parts...), "01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409", 66)
	}
	panic("unknown TEP")
}

// modOrder reduces a wide random value into [1, n-1], big-endian, size bytes.
func modOrder(wide []byte, nHex string, size int) []byte {
	n, _ := new(big.Int).SetString(nHex, 16)
	nm1 := new(big.Int).Sub(n, big.NewInt(1))
	k := new(big.Int).Mod(new(big.Int).SetBytes(wide), nm1)
	k.Add(k, big.NewInt(1))
	return k.FillBytes(make([]byte, size))
}

func enoOption(contents ...byte) []byte {
	return append([]byte{69, byte(len(contents) + 2)}, contents...)
}

func fresh(tep tcpcrypt.TEP, aead tcpcrypt.AEADID) (vector, tcpcrypt.Secret, error) {
	name := fmt.Sprintf("fresh %v %v", tep, aead)
	v := vector{Name: name, Kind: "fresh", TEP: int(tep), AEAD: int(aead)}
	// A offers every tcpcrypt TEP with no global suboption (b=0
	// implied); B answers with b=1 and the one TEP it chose.
	synA := enoOption(0x21, 0x22, 0x24, 0x23)
	synB := enoOption(0x01, byte(tep))
	transcript := append(append([]byte{}, synA...), synB...)
	v.Transcript = hex.EncodeToString(transcript)

	aScalar, bScalar := scalar(tep, name, "a"), scalar(tep, name, "b")
	aKey, err := tcpcrypt.NewPrivateKey(tep, aScalar)
	if err != nil {
		return v, tcpcrypt.Secret{}, err
	}
	bKey, err := tcpcrypt.NewPrivateKey(tep, bScalar)
	if err != nil {
		return v, tcpcrypt.Secret{}, err
	}
	v.APriv, v.BPriv = hex.EncodeToString(aScalar), hex.EncodeToString(bScalar)
	var nA, nB [tcpcrypt.NonceLen]byte
	copy(nA[:], label(32, name, "N_A"))
	copy(nB[:], label(32, name, "N_B"))
	// A advertises all three AEADs only when the vector's AEAD is the
	// mandatory one; otherwise it offers just that AEAD, so B's choice
	// is forced and every AEAD is covered.
	offer := []tcpcrypt.AEADID{aead}
	if aead == tcpcrypt.AES128GCM {
		offer = []tcpcrypt.AEADID{tcpcrypt.AES128GCM, tcpcrypt.ChaCha20Poly1305, tcpcrypt.AES256GCM}
	}
	cfgA := &tcpcrypt.Config{AEADs: offer}
	cfgB := &tcpcrypt.Config{AEADs: []tcpcrypt.AEADID{aead}}

	ha, err := tcpcrypt.NewInitiator(cfgA, tep, transcript, &tcpcrypt.Ephemeral{Key: aKey, Nonce: nA})
	if err != nil {
		return v, tcpcrypt.Secret{}, err
	}
	hb, err := tcpcrypt.NewResponder(cfgB, tep, transcript, &tcpcrypt.Ephemeral{Key: bKey, Nonce: nB})
	if err != nil {
		return v, tcpcrypt.Secret{}, err
	}
	init1 := bytes.Clone(ha.Init1())
	// Compute ES before the handshake destroys the keys.
	bPub := bKey.AppendPublic(nil)
	es, err := aKey.SharedSecret(bPub)
	if err != nil {
		return v, tcpcrypt.Secret{}, err
	}
	init2, sessB, err := hb.ReadInit1(init1)
	if err != nil {
		return v, tcpcrypt.Secret{}, err
	}
	sessA, err := ha.ReadInit2(init2)
	if err != nil {
		return v, tcpcrypt.Secret{}, err
	}
	v.Init1, v.Init2, v.ES = hex.EncodeToString(init1), hex.EncodeToString(init2), hex.EncodeToString(es)

	// The schedule, step by step.
	ss0 := tcpcrypt.PRK(nA[:], transcript, init1, init2, es)
	v.SS0 = hex.EncodeToString(ss0[:])
	ss1 := tcpcrypt.NextSecret(&ss0)
	v.SS1 = hex.EncodeToString(ss1[:])
	id := tcpcrypt.SessionID(byte(tep), &ss0, nil)
	v.SessID = hex.EncodeToString(id[:])
	if id != sessA.ID() || id != sessB.ID() {
		return v, ss0, errors.New(name + ": session IDs of the handshake and the schedule differ")
	}
	r1 := tcpcrypt.ResumeID(&ss1)
	v.ResumeA, v.ResumeB = hex.EncodeToString(r1[:9]), hex.EncodeToString(r1[9:])
	mk0 := tcpcrypt.MasterKey(&ss0, nil)
	keys, err := schedule(&v, aead, mk0, 2)
	if err != nil {
		return v, ss0, err
	}

	// Frames at the first offset of each direction (right after the Init
	// message), mid-stream, above 2^32 (after a rekey), with URGp, FINp.
	ab := uint64(len(init1))
	ba := uint64(len(init2))
	specs := []frameSpec{
		{dir: "ab", offset: ab, data: []byte("GET / HTTP/1.1\r\nHost: example\r\n\r\n")},
		{dir: "ba", offset: ba, data: []byte("HTTP/1.1 200 OK\r\n\r\n")},
		{dir: "ab", offset: 4096, data: label(100, name, "mid ab")},
		{dir: "ba", offset: 1 << 20, urgent: ptr(uint16(3)), data: []byte("urgent!")},
		{dir: "ab", offset: 1<<32 + 7, gen: 1, control: tcpcrypt.ControlRekey, data: nil},
		{dir: "ab", offset: 1<<32 + 27, gen: 1, data: []byte("after rekey")},
		{dir: "ba", offset: 1<<32 + 1, gen: 1, control: tcpcrypt.ControlRekey, data: []byte("rekey reply")},
		{dir: "ba", offset: 1<<40 + 3, gen: 1, flags: tcpcrypt.FlagFIN, data: []byte("bye")},
		{dir: "ab", offset: 1<<63 + 1, gen: 1, flags: tcpcrypt.FlagFIN, data: nil},
	}
	if v.Frames, err = frames(aead, keys, specs); err != nil {
		return v, ss0, err
	}
	// The sessions from the real handshake must open what the schedule
	// sealed at the first offsets.
	if err := crossCheck(sessA, sessB, v.Frames[:2]); err != nil {
		return v, ss0, fmt.Errorf("%s: %w", name, err)
	}
	sessA.Close()
	sessB.Close()
	return v, ss0, nil
}

func resumed(from string, i int, tep tcpcrypt.TEP, aead tcpcrypt.AEADID, prev tcpcrypt.Secret, nonceLen int) (vector, tcpcrypt.Secret, error) {
	name := fmt.Sprintf("resumed ss[%d] from %q, %v, %d-byte nonces", i, from, aead, nonceLen)
	v := vector{Name: name, Kind: "resumed", TEP: int(tep), AEAD: int(aead)}
	v.PrevSS = hex.EncodeToString(prev[:])
	ss := tcpcrypt.NextSecret(&prev)
	v.SS = hex.EncodeToString(ss[:])
	nonceA, nonceB := label(nonceLen, name, "nonce_a"), label(nonceLen, name, "nonce_b")
	v.NonceA, v.NonceB = hex.EncodeToString(nonceA), hex.EncodeToString(nonceB)
	r := tcpcrypt.ResumeID(&ss)
	// The host that was B in the original session opens this connection
	// (so it is A now) to show that the halves and key directions follow
	// the original role, not the current one.
	rsOrigA := tcpcrypt.ResumeSecret{TEP: tep, AEAD: aead, OrigA: true, Secret: ss, ID: r}
	rsOrigB := tcpcrypt.ResumeSecret{TEP: tep, AEAD: aead, OrigA: false, Secret: ss, ID: r}
	subA, err := tcpcrypt.AppendResumeSuboption(nil, &rsOrigA, nonceA)
	if err != nil {
		return v, ss, err
	}
	subB, err := tcpcrypt.AppendResumeSuboption(nil, &rsOrigB, nonceB)
	if err != nil {
		return v, ss, err
	}
	v.SubA, v.SubB = hex.EncodeToString(subA), hex.EncodeToString(subB)
	// The original B is the active opener (current A, b=0 implied), the
	// original A answers as the passive opener with b=1.
	synCurA := enoOption(subB...)
	synCurB := enoOption(append([]byte{0x01}, subA...)...)
	v.Transcript = hex.EncodeToString(append(append([]byte{}, synCurA...), synCurB...))

	var snBuf []byte
	sn := append(append(snBuf, nonceA...), nonceB...)
	id := tcpcrypt.SessionID(byte(tep)|tcpcrypt.ResumeBit, &ss, sn)
	v.SessID = hex.EncodeToString(id[:])
	next := tcpcrypt.NextSecret(&ss)
	v.SSNext = hex.EncodeToString(next[:])
	rn := tcpcrypt.ResumeID(&next)
	v.ResumeA, v.ResumeB = hex.EncodeToString(rn[:9]), hex.EncodeToString(rn[9:])
	mk0 := tcpcrypt.MasterKey(&ss, sn)
	keys, err := schedule(&v, aead, mk0, 2)
	if err != nil {
		return v, ss, err
	}
	specs := []frameSpec{
		{dir: "ba", offset: 0, data: []byte("resumed: original B speaks first")},
		{dir: "ab", offset: 0, data: []byte("resumed: original A answers")},
		{dir: "ab", offset: 1<<32 + 11, gen: 1, control: tcpcrypt.ControlRekey, flags: tcpcrypt.FlagFIN, data: []byte("end")},
	}
	if v.Frames, err = frames(aead, keys, specs); err != nil {
		return v, ss, err
	}
	// The real resumption path must give the same session and keys.
	sOrigA, err := tcpcrypt.Resume(&rsOrigA, nonceA, nonceB)
	if err != nil {
		return v, ss, err
	}
	sOrigB, err := tcpcrypt.Resume(&rsOrigB, nonceA, nonceB)
	if err != nil {
		return v, ss, err
	}
	if sOrigA.ID() != id || sOrigB.ID() != id {
		return v, ss, errors.New(name + ": Resume gives a different session ID")
	}
	if err := crossCheck(sOrigA, sOrigB, v.Frames[:2]); err != nil {
		return v, ss, fmt.Errorf("%s: %w", name, err)
	}
	sOrigA.Close()
	sOrigB.Close()
	return v, ss, nil
}

type trafficKeys struct{ ab, ba []*tcpcrypt.TrafficKey }

// schedule records the key generations 0..n-1 in v and returns their
// traffic keys.
func schedule(v *vector, aead tcpcrypt.AEADID, mk tcpcrypt.Secret, n int) (trafficKeys, error) {
	var tk trafficKeys
	v.MK0 = hex.EncodeToString(mk[:])
	for gen := 0; gen < n; gen++ {
		if gen > 0 {
			mk = tcpcrypt.NextMasterKey(&mk)
		}
		kab := make([]byte, aead.TrafficKeyLen())
		kba := make([]byte, aead.TrafficKeyLen())
		tcpcrypt.TrafficKeyMaterial(kab, &mk, true)
		tcpcrypt.TrafficKeyMaterial(kba, &mk, false)
		if gen == 0 {
			v.KAB, v.KBA = hex.EncodeToString(kab), hex.EncodeToString(kba)
		}
		v.Keys = append(v.Keys, keyGen{Gen: uint64(gen), KAB: hex.EncodeToString(kab), KBA: hex.EncodeToString(kba), MK: hex.EncodeToString(mk[:])})
		a, err := tcpcrypt.NewTrafficKey(aead, uint64(gen), kab)
		if err != nil {
			return tk, err
		}
		b, err := tcpcrypt.NewTrafficKey(aead, uint64(gen), kba)
		if err != nil {
			return tk, err
		}
		tk.ab, tk.ba = append(tk.ab, a), append(tk.ba, b)
	}
	return tk, nil
}

type frameSpec struct {
	dir     string
	offset  uint64
	gen     uint64
	control byte
	flags   byte
	urgent  *uint16
	data    []byte
}

func ptr[T any](v T) *T { return &v }

func frames(aead tcpcrypt.AEADID, keys trafficKeys, specs []frameSpec) ([]frame, error) {
	var out []frame
	for _, s := range specs {
		k := keys.ab[s.gen]
		if s.dir == "ba" {
			k = keys.ba[s.gen]
		}
		wire, err := k.AppendFrame(nil, s.offset, s.control, s.flags, s.urgent, s.data)
		if err != nil {
			return nil, err
		}
		pt := []byte{s.flags}
		if s.urgent != nil {
			pt[0] |= tcpcrypt.FlagURG
			pt = append(pt, byte(*s.urgent>>8), byte(*s.urgent))
		}
		pt = append(pt, s.data...)
		out = append(out, frame{Dir: s.dir, Offset: s.offset, Gen: s.gen, Control: s.control,
			Plaintext: hex.EncodeToString(pt), Data: hex.EncodeToString(s.data), Frame: hex.EncodeToString(wire)})
	}
	return out, nil
}

// crossCheck opens the first "ab" and "ba" frames with the sessions the
// real handshake produced: the original A receives ba, B receives ab.
func crossCheck(origA, origB *tcpcrypt.Session, fs []frame) error {
	for _, f := range fs {
		wire, _ := hex.DecodeString(f.Frame)
		recv := origB
		if f.Dir == "ba" {
			recv = origA
		}
		got, _, err := recv.OpenFrame(wire, f.Offset)
		if err != nil {
			return fmt.Errorf("session cannot open %s frame at %d: %w", f.Dir, f.Offset, err)
		}
		if want, _ := hex.DecodeString(f.Data); !bytes.Equal(got.Data, want) {
			return fmt.Errorf("session opened %s frame to different data", f.Dir)
		}
	}
	return nil
}

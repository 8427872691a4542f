package eno

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

var tcpcryptTEPs = []TEP{TEPTcpcryptP256, TEPTcpcryptP521, TEPTcpcryptCurve25519, TEPTcpcryptCurve448}

func TestNegotiate(t *testing.T) {
	r9 := hex.EncodeToString(h("x9"))
	r10 := hex.EncodeToString(h("x10"))
	rejectData := func(c Candidate) bool { return len(c.B.Data) == 0 }
	noRepeat := func(c Candidate) bool { return c.NA == 1 && c.NB == 1 }
	tests := []struct {
		name       string
		cfg        Config
		self, peer string
		reason     Reason
		role       Role
		negTEP     byte
		aData      string // hex of A's matching suboption data
		bData      string
	}{
		{name: "§6 Fig. 9: A offers X,Y; B answers b=1,Y",
			self: "45 04 21 23", peer: "45 04 01 23", role: RoleA, negTEP: 0x23},
		{name: "SPEC 1.10 transcript example, as A",
			self: "45 04 24 23", peer: "45 04 01 23", role: RoleA, negTEP: 0x23},
		{name: "SPEC 1.10 transcript example, as B",
			self: "45 04 01 23", peer: "45 04 24 23", role: RoleB, negTEP: 0x23},
		{name: "§4.5 last valid TEP in B's option wins",
			self: "45 04 21 23", peer: "45 05 01 21 23", role: RoleA, negTEP: 0x23},
		{name: "§4.5 B's order, not A's, sets priority",
			self: "45 04 23 21", peer: "45 05 01 23 21", role: RoleA, negTEP: 0x21},
		{name: "§4.5 last valid: B's last TEP not offered by A",
			self: "45 03 21", peer: "45 05 01 21 23", role: RoleA, negTEP: 0x21},
		{name: "§6 Fig. 12 simultaneous open, A's view",
			self: "45 04 23 21", peer: "45 06 01 21 23 25", role: RoleA, negTEP: 0x23},
		{name: "§6 Fig. 12 simultaneous open, B's view",
			self: "45 06 01 21 23 25", peer: "45 04 23 21", role: RoleB, negTEP: 0x23},
		{name: "RFC 8548 §3.2 v bit ignored: A's a3<9> matches B's 23",
			self: "45 0d 21 a3 " + r9, peer: "45 04 01 23", role: RoleA, negTEP: 0x23, aData: r9},
		{name: "§5.1 B's v bit kept: B resumes with a3",
			self: "45 0d 21 a3 " + r9, peer: "45 0e 01 a3 " + r10, role: RoleA, negTEP: 0xa3, aData: r9, bData: r10},
		{name: "§4.5 condition 2: data not acceptable, earlier TEP used",
			cfg:  Config{Accept: rejectData},
			self: "45 04 21 23", peer: "45 0f 01 21 a3 " + r10, role: RoleA, negTEP: 0x21},
		{name: "§4.5 condition 2: data not acceptable, no TEP left",
			cfg:  Config{Accept: rejectData},
			self: "45 03 23", peer: "45 0f 01 21 a3 " + r10, reason: NoCommonTEP},
		{name: "§4.5 condition 3: repetition not defined by the TEP",
			cfg:  Config{Accept: noRepeat},
			self: "45 05 21 23 23", peer: "45 05 01 21 23", role: RoleA, negTEP: 0x21},
		{name: "§4.5 no common TEP",
			self: "45 04 21 23", peer: "45 04 01 22", reason: NoCommonTEP},
		{name: "§4.6 vacuous peer option (b=1 only)",
			self: "45 04 21 23", peer: "45 03 01", reason: Vacuous},
		{name: "§4.6 vacuous peer option (empty)",
			self: "45 04 21 23", peer: "45 02", reason: Vacuous},
		{name: "§4.6 vacuous own option",
			self: "45 02", peer: "45 04 01 23", reason: Vacuous},
		{name: "§4.3 both b=0 (echoing load balancer, §8.1)",
			self: "45 04 21 23", peer: "45 04 21 23", reason: SameRoleBit},
		{name: "§4.3 both b=1",
			self: "45 04 01 23", peer: "45 04 01 23", reason: SameRoleBit},
		{name: "§4.3 neither set b, explicit 00",
			self: "45 04 00 23", peer: "45 03 23", reason: SameRoleBit},
		{name: "§4.2 z bits ignored on receipt",
			self: "45 03 23", peer: "45 04 1d 23", role: RoleA, negTEP: 0x23},
		{name: "§4.2 second global ignored (b=1 first)",
			self: "45 03 23", peer: "45 05 01 00 23", role: RoleA, negTEP: 0x23},
		{name: "§4.2 second global ignored (b=0 first)",
			self: "45 03 23", peer: "45 05 00 01 23", reason: SameRoleBit},
		{name: "§4.2 global after the TEPs",
			self: "45 03 23", peer: "45 04 23 01", role: RoleA, negTEP: 0x23},
		{name: "§4.2 AA mandatory, peer a=0",
			cfg:  Config{AAMandatory: true},
			self: "45 04 02 23", peer: "45 04 01 23", reason: AAMandatoryPeerNotAware},
		{name: "§4.2 AA mandatory, peer a=1",
			cfg:  Config{AAMandatory: true},
			self: "45 04 02 23", peer: "45 04 03 23", role: RoleA, negTEP: 0x23},
		{name: "§4.2 AA mandatory, implicit global means a=0",
			cfg:  Config{AAMandatory: true},
			self: "45 04 03 23", peer: "45 03 23", reason: AAMandatoryPeerNotAware},
		{name: "§4.4 malformed peer option",
			self: "45 03 23", peer: "45 05 01 85 a3", reason: Malformed},
		{name: "§4.4 length byte followed by v=0 TEP",
			self: "45 03 23", peer: "45 06 01 80 23 00", reason: Malformed},
		{name: "not an ENO option",
			self: "45 03 23", peer: "44 04 01 23", reason: Malformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			self, peer := h(tt.self), h(tt.peer)
			res, reason := Negotiate(&tt.cfg, self, peer)
			if reason != tt.reason {
				t.Fatalf("reason = %v, want %v", reason, tt.reason)
			}
			if reason != None {
				return
			}
			a, b := self, peer
			if tt.role == RoleB {
				a, b = peer, self
			}
			checkResult(t, &res, tt.role, tt.negTEP, a, b, tt.aData, tt.bData)
		})
	}
}

func checkResult(t *testing.T, res *Result, role Role, negTEP byte, a, b []byte, aData, bData string) {
	t.Helper()
	if res.Role() != role || res.NegTEP() != negTEP || res.SessionIDPrefix() != negTEP || res.TEP() != TEP(negTEP&^VBit) {
		t.Errorf("role %v NegTEP %#02x, want %v %#02x", res.Role(), res.NegTEP(), role, negTEP)
	}
	if want := append(append([]byte{}, a...), b...); !bytes.Equal(res.Transcript(), want) {
		t.Errorf("transcript % x, want % x (§4.8)", res.Transcript(), want)
	}
	if !bytes.Equal(res.AOption(), a) || !bytes.Equal(res.BOption(), b) {
		t.Errorf("AOption % x BOption % x", res.AOption(), res.BOption())
	}
	if got := hex.EncodeToString(res.A().Data); got != aData {
		t.Errorf("A data %s, want %s", got, aData)
	}
	if got := hex.EncodeToString(res.B().Data); got != bData {
		t.Errorf("B data %s, want %s", got, bData)
	}
	if res.B().Byte != negTEP || res.A().TEP() != res.TEP() {
		t.Errorf("A() %+v B() %+v", res.A(), res.B())
	}
	self, peer := res.A(), res.B()
	if role == RoleB {
		self, peer = peer, self
	}
	if res.Self().Byte != self.Byte || res.Peer().Byte != peer.Byte {
		t.Errorf("Self/Peer mixed up")
	}
	if got := res.AppendTranscript([]byte{0xee}); !bytes.Equal(got[1:], res.Transcript()) {
		t.Errorf("AppendTranscript")
	}
}

func TestTranscriptExample(t *testing.T) {
	// SPEC.md 1.10: A sends 45 04 24 23, B sends 45 04 01 23.
	res, r := Negotiate(&Config{}, h("45 04 24 23"), h("45 04 01 23"))
	if r != None {
		t.Fatal(r)
	}
	if got := hex.EncodeToString(res.Transcript()); got != "4504242345040123" {
		t.Fatalf("transcript %s", got)
	}
}

func TestRespond(t *testing.T) {
	r9 := hex.EncodeToString(h("x9"))
	resume := Suboption{Byte: 0xa3, Data: h("x12")}
	tests := []struct {
		name   string
		cfg    Config
		syn    string // TCP options area of the SYN
		reason Reason
		reply  string
		aData  string
	}{
		{name: "§4.5 one TEP with explicit b=1 (§4.2)",
			cfg: Config{TEPs: tcpcryptTEPs}, syn: "02 04 05 b4 45 04 21 23", reply: "45 04 01 23"},
		{name: "§4.5 B's most preferred is last in TEPs",
			cfg: Config{TEPs: []TEP{0x23, 0x21}}, syn: "45 04 21 23", reply: "45 04 01 21"},
		{name: "§4.5 only TEPs A offered",
			cfg: Config{TEPs: []TEP{0x21, 0x24}}, syn: "45 04 21 23", reply: "45 04 01 21"},
		{name: "§4.2 b forced on a passive opener; a from SelfGOpt",
			cfg: Config{TEPs: tcpcryptTEPs, SelfGOpt: GlobalA}, syn: "45 03 23", reply: "45 04 03 23"},
		{name: "§4.2 z bits never sent",
			cfg: Config{TEPs: tcpcryptTEPs, SelfGOpt: 0xff}, syn: "45 03 23", reply: "45 04 03 23"},
		{name: "§4.2 AA mandatory sends a=1 and needs the peer's",
			cfg: Config{TEPs: tcpcryptTEPs, AAMandatory: true}, syn: "45 04 02 23", reply: "45 04 03 23"},
		{name: "§4.2 AA mandatory, peer a=0 (§6 Fig. 10 case 3)",
			cfg: Config{TEPs: tcpcryptTEPs, AAMandatory: true}, syn: "45 03 23", reason: AAMandatoryPeerNotAware},
		{name: "§4.3 active opener set b=1",
			cfg: Config{TEPs: tcpcryptTEPs}, syn: "45 04 01 23", reason: SameRoleBit},
		{name: "§4.2 z bits in A's global ignored",
			cfg: Config{TEPs: tcpcryptTEPs}, syn: "45 04 1c 23", reply: "45 04 01 23"},
		{name: "§4.2 A's second global ignored",
			cfg: Config{TEPs: tcpcryptTEPs}, syn: "45 05 00 01 23", reply: "45 04 01 23"},
		{name: "RFC 8548 §3.2 fresh answer to a resumption offer",
			cfg: Config{TEPs: tcpcryptTEPs}, syn: "45 0d 21 a3 " + r9, reply: "45 04 01 23", aData: r9},
		{name: "RFC 8548 §3.5 resumption answer",
			cfg: Config{TEPs: tcpcryptTEPs, Choose: func(o Suboption, _ int) (Suboption, bool) {
				if o.V() && len(o.Data) >= 9 {
					return resume, true
				}
				return Suboption{Byte: byte(o.TEP())}, true
			}},
			syn: "45 0d 21 a3 " + r9, reply: "45 10 01 a3 " + hex.EncodeToString(h("x12")), aData: r9},
		{name: "Choose declines the favourite, next TEP",
			cfg: Config{TEPs: tcpcryptTEPs, Choose: func(o Suboption, _ int) (Suboption, bool) {
				return Suboption{Byte: byte(o.TEP())}, o.TEP() != 0x23
			}},
			syn: "45 04 21 23", reply: "45 04 01 21"},
		{name: "Choose answering another TEP is a refusal",
			cfg: Config{TEPs: tcpcryptTEPs, Choose: func(o Suboption, _ int) (Suboption, bool) {
				return Suboption{Byte: 0x22}, true
			}},
			syn: "45 04 21 23", reason: NoCommonTEP},
		{name: "Choose answering a global is a refusal",
			cfg: Config{TEPs: tcpcryptTEPs, Choose: func(o Suboption, _ int) (Suboption, bool) {
				return Suboption{Byte: 0x01}, o.TEP() == 0x23
			}},
			syn: "45 04 21 23", reason: NoCommonTEP},
		{name: "Choose's unencodable reply is a refusal",
			cfg: Config{TEPs: tcpcryptTEPs, Choose: func(o Suboption, _ int) (Suboption, bool) {
				if o.TEP() == 0x23 {
					return Suboption{Byte: 0x23, Data: h("01")}, true // data with v=0
				}
				return Suboption{Byte: byte(o.TEP()) | VBit, Data: h("x40")}, true // too long
			}},
			syn: "45 04 21 23", reason: NoCommonTEP},
		{name: "§4.6 vacuous SYN option",
			cfg: Config{TEPs: tcpcryptTEPs}, syn: "45 02", reason: Vacuous},
		{name: "§4.6 vacuous SYN option with a global",
			cfg: Config{TEPs: tcpcryptTEPs}, syn: "45 03 02", reason: Vacuous},
		{name: "§4.6 rule 2 no valid TEP",
			cfg: Config{TEPs: tcpcryptTEPs}, syn: "45 04 20 30", reason: NoCommonTEP},
		{name: "§6 Fig. 10 no ENO in SYN",
			cfg: Config{TEPs: tcpcryptTEPs}, syn: "02 04 05 b4 04 02", reason: NoENOInSYN},
		{name: "§4.1 two ENO options mean none",
			cfg: Config{TEPs: tcpcryptTEPs}, syn: "45 03 23 45 03 21", reason: MultipleENO},
		{name: "§11 kind 69 plus legacy 253/0x454E",
			cfg: Config{TEPs: tcpcryptTEPs}, syn: "45 03 23 fd 05 45 4e 21", reason: MultipleENO},
		{name: "§11 legacy option alone is not negotiated",
			cfg: Config{TEPs: tcpcryptTEPs}, syn: "fd 05 45 4e 21", reason: NoENOInSYN},
		{name: "§4.4 malformed length byte",
			cfg: Config{TEPs: tcpcryptTEPs}, syn: "45 05 23 88 a1", reason: Malformed},
		{name: "malformed options area",
			cfg: Config{TEPs: tcpcryptTEPs}, syn: "45 03 23 08 0a 00", reason: Malformed},
		{name: "ENO off by configuration",
			cfg: Config{}, syn: "45 03 23", reason: ConfigOff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte{0xee}
			out, res, reason := Respond(dst, &tt.cfg, h(tt.syn))
			if reason != tt.reason {
				t.Fatalf("reason = %v, want %v", reason, tt.reason)
			}
			if reason != None {
				if !bytes.Equal(out, dst) {
					t.Errorf("dst changed on failure: % x", out)
				}
				return
			}
			if !bytes.Equal(out[1:], h(tt.reply)) {
				t.Fatalf("reply % x, want % x", out[1:], h(tt.reply))
			}
			o, _ := ScanOptions(h(tt.syn))
			checkResult(t, &res, RoleB, h(tt.reply)[3], o.ENO, out[1:], tt.aData, hex.EncodeToString(h(tt.reply)[4:]))
			if res.SelfGOpt() != h(tt.reply)[2] || res.PeerGOpt() != mustGlobal(o.ENO) {
				t.Errorf("SelfGOpt %#02x PeerGOpt %#02x", res.SelfGOpt(), res.PeerGOpt())
			}
		})
	}
}

func mustGlobal(opt []byte) byte {
	o, err := ParseSYNOption(opt)
	if err != nil {
		panic(err)
	}
	g, _ := o.Global()
	return g
}

// The passive opener tries A's suboptions for a TEP from the last one
// backwards, and tells Choose how many there are.
func TestRespondChooseOrder(t *testing.T) {
	var seen []string
	cfg := Config{TEPs: []TEP{0x21, 0x23}, Choose: func(o Suboption, n int) (Suboption, bool) {
		seen = append(seen, hex.EncodeToString([]byte{o.Byte})+"/"+string(rune('0'+n)))
		return Suboption{}, false
	}}
	syn := "45 0f 23 21 23 a3 " + hex.EncodeToString(h("x9"))
	if _, _, r := Respond(nil, &cfg, h(syn)); r != NoCommonTEP {
		t.Fatal(r)
	}
	if got, want := strings.Join(seen, " "), "a3/3 23/3 23/3 21/1"; got != want {
		t.Errorf("Choose calls %q, want %q", got, want)
	}
}

func TestComplete(t *testing.T) {
	cfg := Config{TEPs: tcpcryptTEPs}
	sent := h("45 06 21 22 23 24")
	tests := []struct {
		name   string
		synAck string
		reason Reason
		negTEP byte
	}{
		{"§6 Fig. 9", "02 04 05 b4 45 04 01 24", None, 0x24},
		{"§6 Fig. 11 option stripped", "02 04 05 b4", NoENOInSYNACK, 0},
		{"§4.1 two ENO options", "45 04 01 24 45 04 01 23", MultipleENO, 0},
		{"§8.1 echoed SYN option", "45 06 21 22 23 24", SameRoleBit, 0},
		{"§4.6 vacuous answer", "45 03 01", Vacuous, 0},
		{"§4.4 ill-formed", "45 04 01 9f", Malformed, 0},
		{"§4.6 rule 2 B's TEP not offered", "45 04 01 20", NoCommonTEP, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, r := Complete(&cfg, sent, h(tt.synAck))
			if r != tt.reason {
				t.Fatalf("reason %v, want %v", r, tt.reason)
			}
			if r == None && (res.NegTEP() != tt.negTEP || res.Role() != RoleA) {
				t.Errorf("NegTEP %#02x role %v", res.NegTEP(), res.Role())
			}
		})
	}
}

func TestConfig(t *testing.T) {
	bad := []Config{
		{TEPs: []TEP{0x1f}},
		{TEPs: []TEP{0x80}},
		{TEPs: []TEP{0x70}},
		{TEPs: []TEP{0x21, 0x21}},
		{TEPs: tcpcryptTEPs, SelfGOpt: 0x04},
		{TEPs: []TEP{0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f,
			0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f,
			0x40, 0x41, 0x42, 0x43, 0x44, 0x45}, SelfGOpt: GlobalA},
	}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("Validate(%+v) = nil", c)
		}
	}
	good := Config{TEPs: tcpcryptTEPs, SelfGOpt: GlobalA | GlobalB}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}

	syn := []struct {
		cfg  Config
		want string
	}{
		{Config{TEPs: tcpcryptTEPs}, "45 06 21 22 23 24"},                                // §4.2 implicit 0x00 global
		{Config{TEPs: []TEP{0x23}, SelfGOpt: GlobalB}, "45 04 01 23"},                    // §4.2 b=1 for a simultaneous open
		{Config{TEPs: []TEP{0x23}, AAMandatory: true}, "45 04 02 23"},                    // §8.4
		{Config{TEPs: []TEP{0x23}, SelfGOpt: 0x1c | GlobalA}, "45 04 02 23"},             // §4.2 z sent as 0
		{Config{TEPs: []TEP{0x21, 0x23}, Offer: offer(0x23, "x9")}, "45 0d 21 a3 x9"},    // resumption last: no length byte
		{Config{TEPs: []TEP{0x23, 0x21}, Offer: offer(0x23, "x9")}, "45 0e 88 a3 x9 21"}, // length byte keeps B's order
	}
	for _, tt := range syn {
		got, err := tt.cfg.AppendSYN(nil)
		if err != nil || !bytes.Equal(got, h(tt.want)) {
			t.Errorf("AppendSYN(%+v) = % x, %v; want %s", tt.cfg.TEPs, got, err, tt.want)
		}
	}
	c := Config{TEPs: []TEP{0x23, 0x21}, Offer: offer(0x23, "x33")}
	if got, err := c.AppendSYN([]byte{1}); err == nil || !bytes.Equal(got, []byte{1}) {
		t.Errorf("AppendSYN with 33 bytes not last: % x, %v", got, err)
	}
}

func offer(tep TEP, data string) func(TEP) []byte {
	return func(t TEP) []byte {
		if t == tep {
			return h(data)
		}
		return nil
	}
}

// Respond and Complete, run on both ends of one handshake, agree.
func TestPassiveActiveAgree(t *testing.T) {
	cfgA := Config{TEPs: []TEP{0x24, 0x21, 0x23}, Offer: offer(0x21, "x12")}
	cfgB := Config{TEPs: []TEP{0x23, 0x21}, Choose: func(o Suboption, _ int) (Suboption, bool) {
		if o.V() {
			return Suboption{Byte: o.Byte, Data: h("x9")}, true
		}
		return Suboption{Byte: o.Byte}, true
	}}
	syn, err := cfgA.AppendSYN(nil)
	if err != nil {
		t.Fatal(err)
	}
	synAck, resB, r := Respond(nil, &cfgB, syn)
	if r != None {
		t.Fatal(r)
	}
	resA, r := Complete(&cfgA, syn, synAck)
	if r != None {
		t.Fatal(r)
	}
	if resA.Role() != RoleA || resB.Role() != RoleB || resA.NegTEP() != 0xa1 || resB.NegTEP() != 0xa1 {
		t.Fatalf("A %v %#02x, B %v %#02x", resA.Role(), resA.NegTEP(), resB.Role(), resB.NegTEP())
	}
	if !bytes.Equal(resA.Transcript(), resB.Transcript()) ||
		!bytes.Equal(resA.A().Data, resB.A().Data) || !bytes.Equal(resA.B().Data, resB.B().Data) {
		t.Fatal("ends disagree")
	}
	if !bytes.Equal(resA.Self().Data, h("x12")) || !bytes.Equal(resA.Peer().Data, h("x9")) {
		t.Fatal("Self/Peer data")
	}
}

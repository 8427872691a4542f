package platform_linux

import (
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Redirect mode's rules (docs/redirect.md tells the story):
//
//	gate_out   output      -150  application SYNs (not lo, not the proxy's
//	                             own, not excluded, connection undecided)
//	                             → gate queue
//	mark_out   output      -140  verdict marks → connection marks
//	nat_out    nat output  -100  SYNs the gate marked → redirect to the
//	                             proxy's outbound listener
//	hook_post  postrouting  300  the proxy's own SYN marks its connection
//	                             hooked; hooked connections → hook queue
//	                             (after source NAT, so a redirected inbound
//	                             connection's SYN-ACK has its original port)
//	mark_post  postrouting  310  hook verdict "done" → connection mark
//	gate_pre   prerouting  -150  hooked connections → hook queue; direct
//	                             connections to the proxy's ports dropped;
//	                             peers' SYNs to local addresses (not
//	                             forwarded, not excluded) → gate queue
//	mark_pre   prerouting  -140  verdict marks → connection marks (a
//	                             redirected peer connection becomes hooked,
//	                             so its ACK reaches the hook)
//	nat_pre    nat prerouting -100  SYNs the gate marked → redirect to the
//	                             proxy's inbound listener
//
// Every queue rule bypasses when no process reads the queue: without a
// running proxy, connections are plain, never stuck.

// RedirectTableName is the nftables table of redirect mode, in family
// inet; divert mode's is TableName. Each mode owns its table alone.
const RedirectTableName = "tcpinc_redirect"

var redirectTable = &nftables.Table{Name: RedirectTableName, Family: nftables.TableFamilyINet}

// Redirect-mode mark values (times the mask's lowest bit), see the
// package documentation. Packet marks:
const (
	pmProxy    = 1 // SO_MARK of the proxy's own sockets
	pmRedirect = 2 // gate verdict: redirect this SYN to the proxy
	pmDone     = 3 // verdict: stop queueing this connection
)

// Connection marks:
const (
	ctHooked = 1 // a wire leg whose handshake the SYN hook follows
	ctGated  = 2 // an application's connection the gate decided on
	ctDone   = 3 // nothing more to do (hook done, or released plain)
)

// Chain priorities: the gate and the hook queue before NAT (mangle,
// -150) on the way in and out, the hook again after source NAT (300)
// so it sees the SYN-ACK of a redirected connection with its original
// source; the mark chains one step later (a queue verdict resumes at
// the next chain, not the next rule).
const (
	prioRGate = -150
	prioRMark = -140
	prioRNAT  = -100
	prioRPost = 300
	prioRPMrk = 310
)

// redirectSpec is what the rules depend on.
type redirectSpec struct {
	kind        queueKind
	gate, hook  uint16 // queue numbers
	marks       marks
	enabled     bool
	ports       redirectPorts
	excludePort []uint16
	excludeAddr []netip.Prefix
}

// redirectPorts are the proxy's listening ports.
type redirectPorts struct{ out4, out6, in4, in6 uint16 }

func (m marks) val(v uint32) uint32 { return v * (m.mask & -m.mask) }

// installRedirectRules replaces the table, a stale one included, in one
// batch.
func installRedirectRules(conn *nftables.Conn, s redirectSpec) error {
	t := redirectTable
	conn.AddTable(t)
	conn.DelTable(t)
	conn.AddTable(t)
	chain := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio int, rules [][]expr.Any) {
		c := conn.AddChain(&nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook, Priority: nftables.ChainPriorityRef(nftables.ChainPriority(prio))})
		for _, r := range rules {
			conn.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: r})
		}
	}
	chain("gate_out", nftables.ChainTypeFilter, nftables.ChainHookOutput, prioRGate, gateRules(s, true))
	chain("mark_out", nftables.ChainTypeFilter, nftables.ChainHookOutput, prioRMark, redirectMarkRules(s.marks, ctGated))
	chain("nat_out", nftables.ChainTypeNAT, nftables.ChainHookOutput, prioRNAT, natRules(s.marks, s.ports.out4, s.ports.out6))
	chain("hook_post", nftables.ChainTypeFilter, nftables.ChainHookPostrouting, prioRPost, hookPostRules(s))
	chain("mark_post", nftables.ChainTypeFilter, nftables.ChainHookPostrouting, prioRPMrk, redirectMarkRules(s.marks, 0))
	chain("gate_pre", nftables.ChainTypeFilter, nftables.ChainHookPrerouting, prioRGate, gateRules(s, false))
	chain("mark_pre", nftables.ChainTypeFilter, nftables.ChainHookPrerouting, prioRMark, redirectMarkRules(s.marks, ctHooked))
	chain("nat_pre", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, prioRNAT, natRules(s.marks, s.ports.in4, s.ports.in6))
	return conn.Flush()
}

// updateRedirectRules replaces the gate chains' rules (policy: on/off,
// exclusions) in one batch, leaving the base chains, and so the SYNs
// held in the gate queue, in place.
func updateRedirectRules(conn *nftables.Conn, s redirectSpec) error {
	for _, out := range []bool{true, false} {
		name := "gate_pre"
		if out {
			name = "gate_out"
		}
		c := &nftables.Chain{Name: name, Table: redirectTable}
		conn.FlushChain(c)
		for _, r := range gateRules(s, out) {
			conn.AddRule(&nftables.Rule{Table: redirectTable, Chain: c, Exprs: r})
		}
	}
	return conn.Flush()
}

func removeRedirectRules(conn *nftables.Conn) error {
	conn.AddTable(redirectTable)
	conn.DelTable(redirectTable)
	return conn.Flush()
}

func ctMarkIs(m marks, v uint32) []expr.Any { return masked(loadCt(expr.CtKeyMARK), m.mask, m.val(v)) }
func pktMarkIs(m marks, v uint32) []expr.Any {
	return masked(loadMeta(expr.MetaKeyMARK), m.mask, m.val(v))
}
func setCtMark(m marks, v uint32) []expr.Any {
	return []expr.Any{loadCt(expr.CtKeyMARK),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: ne32(^m.mask), Xor: ne32(m.val(v))},
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true}}
}

// synOnly matches a SYN without ACK, RST or FIN.
func synOnly() []expr.Any {
	return []expr.Any{loadTCP(13, 1),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{tcpSYN | tcpRST | tcpFIN | tcpACK}, Xor: []byte{0}},
		cmp(expr.CmpOpEq, []byte{tcpSYN})}
}

const tcpACK = 0x10

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// gateRules: out (output hook) sends an application's SYN to the gate
// queue; in (prerouting) sends a peer's SYN to a local address there,
// and a hooked wire leg's packets to the hook queue.
func gateRules(s redirectSpec, out bool) [][]expr.Any {
	var rules [][]expr.Any
	ret := func(e ...expr.Any) { rules = append(rules, append(e, &expr.Verdict{Kind: expr.VerdictReturn})) }
	m := s.marks
	ret(loadMeta(expr.MetaKeyL4PROTO), cmp(expr.CmpOpNeq, []byte{unix.IPPROTO_TCP}))
	dev := expr.MetaKeyIIF
	if out {
		dev = expr.MetaKeyOIF
	}
	ret(loadMeta(dev), cmp(expr.CmpOpEq, ne32(1))) // lo is ifindex 1 in every namespace
	if out {
		ret(pktMarkIs(m, pmProxy)...) // the proxy's own legs: the hook takes them after NAT
	} else {
		// The hook follows wire legs before any exclusion: a leg it
		// started must finish its handshake through it.
		rules = append(rules, cat(ctMarkIs(m, ctHooked), []expr.Any{&expr.Counter{}, s.queueExpr(s.hook, true)}))
		// Nobody but the redirection reaches the proxy's ports.
		for _, p := range []uint16{s.ports.in4, s.ports.in6, s.ports.out4, s.ports.out6} {
			rules = append(rules, []expr.Any{loadTCP(2, 2), cmp(expr.CmpOpEq, be16(p)), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}})
		}
	}
	// Decided connections never come back to the gate.
	rules = append(rules, []expr.Any{loadCt(expr.CtKeyMARK),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: ne32(m.mask), Xor: ne32(0)},
		cmp(expr.CmpOpNeq, ne32(0)), &expr.Verdict{Kind: expr.VerdictReturn}})
	if !out {
		// Only connections to this host, not forwarded ones.
		ret(&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true}, cmp(expr.CmpOpNeq, ne32(unix.RTN_LOCAL)))
	}
	for _, p := range s.excludePort {
		ret(loadTCP(0, 2), cmp(expr.CmpOpEq, be16(p)))
		ret(loadTCP(2, 2), cmp(expr.CmpOpEq, be16(p)))
	}
	for _, p := range s.excludeAddr {
		for _, dst := range []bool{false, true} {
			ret(prefixMatch(p, dst)...)
		}
	}
	if s.enabled {
		// Bypass: with no proxy running, the host talks plain TCP.
		rules = append(rules, cat(synOnly(), []expr.Any{&expr.Counter{}, s.queueExpr(s.gate, true)}))
	}
	return rules
}

// hookPostRules: the proxy's own legs get the hooked connection mark
// with their first packet, and hooked legs go to the hook queue with
// their final addresses.
func hookPostRules(s redirectSpec) [][]expr.Any {
	m := s.marks
	return [][]expr.Any{
		{loadMeta(expr.MetaKeyL4PROTO), cmp(expr.CmpOpNeq, []byte{unix.IPPROTO_TCP}), &expr.Verdict{Kind: expr.VerdictReturn}},
		{loadMeta(expr.MetaKeyOIF), cmp(expr.CmpOpEq, ne32(1)), &expr.Verdict{Kind: expr.VerdictReturn}},
		cat(pktMarkIs(m, pmProxy), synOnly(), ctMarkIs(m, 0), setCtMark(m, ctHooked)),
		cat(ctMarkIs(m, ctHooked), []expr.Any{&expr.Counter{}, s.queueExpr(s.hook, true)}),
	}
}

// redirectMarkRules turn verdict packet marks into connection marks:
// pmRedirect into onRedirect (if not 0), pmDone into ctDone.
func redirectMarkRules(m marks, onRedirect uint32) [][]expr.Any {
	var rules [][]expr.Any
	if onRedirect != 0 {
		rules = append(rules, cat(pktMarkIs(m, pmRedirect), setCtMark(m, onRedirect)))
	}
	return append(rules, cat(pktMarkIs(m, pmDone), setCtMark(m, ctDone)))
}

// natRules redirect the SYNs the gate released for the proxy to its
// listener of the packet's family.
func natRules(m marks, p4, p6 uint16) [][]expr.Any {
	var rules [][]expr.Any
	for _, fp := range []struct {
		fam  byte
		port uint16
	}{{unix.NFPROTO_IPV4, p4}, {unix.NFPROTO_IPV6, p6}} {
		rules = append(rules, cat(
			[]expr.Any{loadMeta(expr.MetaKeyNFPROTO), cmp(expr.CmpOpEq, []byte{fp.fam}),
				loadMeta(expr.MetaKeyL4PROTO), cmp(expr.CmpOpEq, []byte{unix.IPPROTO_TCP})},
			pktMarkIs(m, pmRedirect),
			[]expr.Any{&expr.Counter{}, &expr.Immediate{Register: 1, Data: be16(fp.port)}, &expr.Redir{RegisterProtoMin: 1}},
		))
	}
	return rules
}

// queueExpr sends the packet to one queue.
func (s redirectSpec) queueExpr(num uint16, bypass bool) expr.Any {
	return ruleSpec{kind: s.kind, queue: num, queues: 1}.queueExpr(bypass)
}

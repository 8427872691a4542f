package platform_linux

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// TableName is the nftables table the backend owns, in family inet.
const TableName = "tcpinc"

// Chain names and priorities: the queue chains run after the host's
// filter chains, the mark chains right after them (an NFQUEUE verdict
// resumes at the next chain of the hook, not the next rule).
const (
	chainOut     = "out"
	chainIn      = "in"
	chainMarkOut = "mark_out"
	chainMarkIn  = "mark_in"
	prioQueue    = 10
	prioMark     = 11
)

// queueKind says how rules send packets to NFQUEUE.
type queueKind uint8

const (
	queueNative queueKind = iota + 1 // nft "queue" (CONFIG_NFT_QUEUE)
	queueXT                          // xtables NFQUEUE target through nft_compat
)

func (k queueKind) String() string {
	if k == queueNative {
		return "nft queue"
	}
	return "xt NFQUEUE (nft_compat)"
}

// ruleSpec is what the rules depend on.
type ruleSpec struct {
	kind         queueKind
	queue        uint16
	queues       uint16
	marks        marks
	excludePorts []uint16
	excludeAddrs []netip.Prefix
}

var table = &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}

// The base chains of the table and their hooks.
var baseChains = []struct {
	name, mark string
	hook       *nftables.ChainHook
	out        bool
}{
	{chainOut, chainMarkOut, nftables.ChainHookOutput, true},
	{chainIn, chainMarkIn, nftables.ChainHookInput, false},
}

// installRules replaces the table, a stale one included, in one batch.
func installRules(conn *nftables.Conn, s ruleSpec) error {
	// Adding first makes deleting safe when no table exists; the kernel
	// applies the whole batch or nothing.
	conn.AddTable(table)
	conn.DelTable(table)
	conn.AddTable(table)
	for _, h := range baseChains {
		q := conn.AddChain(&nftables.Chain{Name: h.name, Table: table, Type: nftables.ChainTypeFilter,
			Hooknum: h.hook, Priority: nftables.ChainPriorityRef(prioQueue)})
		for _, r := range queueRules(s, h.out) {
			conn.AddRule(&nftables.Rule{Table: table, Chain: q, Exprs: r})
		}
		m := conn.AddChain(&nftables.Chain{Name: h.mark, Table: table, Type: nftables.ChainTypeFilter,
			Hooknum: h.hook, Priority: nftables.ChainPriorityRef(prioMark)})
		for _, r := range markRules(s.marks) {
			conn.AddRule(&nftables.Rule{Table: table, Chain: m, Exprs: r})
		}
	}
	return conn.Flush()
}

// updateRules replaces the rules of the queue chains (new exclusions) in
// one batch. The table and its base chains stay: deleting a hooked chain
// would make the kernel drop every packet waiting in the queues
// (nfqnl_nf_hook_drop), and the conntrack marks of captured and plain
// connections live on.
func updateRules(conn *nftables.Conn, s ruleSpec) error {
	for _, h := range baseChains {
		q := &nftables.Chain{Name: h.name, Table: table}
		conn.FlushChain(q)
		for _, r := range queueRules(s, h.out) {
			conn.AddRule(&nftables.Rule{Table: table, Chain: q, Exprs: r})
		}
	}
	return conn.Flush()
}

// removeRules deletes the table; a missing table is not an error.
func removeRules(conn *nftables.Conn) error {
	conn.AddTable(table)
	conn.DelTable(table)
	return conn.Flush()
}

// queueRules are the rules of one queue chain, in order.
func queueRules(s ruleSpec, out bool) [][]expr.Any {
	var rules [][]expr.Any
	ret := func(e ...expr.Any) { rules = append(rules, append(e, &expr.Verdict{Kind: expr.VerdictReturn})) }

	ret(loadMeta(expr.MetaKeyL4PROTO), cmp(expr.CmpOpNeq, []byte{unix.IPPROTO_TCP}))
	dev := expr.MetaKeyIIF
	if out {
		dev = expr.MetaKeyOIF
	}
	ret(loadMeta(dev), cmp(expr.CmpOpEq, ne32(1))) // lo is ifindex 1 in every namespace
	ret(masked(loadMeta(expr.MetaKeyMARK), s.marks.mask, s.marks.inject)...)

	// Captured connections (negotiating or encrypted), before the
	// exclusions: an exclusion added while such a connection runs must
	// not let its packets bypass the engine. No bypass, so with no
	// engine they are dropped, not sent in clear. The packet mark tells
	// the backend the packet belongs to a captured connection, so one its
	// engine does not know (a restart) is dropped.
	rules = append(rules, append(masked(loadCt(expr.CtKeyMARK), s.marks.mask, s.marks.capture),
		loadMeta(expr.MetaKeyMARK),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: ne32(^s.marks.mask), Xor: ne32(s.marks.capture)},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true},
		&expr.Counter{}, s.queueExpr(false)))

	for _, p := range s.excludePorts {
		ret(loadTCP(0, 2), cmp(expr.CmpOpEq, be16(p)))
		ret(loadTCP(2, 2), cmp(expr.CmpOpEq, be16(p)))
	}
	for _, p := range s.excludeAddrs {
		for _, dst := range []bool{false, true} {
			ret(prefixMatch(p, dst)...)
		}
	}
	ret(masked(loadCt(expr.CtKeyMARK), s.marks.mask, s.marks.plain)...)

	// Packets conntrack cannot place carry no connection mark, so they
	// could belong to an encrypted connection: no bypass.
	rules = append(rules, []expr.Any{
		loadCt(expr.CtKeySTATE),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: ne32(expr.CtStateBitINVALID | expr.CtStateBitUNTRACKED), Xor: ne32(0)},
		cmp(expr.CmpOpNeq, ne32(0)),
		&expr.Counter{}, s.queueExpr(false),
	})
	// SYN and SYN-ACK of connections not yet decided: bypass when no
	// engine listens, so the host keeps talking plain TCP.
	rules = append(rules, []expr.Any{
		loadTCP(13, 1),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1,
			Mask: []byte{tcpSYN | tcpRST | tcpFIN}, Xor: []byte{0}},
		cmp(expr.CmpOpEq, []byte{tcpSYN}),
		&expr.Counter{}, s.queueExpr(true),
	})
	return rules
}

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
)

// markRules copy the verdict's packet mark to the connection mark and
// clear it from the packet.
func markRules(m marks) [][]expr.Any {
	var rules [][]expr.Any
	for _, v := range []uint32{m.capture, m.plain} {
		r := masked(loadMeta(expr.MetaKeyMARK), m.mask, v)
		r = append(r,
			loadCt(expr.CtKeyMARK),
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: ne32(^m.mask), Xor: ne32(v)},
			&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true},
			loadMeta(expr.MetaKeyMARK),
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: ne32(^m.mask), Xor: ne32(0)},
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true},
		)
		rules = append(rules, r)
	}
	return rules
}

// queueExpr sends the packet to the queues.
func (s ruleSpec) queueExpr(bypass bool) expr.Any {
	if s.kind == queueNative {
		var f expr.QueueFlag
		if bypass {
			f = expr.QueueFlagBypass
		}
		return &expr.Queue{Num: s.queue, Total: s.queues, Flag: f}
	}
	return xtNFQueue(s.queue, s.queues, bypass)
}

// xtNFQueue is the NFQUEUE target, revision 3 (struct xt_NFQ_info_v3:
// queuenum, queues_total, flags; host byte order, padded to 8 bytes).
// Without the CPU fanout flag the kernel hashes the address pair.
func xtNFQueue(num, total uint16, bypass bool) expr.Any {
	const flagBypass = 1
	info := make(xt.Unknown, 8)
	binary.NativeEndian.PutUint16(info[0:], num)
	binary.NativeEndian.PutUint16(info[2:], total)
	if bypass {
		binary.NativeEndian.PutUint16(info[4:], flagBypass)
	}
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &info}
}

// prefixMatch matches packets whose source (or destination) is in p.
func prefixMatch(p netip.Prefix, dst bool) []expr.Any {
	p = p.Masked()
	family, off, n := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	if p.Addr().Is6() && !p.Addr().Is4In6() {
		family, off, n = unix.NFPROTO_IPV6, 8, 16
	} else {
		p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96*boolInt(p.Addr().Is4In6()), 0))
	}
	if dst {
		off += n
	}
	mask := make([]byte, n)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		loadMeta(expr.MetaKeyNFPROTO), cmp(expr.CmpOpEq, []byte{family}),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
		cmp(expr.CmpOpEq, p.Addr().AsSlice()),
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func loadMeta(k expr.MetaKey) expr.Any { return &expr.Meta{Key: k, Register: 1} }
func loadCt(k expr.CtKey) expr.Any     { return &expr.Ct{Key: k, Register: 1} }

func loadTCP(off, n uint32) expr.Any {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: n}
}

func cmp(op expr.CmpOp, data []byte) expr.Any { return &expr.Cmp{Op: op, Register: 1, Data: data} }

// masked loads nothing itself: it follows load with "& mask == v".
func masked(load expr.Any, mask, v uint32) []expr.Any {
	return []expr.Any{load,
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: ne32(mask), Xor: ne32(0)},
		cmp(expr.CmpOpEq, ne32(v)),
	}
}

// Marks, interface indexes and conntrack state are host byte order in
// nftables registers; ports and addresses are network byte order.
func ne32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// probeQueueKind finds out whether the native queue expression works,
// in a throwaway table, and falls back to the xt target.
func probeQueueKind(conn *nftables.Conn) (queueKind, error) {
	probe := &nftables.Table{Name: TableName + "_probe", Family: nftables.TableFamilyINet}
	try := func(e expr.Any) error {
		conn.AddTable(probe)
		conn.DelTable(probe)
		conn.AddTable(probe)
		// A regular chain: the rule is checked but nothing is hooked.
		c := conn.AddChain(&nftables.Chain{Name: "probe", Table: probe})
		conn.AddRule(&nftables.Rule{Table: probe, Chain: c, Exprs: []expr.Any{e}})
		err := conn.Flush()
		conn.DelTable(probe)
		if derr := conn.Flush(); err == nil && derr != nil {
			return fmt.Errorf("deleting the probe table: %w", derr)
		}
		return err
	}
	errNative := try(&expr.Queue{Num: 0, Total: 1, Flag: expr.QueueFlagBypass})
	if errNative == nil {
		return queueNative, nil
	}
	if isPermission(errNative) {
		return 0, errNeedAdmin(errNative)
	}
	errXT := try(xtNFQueue(0, 1, true))
	if errXT == nil {
		return queueXT, nil
	}
	return 0, fmt.Errorf("tcpinc: the kernel can queue packets neither with nft queue (%v; needs CONFIG_NFT_QUEUE) "+
		"nor with the xt NFQUEUE target (%v; needs CONFIG_NFT_COMPAT and CONFIG_NETFILTER_XT_TARGET_NFQUEUE)", errNative, errXT)
}

//go:build linux

// Package platform_linux is the Linux capture backend of tcpinc's divert
// mode: nftables rules send the TCP packets of the host's own connections
// to NFQUEUE, one core/divert engine per queue rewrites them, and the
// verdicts (accept, accept modified, drop) go back to the kernel. Packets
// the engine creates are injected through raw sockets.
//
// # Rules
//
// The service owns the table "inet tcpinc" and nothing else. It is built,
// and a stale copy from a crashed run replaced, in one netlink batch, and
// deleted on Close. Two base chains queue packets (hooks output and input,
// priority filter+10, so the host firewall and NAT decide first); two
// chains one priority later turn the packet marks set in verdicts into
// connection (conntrack) marks:
//
//   - loopback, non-TCP and injected traffic returns at once;
//   - a connection marked captured (ENO negotiating or encrypted) is
//     queued without the bypass flag: if no engine listens, its packets
//     are dropped rather than leak in the clear (fail closed). This rule
//     comes before the exclusions, so an exclusion added by Apply while
//     such a connection runs does not let its packets bypass the engine;
//   - excluded ports and addresses (Config.Policy) return;
//   - a connection marked plain is never queued again (plain TCP costs
//     nothing after its handshake);
//   - SYN and SYN-ACK of unmarked connections are queued with the bypass
//     flag, so with no engine the host still talks plain TCP;
//   - packets conntrack calls invalid or untracked are queued without
//     bypass (they carry no connection mark, so they could otherwise
//     bypass an encrypted connection's engine).
//
// Packets of captured connections also get the capture packet mark, so a
// backend whose engine does not know the connection (it was encrypted
// before a crash and restart) drops them instead of letting the stack's
// plaintext out. After a crash the table stays: captured connections
// stall (fail closed), new connections bypass the dead queue as plain
// TCP, and the next start replaces the table.
//
// A clean stop (Run returning) first resets every encrypted connection
// on both ends with engine-made RSTs (divert.Engine.AbortAll), then
// removes the table: once the rules are gone such a connection's next
// segments would leave in plaintext. Packets that arrive in between belong
// to connections the engines no longer know and are dropped. (No
// end-to-end test covers the clean stop yet.)
//
// nft(8) cannot print the xt target inside an inet table ("XT target
// NFQUEUE not found", and a warning that iptables-nft manages the table);
// the kernel runs it all the same.
//
// Apply replaces the rules of the two queue chains in one transaction
// (flush chain, add rules): the table and its hooked chains stay, since
// unregistering a hook makes the kernel drop every packet waiting in the
// queues, and the connection marks live on.
//
// The kernel may lack the native nft queue expression (CONFIG_NFT_QUEUE);
// then the xtables NFQUEUE target runs through nft_compat. Which one is
// used is probed in a throwaway table at start.
//
// With more than one queue, the queue is picked by the kernel's
// nfqueue_hash, which hashes the address pair symmetrically: both
// directions of a connection reach the same queue and so the same engine.
// (CPU fanout would not: send and receive run on different CPUs.)
//
// # Packets
//
// Each queue is read by an in-tree NFQUEUE client (nfq_linux.go) rather
// than go-nfqueue, for speed: recvmmsg receives a batch of up to 64
// packets straight into one 68 KiB slot each, the engine works on the
// kernel's bytes where they landed (no copy), and the verdicts of the
// whole batch leave in one sendmsg, a rewritten packet's bytes sent from
// where they are (an iovec). The socket is blocking, with a 100 ms
// receive timeout to notice a stop: the kernel then wakes the worker's
// own thread, cheaper than the Go netpoller's hand-off.
//
// Queues are bound with NFQA_CFG_F_GSO: the kernel queues GSO and GRO
// super-packets (up to 64 KiB) whole instead of segmenting them first,
// and leaves partial checksums partial (NFQA_SKB_CSUMNOTREADY). The
// engine makes one frame of a super-packet's payload (the receiving
// engine reassembles frames that span segments); after the verdict the
// kernel cuts the rewritten super-packet into MSS-sized segments and
// computes their checksums. What does not fit the 16-bit IP length
// leaves in injected segments no larger than the stack's own, and so do
// retransmitted parts of a large frame and data held before the keys
// existed. A packet rewritten in place whose checksum the kernel left
// partial gets a full checksum (the kernel treats a rewritten packet's
// checksum as complete); packets the engine built have one already. A
// packet longer than a netlink attribute holds (NFQA_CAP_LEN) is dropped.
//
// ENOBUFS on a queue socket means the kernel dropped packets it could
// not queue (never accepted them: the queues are not fail-open); TCP
// retransmits them, encrypted connections included. It is counted.
//
// Engine-made packets go out through raw sockets (IPv4 IP_HDRINCL, IPv6
// IPPROTO_RAW) marked with SO_MARK so the rules do not queue them again.
// Linux has no call that delivers a crafted segment to the local stack;
// sending it to the local destination address through the same raw
// socket does: the route is local, so it loops through lo into the
// input path with its original (remote) source address, and TCP finds
// the socket by its 4-tuple.
//
// Because the engine changes sequence numbers, conntrack would see one
// direction in the stack's numbering and the other in the wire's, and
// call the connection invalid after the handshake (measured: about 1200
// of 5200 packets of a 5 MiB transfer). The backend switches
// on net.netfilter.nf_conntrack_tcp_be_liberal for its network namespace
// while it runs (and restores the previous value), unless told not to.
package platform_linux

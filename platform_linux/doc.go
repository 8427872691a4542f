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
//   - loopback, non-TCP, injected and excluded traffic returns at once;
//   - a connection marked plain is never queued again (plain TCP costs
//     nothing after its handshake);
//   - a connection marked captured (ENO negotiating or encrypted) is
//     queued without the bypass flag: if no engine listens, its packets
//     are dropped rather than leak in the clear (fail closed);
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
// Queues are bound without NFQA_CFG_F_GSO, so the kernel segments GSO and
// GRO packets and resolves partial checksums before queueing: the engine
// sees packets no larger than the path MTU, with complete checksums.
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

// Package packet provides allocation-free views over raw IPv4, IPv6 and
// TCP packets, the TCP option walk, option and payload rewriting, and the
// Internet checksum.
//
// It is the bottom layer of the divert engine: every packet the kernel
// hands to tcpinc passes through [Parse], and every packet tcpinc changes
// is changed with the functions here. Three rules follow from that:
//
//   - No allocation on any per-packet path. Views are typed byte slices
//     (like gVisor's header package), [Packet] is a small value holding the
//     buffer and a few offsets, errors are constants of type [Error].
//   - No panic on any input. Everything read from a packet is bounds
//     checked by the Parse functions; malformed input yields an error that
//     matches one of the Err* sentinels with [errors.Is].
//   - Rewrites keep packets consistent. Functions that change the length of
//     a packet (options, payload) fix the TCP data offset, the IPv4 total
//     length or IPv6 payload length, and the IPv4 header checksum.
//
// # Views
//
// [IPv4], [IPv6], [TCP] and [Options] are byte slices with accessor
// methods. A view made by a Parse function (or taken from a parsed
// [Packet]) is long enough for every fixed-offset accessor; methods whose
// extent depends on header fields (Options, Payload) clamp to the slice, so
// a view whose fields were later set to nonsense still never reads out of
// bounds. Converting an arbitrary short slice to a view type bypasses this
// guarantee.
//
// Set* methods write a field and nothing else; the caller fixes checksums
// (typically once, with [Packet.UpdateTCPChecksum]). Rewrite* methods on
// [TCP] write a field and adjust the TCP checksum incrementally (RFC 1624),
// which is what the sequence-number mapping needs on every packet.
//
// # Checksums
//
// [OnesSum] is the RFC 1071 one's complement sum, eight bytes at a time.
// Incremental updates ([ChecksumUpdate16], [ChecksumUpdate32]) follow
// RFC 1624 equation 3. Option rewrites update the TCP checksum
// incrementally too, so a segment whose checksum was valid stays valid and
// a corrupt one stays corrupt (a rewriter must not launder damaged
// packets). Packets from a kernel with checksum offload carry only a
// partial checksum; the engine recomputes those with
// [Packet.UpdateTCPChecksum].
package packet

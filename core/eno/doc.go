// Package eno implements TCP-ENO, the TCP Encryption Negotiation Option
// (RFC 8547): the option codec, the negotiation of roles and of the TEP,
// the negotiation transcript, and the per-connection handshake rules. It
// is platform-neutral and does no I/O: it works on option bytes that a
// packet engine takes out of, and puts into, TCP segments.
//
// # Layers
//
//   - Codec: Suboptions iterates the suboptions of a SYN-form option,
//     ParseSYNOption validates one, AppendOption and AppendNonSYNOption
//     encode, ScanOptions finds ENO (and TFO) options in a TCP options
//     area. Decoding never allocates; malformed input yields an error
//     matching ErrMalformed, never a panic.
//   - Negotiation: Respond (passive opener, host B), Complete (active
//     opener on the SYN-ACK) and Negotiate (any two SYN-form options,
//     including a simultaneous open) turn options and a Config into a
//     Result or a Reason. The TEP supplies the policy through Config
//     callbacks: Offer (SYN data such as a tcpcrypt resumption offer),
//     Choose (B's reply) and Accept (whether suboption data makes a TEP
//     valid, §4.5). Rules that belong to a TEP, such as tcpcrypt's "v = 1
//     with fewer than 9 data bytes is a fresh offer", live in those
//     callbacks; ENO matches TEPs without the v bit.
//   - Tracker: one connection's handshake state, driven per segment by
//     Send and Recv. It says which ENO option each outgoing segment needs,
//     when SYN data must be discarded, and when ENO is enabled or
//     disabled.
//
// # Driving a Tracker from a packet engine
//
// Keep a Tracker per connection, made with NewTracker. For every segment
// the local stack sends, call Send and insert the bytes it appends (an ENO
// option, or nothing) into the segment's options area. For every segment
// from the network, call Recv; if the Verdict says DiscardSYNData, strip
// the payload before delivery. EventEnabled means the TEP now owns the
// connection (with Result for its inputs); EventDisabled means plain TCP,
// and Reason says why. Once the TEP has its session ID, SetSessionID makes
// SessionID, SelfName and PeerName answer.
//
// # Choices where the RFC is silent
//
//   - A retransmitted SYN (or a simultaneous-open SYN-ACK) whose ENO option
//     differs from the first copy disables ENO (Reason SYNChanged); one
//     without ENO disables it by §4.6 rule 1 (SYNENORemoved). The
//     transcript always holds the first copy.
//   - A passive opener replies with its global suboption first, then one
//     TEP. It tries its TEPs from the most preferred down and, for each,
//     A's suboptions from the last one backwards, since TEPs put their
//     data-bearing (resumption) suboption last (RFC 8548 §3.5); draft-era
//     tcpcrypt even sends both 21 and a1<data>. Negotiate pairs B's
//     suboption with A's in the same order, so both ends report the same
//     pair.
//   - A received SYN+ENO segment's data is always discarded, also when the
//     SYN has several ENO options or only the legacy 253/0x454E one, and
//     when ENO is off: no TEP here defines SYN data, and discarding is
//     safe because TCP resends what was not acknowledged. A non-empty TFO
//     option beside ENO in a received SYN is not a failure: its data is
//     discarded like any other SYN data.
//   - When the local stack sends a SYN with data or a non-empty TFO
//     option, ENO is not offered (LocalSYNData) rather than the segment
//     being edited.
//   - The legacy option (kind 253 or 254, ExID 0x454E) counts towards the
//     one-ENO-per-SYN limit (§11) but is never negotiated.
//   - A TCP options area that does not parse counts as an ill-formed ENO
//     option in a SYN (Malformed).
//   - The last suboption may have v = 1 and no data at all (draft-era
//     tcpcrypt sends a bare a1); it decodes as a TEP with empty data.
//   - A length byte at the very end of an option is an overrun; one
//     followed by a byte in 0x00–0x9f is ErrLengthNotFollowedByTEP even if
//     its data would also overrun.
//   - An active opener ignores non-SYN segments before the peer's first
//     SYN, as TCP does in SYN-SENT.
//   - Segments after the first received ACK segment never change the
//     outcome; in particular once enabled there is no way back (§4.6).
package eno

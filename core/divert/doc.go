// Package divert is the packet rewriter of divert mode: it sits between
// a host's own TCP stack and the network and makes the stack's
// connections speak TCP-ENO (RFC 8547) and tcpcrypt (RFC 8548) without
// the stack knowing. It is deterministic and I/O-free (DESIGN.md, "Data
// flow"): a backend hands it batches of captured packets with Process and
// applies the verdicts; NextDeadline says when it needs to run again with
// no packets (Init retransmission, handshake timeout, expiry).
//
// # How a connection is rewritten
//
//   - SYN, SYN-ACK, ACK: an eno.Tracker decides the ENO option of each
//     segment the stack sends and reads the peer's. The MSS the peer
//     announces is lowered before the stack sees it, so a full segment
//     still fits once it becomes a frame. A connection that ends up plain
//     is reported (EventPlain) and never touched again.
//   - Key exchange: the engine itself puts Init1 (A) or Init2 (B) at the
//     start of the wire stream, retransmits it until acknowledged, and
//     answers the peer's. Data the stack sends before the keys exist is
//     held (up to 64 KiB) and encrypted when they do. Resumed
//     connections skip this.
//   - Data: each outbound segment's payload becomes one frame (more for a
//     payload above the frame limit), sealed at its offset in the wire
//     stream. Both directions keep frame records that map the stack's
//     sequence numbers to the wire's. The send buffer keeps the wire
//     bytes of unacknowledged frames, so a retransmission, however the
//     stack splits or coalesces it, re-sends exactly the bytes first sent
//     (RFC 8548 §3.6). Inbound wire bytes are reassembled (in or out of
//     order, bounded by MaxBuffer); only authenticated plaintext reaches
//     the stack, and the wire acknowledgment follows the stack's own, so
//     a segment the stack lost is delivered again from the buffer.
//   - FIN: the stack's FIN becomes FINp on the last frame (an empty frame
//     for a bare FIN). A peer's TCP FIN without FINp resets the
//     connection (RFC 8548 §3.7 SHOULD).
//   - RST: mapped both ways. An inbound RST is honoured only at the exact
//     next sequence number; one elsewhere in the window becomes a
//     challenge for the stack (RFC 5961), others are dropped and counted.
//   - Integrity failures: the segment is dropped unacknowledged (a
//     retransmission can repair corruption, RFC 8548 §3.6 MAY); after
//     MaxIntegrityFailures in a row the connection is reset on both sides.
//   - Rekeying: frames with rekey=1 are followed; when the peer moves our
//     generation the engine sends the empty rekey frame §3.8 requires.
//     The engine does not start rekeys itself.
//   - Resumption: with Config.Cache set, an active opener offers the
//     newest cached secret for the peer (only that TEP, so the SYN's ENO
//     option is 20 bytes); a passive opener accepts a named secret. The
//     next secret of a chain is cached as soon as a session has its keys
//     (RFC 8548 §3.5); an abort flushes the peer's cached secrets.
//
// Engine-built packets carry the timestamps of the latest packet in their
// direction and no SACK blocks. Segments delivered to the local stack
// carry the peer's window lowered by the frame overhead of a window's
// worth of segments, so that the stack's frames fit the peer's window.
//
// # Policy
//
// SetPolicy (core.Policy) decides what connections whose first SYN the
// engine sees from then on get: ENO at all (off: no option sent or
// answered, plain from the first SYN, counted in ConnsDisabled, reason
// eno.ConfigOff), exclusions (loopback always; ConnsExcluded), TEPs,
// AEADs, resumption, and mandatory application-aware mode (RFC 8547
// §4.2). Each connection keeps the policy it started with.
//
// # Large segments
//
// A backend may hand the engine GSO/GRO super-packets of up to 64 KiB.
// An outbound one becomes one frame in place (the kernel segments it
// after the verdict; Packet.SegmentedLater lets the engine skip its
// checksum); what does not fit the IP length field, retransmitted parts
// of a large frame (from the first retransmitted byte to the frame's
// end, without what the peer acknowledged) and held data leave in
// injected segments no larger than the stack's own. Inbound, frames that
// span segments are reassembled, the received start of an incomplete
// frame is acknowledged once the stack has everything before it (a frame
// may be larger than the peer's congestion window), and the frames of
// one segment reach the stack as one segment. Frames are sealed straight
// into the outgoing segment and opened with room for the delivering
// segment's headers in front of them. KeyPool keeps ephemeral keys ready
// (Config.Ephemerals).
//
// A SYN on the 4-tuple of an ended or plain connection starts a new
// connection (TIME_WAIT reuse), counted in ConnsReused.
//
// # Loss
//
// SACK blocks cannot be mapped and are removed; SACK-permitted is taken
// out of the peer's SYN or SYN-ACK of a connection being negotiated, so
// the stacks count duplicate ACKs (RFC 5681). The engine sends one for
// inbound data beyond a hole in the wire stream, and passes a duplicate
// ACK from the peer to the stack (but not an ACK that only moved within
// a frame).
//
// # Not yet done (see the notes)
//
// No SACK between the stacks of an encrypted connection (loss recovery
// is NewReno-style); timers are found by scanning the table.
package divert

// Package redirect is the stream proxy of redirect mode: the kernel hands
// a connection to a local proxy, which opens a second connection of its
// own and joins the two, speaking TCP-ENO (RFC 8547) and tcpcrypt
// (RFC 8548) on the leg that faces the network. It is platform-neutral:
// the platform backend (Linux nftables + NFQUEUE, Windows WinDivert
// reflection, macOS pf rdr + BPF) supplies the redirection, the packet
// hook and a dialer; this package supplies the protocol.
//
// # Two legs, one wire leg
//
// Every proxied connection has two TCP legs, and exactly one of them, the
// wire leg, crosses the network:
//
//	outbound  app ──(redirected)──► proxy ══(wire leg, proxy dials)══► peer
//	inbound   peer ══(wire leg, redirected)══► proxy ──(proxy dials)──► app
//
// A Flow names the logical connection: Src is the opener as the proxy's
// accepted socket sees it (the local application on outbound, the peer on
// inbound), Dst the original destination. The proxy always dials Dst: on
// an outbound flow that is the wire leg, on an inbound one the local leg
// to the application. The wire leg is plain TCP sockets the kernel runs;
// the proxy encrypts and decrypts on top of it with tcpcrypt.Stream.
//
// # The SYN hook (Hook)
//
// A redirect proxy cannot write TCP options, and TCP-ENO lives in the
// options of the SYN, the SYN-ACK and the first ACK. Hook is the pure,
// I/O-free packet engine a backend runs on the wire leg's handshake
// segments, before the kernel sends them or after the network delivered
// them: Process adds this host's ENO option (the SYN-form option in the
// SYN and SYN-ACK, b = 1 on the passive side, and the non-SYN option
// 45 02 on the active side's segments until the peer's first non-SYN
// segment, RFC 8547 §4.6, not counting a bare ACK of only our SYN, which
// does not prove our third segment arrived), reads the peer's, and records per wire 4-tuple
// the Outcome: ENO enabled with its eno.Result (role, TEP, transcript,
// global suboptions) and, for a resumed session, the tcpcrypt resumption
// secret; or plain with the reason. Wait hands the outcome to the proxy
// (once; secrets move with it). The table is bounded (new connections
// past it stay plain, counted) and entries expire. Verdict.Done tells the
// backend when the hook needs no more packets of a connection, so that
// plain connections and the encrypted data stream never pass through it.
//
// Only wire legs go through the hook. If the hook has no entry for a
// wire leg once its SYN has passed (policy, table full), no ENO option
// was sent on it, so ENO is certainly off: Wait reports such a leg as
// plain (eno.MidStream) at once. A leg whose handshake the hook saw but
// could not decide in time is reset rather than guessed.
//
// # Refusal (Prepare, then Serve)
//
// A proxy that accepts the application's connection before it knows the
// destination would turn "connection refused" into "accepted, then
// closed". Backends that can hold the application's SYN (Linux NFQUEUE,
// Windows WinDivert) call Prepare with the flow while they hold it:
// Prepare dials Dst (a marked socket the backend does not redirect),
// waits for the hook's outcome on outbound flows, keeps the connected leg
// for Serve, and returns a Decision: Redirect (release the SYN to the
// proxy listener), Refused, Unreachable, or Bypass when too many flows
// are being prepared (Config.MaxPending: a flood of spoofed SYNs must not
// become a flood of connections to local applications). For all but
// Redirect the Linux backend releases the SYN unredirected, so the
// kernel and the network produce exactly the answer the application
// would have had without tcpinc (a genuine RST, ICMP error or silence;
// or, for Bypass, a plain connection). Serve then joins the
// accepted connection with the prepared leg. A backend that cannot hold
// SYNs calls Serve directly; Serve dials then and, on failure, resets the
// accepted connection at once.
//
// # Joining (Join)
//
// With the outcome plain, the legs are spliced byte for byte. With ENO
// enabled, Join runs Init1/Init2 on the wire leg in the negotiated role
// (tcpcrypt.StreamHandshake; a resumed session skips it), caches the next
// resumption secret, and copies both directions through the stream codec.
// A FIN from either side becomes a FINp (or an EOF and a FIN towards the
// application), each direction closing on its own. A reset on one leg,
// and every tcpcrypt failure (integrity, truncation, bad Init), resets
// both legs with SO_LINGER 0, the closest a socket API gets to an RST;
// an application never sees a clean EOF for a broken stream. Session keys
// are erased when the connection ends.
//
// Conns and Lookup describe the proxied connections as core.ConnInfo
// (Mode redirect) for the control API; Lookup answers for the logical
// 4-tuple and for either leg's own. An ended connection stays listed for
// Config.Linger (state closed or reset): the application may still be
// reading what the proxy handed its socket.
//
// # Limits
//
// The wire leg is the proxy's own socket, so on outbound flows its source
// port differs from the application's, and on inbound flows the local
// application sees the proxy's address as its peer (Lookup maps both).
// TCP urgent data is not carried. Every byte of an encrypted connection
// crosses user space twice; plain connections are spliced by the kernel
// where the platform supports it (io.Copy between TCP sockets).
package redirect

// Package tcpcrypt implements the tcpcrypt TCP encryption protocol
// (RFC 8548) as pure computation: key agreement for the four registered
// TEPs, the Init1/Init2 messages, the key schedule, encryption frames,
// rekeying, session resumption with a bounded cache, and a stream codec
// for proxies. It does no packet I/O; the divert engine (core/divert) and
// the redirect proxy (core/redirect) drive it.
//
// # Choices where RFC 8548 is silent or unclear
//
// Each is recorded in testdata/README.md as well, and tested.
//
//   - Frame offset base. §3.6 defines the frame ID's offset as "the
//     zero-indexed byte offset of the beginning of the current encryption
//     frame in the underlying TCP datastream (that is, the offset in the
//     framing stream, not the plaintext application stream)", and §3.3
//     puts Init1 and Init2 at the start of A's and B's data streams. We
//     read this literally: offsets count the Init message, so A's first
//     frame is at offset len(Init1), B's at len(Init2), and a resumed
//     session's first frame at 0. (The draft-era scslab code counted from
//     after the Init message; that dialect is not spoken here.)
//   - pubkey_len (P-256, P-521) counts its own two bytes, as the figure
//     in §5 numbers the key bytes from 0 to L-1 with the length inside:
//     35 for P-256, 69 for P-521. Points are compressed (§5 MUST).
//   - ECDH output for P-256/P-521 is the x-coordinate as a fixed-length
//     octet string (32 or 66 bytes), the IEEE 1363 ECSVDP-DH output.
//   - The urgent field is big-endian like every other integer in §4.
//   - Resumed session IDs are TEP-byte | CPRF(ss[i], CONST_SESSID | sn[i])
//     exactly as §3.4/§3.5 say; they do not mix in the current ENO
//     transcript (RFC 8547 §5.1 would like it; the transcript reaches
//     the ID only through ss[0]).
//   - Malformed Init messages (bad magic, message_len below the minimum
//     or above MaxInitLen = 64 KiB, nciphers = 0, a message shorter than
//     its public key), no acceptable AEAD at B, and an Init2 choosing an
//     AEAD not offered: each is a distinct error and the connection is
//     aborted; encryption is already on, so there is no fallback.
//   - Rekeying (§3.8): a rekey=1 frame is exactly one generation above the
//     previous frame's. A host replies with its own rekey=1 frame only
//     when the peer's rekey moved its local generation; replying when the
//     generations already matched would need rekey=1 without a new
//     generation, which §3.8 forbids. A host starts at most one rekey at a
//     time.
//   - Resumption (§3.5): a fresh session caches ss[1] and the session
//     that used ss[i] caches ss[i+1]; ss[i] is erased as soon as mk[0] is
//     computed. The cache hands a secret out at most once (taking removes
//     it), whether or not the resumption then succeeds, so a secret never
//     secures two connections and a proposer always uses the lowest i it
//     has not tried. Secrets are never written to disk.
//   - A resumed session uses the AEAD of the session that made ss[0]:
//     RFC 8548 negotiates the AEAD only in Init1/Init2, which resumption
//     skips, so the AEAD is part of the cached state (ResumeSecret.AEAD).
//   - The ECDHE key of a handshake is used once (GenerateKey per
//     connection), which trivially meets "ephemeral keys MUST be refreshed
//     often".
//
// # Secrets
//
// Errors never contain key bytes. Session.Close and Handshake.Destroy
// zero the secrets this package holds. The standard library keeps
// expanded AES and HMAC key schedules inside its own objects where they
// cannot be wiped; dropping every reference is the best Go allows.
package tcpcrypt

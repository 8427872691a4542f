// Package platform_darwin is the macOS capture backend of tcpinc: redirect
// mode (macOS has no divert: ipfw is gone and pf has no divert-to) built
// on pf, BPF and raw sockets, feeding the platform-neutral proxy in
// core/redirect.
//
//   - pf: the service's rules live in their own anchor "tcpinc"
//     (Rules.AnchorText), called from the main ruleset by one rdr-anchor
//     and one anchor line inserted ahead of Apple's com.apple/* anchors
//     (HookMain); nothing else in the main ruleset changes, and pf is
//     enabled with a reference token (pfctl -E / -X) so that it stays
//     enabled exactly as long as someone else wants it. New outbound TCP
//     connections are routed to lo0 (route-to) and handed to the proxy by
//     rdr; DIOCNATLOOK on /dev/pf gives the original destination.
//   - Reflection: the proxy's wire leg is a kernel socket whose handshake
//     segments (SYN, the ACK and the first data) carry a DSCP mark; pf
//     routes marked segments of the service's own sockets (matched by
//     group) to lo0, where the service reads them with BPF, lets
//     redirect.Hook add the ENO option, clears the mark and sends them with
//     a raw socket. The peer's SYN-ACK is read with BPF on the real
//     interfaces. The kernel keeps owning the connection throughout: it
//     chose the ISN and options and retransmits the SYN itself (each
//     retransmission is reflected again).
//
// Files without the _darwin suffix are the OS-neutral parts (rule text,
// BPF programs, the DIOCNATLOOK request, packet edits, the BPF buffer
// parser) and are tested on every OS. docs/macos.md is the user's and the
// reviewer's guide, including what could not be verified without a Mac.
package platform_darwin

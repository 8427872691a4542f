// Package platform_windows is tcpinc's Windows capture backend, built on
// WinDivert 2.2 (a signed WFP callout driver, WinDivert64.sys, and its
// user-mode library WinDivert.dll, both shipped next to tcpincd.exe).
//
// # The binding
//
// DLL, Handle, RecvBuffer and SendBuffer are a small binding of our own
// over golang.org/x/sys/windows, without cgo. WinDivert.dll is loaded by
// absolute path (next to the executable; never searched for), and only
// the calls tcpinc needs are resolved: WinDivertOpen, RecvEx, SendEx,
// Shutdown, Close, SetParam, GetParam. Receives are overlapped and
// batched (up to 255 packets, WINDIVERT_BATCH_MAX): the OVERLAPPED, the
// lengths, the Address array and the packet bytes live in memory outside
// the Go heap (VirtualAlloc), since the driver writes them after the call
// returns. A handle has one reader; parallelism comes from several
// handles. WinDivertOpen calls are serialised within the process: the
// first open installs the driver service and concurrent first opens race.
// Failed calls return *Error, which says what to do (driver file missing,
// not elevated, signature refused, another product's driver loaded, BFE
// stopped, blocked by security software).
//
// Address mirrors WINDIVERT_ADDRESS (80 bytes; the flag bit field at
// offset 8); its layout is checked against the documented offsets on every
// OS and against a C compiler's bit fields under wine.
//
// # Divert mode (Divert)
//
// Workers handles (one goroutine and one core/divert engine each) capture
// every TCP packet that is not loopback and not excluded by the policy;
// their filters (DivertFilter) split connections by their larger port, a
// key both directions share, into mutually exclusive ranges, as WinDivert
// requires of handles of one priority. A worker receives a batch, fixes
// the checksums the driver flags as offloaded, runs the engine, and
// re-injects accepted packets and the engine's own in one batched send
// (inbound injections carry the interface the connection's packets
// arrive on).
//
// Connections that end up plain cannot leave the capture as they do on
// Linux (no connection marks; a handle's filter is fixed), so the worker
// keeps them on a fast path: their packets go straight back in the same
// batch without the engine. Connections that were open before the capture
// started join the fast path too. Encrypted connections never take it
// (fail closed), and on stop, or when a handle fails, the worker resets
// them on both ends (Engine.AbortAll) while its handle still captures,
// then shuts the handle down and drains it, dropping those connections'
// late packets.
//
// # Redirect mode (Redirect)
//
// One handle holds each application's outbound SYN while the proxy
// (core/redirect) dials the destination, then reflects the connection to
// the proxy's listener the way WinDivert's streamdump sample does: the
// SYN L:lp → R:rp is re-injected inbound as R:lp → L:P (addresses
// swapped, destination port the proxy's), and the proxy's replies L:P →
// R:lp go back to the application as R:rp → L:lp. The original
// destination is the reflected flow's entry. A refused or unreachable
// destination gets the held SYN released unchanged, so the application
// sees the real refusal or silence. The proxy's own wire legs bind ports
// of a reserved range (44300–44999), registered before their SYN leaves,
// and pass through the SYN hook (redirect.Hook) on the same handle,
// which adds and reads the ENO option. Peers' connections to this host
// are redirected too: the hook reads the peer's ENO option in the SYN,
// which waits while the proxy connects to the local server and then goes,
// its destination port rewritten, to the proxy's second listener; the
// proxy's replies leave with the server's port and, in the SYN-ACK, the
// hook's ENO option.
//
// # Testing without Windows
//
// OS-neutral parts (filters, with an evaluator of the filter language
// that checks what they match; Address encoding; batch splitting; error
// advice; reflection rewriting; the fast-path table) are tested on every
// OS. The Windows test binary runs under wine against a stand-in
// WinDivert.dll (scripts/wine/windivert_mock.c) that implements the
// calls over in-memory queues with WinDivert's overlapped semantics; with
// two gVisor TCP stacks as hosts, whole connections run through two
// backends: divert to divert, redirect to divert and back, redirect at
// both ends, plain peers, refusals, stop. See docs/windows.md.
package platform_windows

package divert

// Direction says which way a captured packet was travelling.
type Direction uint8

const (
	// Outbound packets come from the local TCP stack and go to the
	// network.
	Outbound Direction = iota
	// Inbound packets come from the network and go to the local stack.
	Inbound
)

func (d Direction) String() string {
	if d == Inbound {
		return "inbound"
	}
	return "outbound"
}

// Verdict is the engine's decision for a captured packet.
type Verdict uint8

const (
	// Accept lets the packet continue, in Packet.Buf as it is now (the
	// engine may have rewritten it; Packet.Modified says so).
	Accept Verdict = iota
	// Drop discards the packet.
	Drop
)

func (v Verdict) String() string {
	if v == Drop {
		return "drop"
	}
	return "accept"
}

// Packet is one captured IP packet (IPv4 or IPv6, TCP) in a batch.
//
// Buf holds the whole IP packet. The engine may rewrite it in place and
// may grow it into Buf's spare capacity (up to cap(Buf)), so a backend
// that cuts packets from one large receive buffer must cap each slice
// (b[off:end:limit]). It may also point Buf to a packet it built in
// engine memory instead (no copy back into the backend's buffer).
// Engine memory, and the injected packets the engine returns, stay valid
// until the next call into the engine.
type Packet struct {
	Dir      Direction
	Buf      []byte
	Verdict  Verdict
	Modified bool // Buf was rewritten; checksums are already correct
	// SegmentedLater is set by a backend for an outbound GSO
	// super-packet that the kernel cuts into segments after the verdict,
	// computing each one's TCP checksum itself: the engine may then
	// leave the TCP checksum of its rewrite stale (one pass over up to
	// 64 KiB saved). Modified then promises only the IP header checksum.
	SegmentedLater bool
}

package divert

import (
	"reflect"

	"tcpinc.dev/tcpinc/core/eno"
)

// Counters count every outcome of the engine. They are plain integers:
// an engine runs on one goroutine, and Snapshot copies them for readers.
type Counters struct {
	Packets       [2]uint64 // by Direction
	PacketsPassed uint64    // accepted unchanged (plain, unknown flows)
	PacketsBad    uint64    // not parseable as IPv4/IPv6 TCP; accepted unchanged
	Injected      uint64

	ConnsOffered    uint64 // connections that sent or received a SYN with ENO
	ConnsEncrypted  uint64 // keys established
	ConnsResumed    uint64 // ... of which by resumption (no key agreement)
	ConnsPlain      uint64 // ended up plain
	PlainReasons    [eno.NumReasons]uint64
	ConnsTableFull  uint64 // left plain because MaxConns was reached
	ConnsDisabled   uint64 // left plain because the policy is off (reason config-off)
	ConnsExcluded   uint64 // left plain by the policy's exclusions (reason config-off)
	ConnsClosed     uint64
	ConnsReused     uint64 // a new connection replaced an ended one with the same 4-tuple
	ConnsExpired    uint64 // idle timeout
	ConnsAborted    uint64 // reset by the engine (see the Abort* counters)
	KeyAgreements   uint64 // fresh Init1/Init2 exchanges completed
	InitRetransmits uint64

	AbortHandshakeTimeout uint64
	AbortBadInit          uint64 // malformed Init, no common AEAD, bad public key
	AbortIntegrity        uint64 // too many frames failed authentication
	AbortFINWithoutFINp   uint64
	AbortInternal         uint64 // buffer limit, sequence-state inconsistency
	AbortShutdown         uint64 // reset because the service stopped (AbortAll)

	IntegrityFailures uint64 // frames that failed authentication (dropped)
	FramesSealed      uint64
	FramesOpened      uint64
	BytesEncrypted    uint64
	BytesDecrypted    uint64
	Retransmits       uint64 // outbound retransmissions re-sent from the send buffer
	Redeliveries      uint64 // inbound frames opened again for the local stack
	DupAcksSent       uint64 // duplicate ACKs for data beyond a hole in the wire stream

	DropDuplicate    uint64 // inbound segments with nothing new
	DropOutOfWindow  uint64
	DropBufferFull   uint64
	DropHeld         uint64 // outbound data before keys, held for later
	DropHeldOverflow uint64 // ... that did not fit the hold queue
	DropForgedRST    uint64
	DropExpired      uint64 // packets of an expired encrypted connection (refused, stack reset)
	DropUnexpected   uint64 // segments the state machine cannot use
	SYNDataDiscarded uint64
	MSSClamped       uint64
	SACKRemoved      uint64 // SACK-permitted taken out of a peer's SYN or SYN-ACK
	NoOptionSpace    uint64 // SYN without room for ENO: sent plain
}

// Counters returns a copy of the engine's counters.
func (e *Engine) Counters() Counters {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ctr
}

func (e *Engine) countPlain(r eno.Reason) {
	e.ctr.ConnsPlain++
	if int(r) < len(e.ctr.PlainReasons) {
		e.ctr.PlainReasons[r]++
	}
}

// Add adds every counter of o to c (arrays element by element), so a
// backend sums its engines without naming each counter.
func (c *Counters) Add(o Counters) {
	dv, sv := reflect.ValueOf(c).Elem(), reflect.ValueOf(o)
	for i := range dv.NumField() {
		df, sf := dv.Field(i), sv.Field(i)
		switch df.Kind() {
		case reflect.Uint64:
			df.SetUint(df.Uint() + sf.Uint())
		case reflect.Array:
			for j := range df.Len() {
				if df.Index(j).Kind() == reflect.Uint64 {
					df.Index(j).SetUint(df.Index(j).Uint() + sf.Index(j).Uint())
				}
			}
		}
	}
}

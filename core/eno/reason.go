package eno

import "strconv"

// Reason says why ENO was disabled on a connection, for the caller's
// counters and logs. The zero value None means it was not.
type Reason uint8

const (
	None Reason = iota

	// Configuration and the local stack.
	ConfigOff     // no TEPs configured: ENO is off (API draft: empty TCP_ENO_TEPS)
	ConfigInvalid // the Config cannot produce a valid SYN option
	LocalSYNData  // the local stack sent SYN data or a non-empty TFO option, which ENO must not accompany (§4.7)
	Abandoned     // the caller disabled ENO before it was enabled, e.g. dropping it from a SYN retransmission (§4.6)
	MidStream     // the tracker first saw the connection after the SYN exchange

	// The peer's SYN-form option (§4.1, §4.4, §4.6).
	NoENOInSYN    // the peer's SYN-only segment had no ENO option
	NoENOInSYNACK // the SYN-ACK had no ENO option (or, in a simultaneous open, the peer left it out)
	MultipleENO   // a SYN segment had more than one ENO option (§4.1)
	Malformed     // an ill-formed SYN-form option: bad length byte or options area (§4.4)
	Vacuous       // a SYN-form option without TEP suboptions (§4.6)

	// Negotiation (§4.3, §4.5, §4.6 rules 2 and 3).
	SameRoleBit             // both hosts sent the same b bit (§4.3)
	AAMandatoryPeerNotAware // mandatory application-aware mode and the peer sent a = 0 (§4.2)
	NoCommonTEP             // no valid TEP identifier (§4.5)

	// The rest of the handshake (§4.6).
	MissingInACK  // a non-SYN segment up to and including the first ACK lacked ENO (rule 1)
	SYNENORemoved // a retransmitted SYN came without its ENO option (rule 1)
	SYNChanged    // a retransmitted SYN, or a simultaneous-open SYN-ACK, changed its ENO option

	numReasons
)

var reasonNames = [numReasons]string{
	None:                    "none",
	ConfigOff:               "config-off",
	ConfigInvalid:           "config-invalid",
	LocalSYNData:            "local-syn-data",
	Abandoned:               "abandoned",
	MidStream:               "mid-stream",
	NoENOInSYN:              "no-eno-in-syn",
	NoENOInSYNACK:           "no-eno-in-synack",
	MultipleENO:             "multiple-eno",
	Malformed:               "malformed",
	Vacuous:                 "vacuous",
	SameRoleBit:             "same-role-bit",
	AAMandatoryPeerNotAware: "aa-mandatory-peer-not-aware",
	NoCommonTEP:             "no-common-tep",
	MissingInACK:            "missing-in-ack",
	SYNENORemoved:           "syn-eno-removed",
	SYNChanged:              "syn-changed",
}

// NumReasons is the number of Reason values, to size counter arrays.
const NumReasons = int(numReasons)

// String returns a stable, metric-friendly name.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

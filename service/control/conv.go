package control

import (
	"encoding/hex"

	"tcpinc.dev/tcpinc/core/divert"
	"tcpinc.dev/tcpinc/core/eno"
)

// FromConnInfo converts an engine's connection description. TEP and
// AEAD names are given only once they were negotiated.
func FromConnInfo(ci divert.ConnInfo) ConnJSON {
	c := ConnJSON{
		Local:     ci.Local.String(),
		Remote:    ci.Remote.String(),
		State:     ci.State,
		Role:      ci.Role.String(),
		NegTEP:    ci.NegTEP,
		SessionID: hex.EncodeToString(ci.SessionID),
		Resumed:   ci.Resumed,
		BytesOut:  ci.BytesOut,
		BytesIn:   ci.BytesIn,
	}
	if ci.TEP != 0 {
		c.TEP = ci.TEP.String()
	}
	if ci.AEAD != 0 {
		c.AEAD = ci.AEAD.String()
	}
	if ci.State == "plain" && ci.PlainReason != eno.None {
		c.PlainReason = ci.PlainReason.String()
	}
	return c
}

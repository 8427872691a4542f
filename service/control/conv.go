package control

import (
	"encoding/hex"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/eno"
)

// FromConnInfo converts a backend's connection description. TEP and
// AEAD names are given only once they were negotiated.
func FromConnInfo(ci core.ConnInfo) ConnJSON {
	c := ConnJSON{
		Mode:      string(ci.Mode),
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

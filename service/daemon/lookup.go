package daemon

import (
	"encoding/hex"
	"net/netip"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/service/control"
)

// LookupAnswer gives the tcpinc API draft's answers for one connection
// (draft-ietf-tcpinc-api-06 §4.1): read-only options succeed only once
// the connection encrypts; before that getsockopt fails with ENOTCONN,
// and where ENO is off with EINVAL. A session ID is never reported as an
// empty success.
func LookupAnswer(local, remote netip.AddrPort, ci core.ConnInfo, tracked bool, aaMandatory bool) control.LookupReply {
	r := control.LookupReply{Local: local.String(), Remote: remote.String(), Tracked: tracked, AAMandatory: aaMandatory}
	if !tracked {
		r.State = "untracked"
		r.Errno = control.ErrnoInval
		r.Reason = "tcpincd does not track this connection: loopback or excluded, opened before tcpincd started or while it was disabled, or no such connection"
		return r
	}
	r.Mode = string(ci.Mode)
	r.State = ci.State
	switch {
	case ci.State == "negotiating" || ci.State == "key-exchange":
		r.Errno = control.ErrnoNotConn
		r.Reason = "TCP-ENO is still being negotiated; ask again once the connection is established"
		return r
	case len(ci.SessionID) == 0:
		// plain, or closing without ever encrypting.
		r.Errno = control.ErrnoInval
		r.Reason = "TCP-ENO is not in effect on this connection"
		if ci.PlainReason != eno.None {
			r.Reason += ": " + ci.PlainReason.String()
		}
		return r
	}
	r.ENOEnabled = true
	r.SessionID = hex.EncodeToString(ci.SessionID)
	r.Role = ci.Role.String()
	r.RoleBit = int(ci.Role)
	r.NegTEP = ci.NegTEP
	if ci.TEP != 0 {
		r.TEP = ci.TEP.String()
	}
	r.SelfGOpt = ci.SelfGOpt
	r.PeerGOpt = ci.PeerGOpt
	r.SelfName = hex.EncodeToString(eno.AppendSelfName(nil, ci.Role, ci.SessionID))
	r.PeerName = hex.EncodeToString(eno.AppendPeerName(nil, ci.Role, ci.SessionID))
	if ci.AEAD != 0 {
		r.AEAD = ci.AEAD.String()
		r.AEADID = uint16(ci.AEAD)
	}
	r.Resumed = ci.Resumed
	return r
}

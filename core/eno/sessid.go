package eno

import "errors"

// Errors of the read-only API (RFC 8547 §5.1: the session ID API "MUST
// return an error when no session ID is available").
var (
	// ErrNotNegotiated: ENO is still negotiating, or the TEP has not
	// produced its session ID yet. The API draft's ENOTCONN.
	ErrNotNegotiated = errors.New("eno: not negotiated yet")
	// ErrDisabled: ENO failed or is off on this connection. The API
	// draft's EINVAL.
	ErrDisabled = errors.New("eno: disabled on this connection")
	// ErrBadSessionID: a TEP offered a session ID shorter than 33 bytes,
	// longer than MaxSessionIDLen, or not starting with NegTEP (§5.1).
	ErrBadSessionID = errors.New("eno: invalid session ID")
)

// AppendSelfName appends the API draft's TCP_ENO_SELF_NAME to dst: the
// role byte (0 for A, 1 for B) followed by the session ID. Authenticating
// it binds both the session and the role (§5.1, §8.3).
func AppendSelfName(dst []byte, role Role, sessID []byte) []byte {
	return append(append(dst, byte(role)), sessID...)
}

// AppendPeerName appends TCP_ENO_PEER_NAME: the negated role byte and the
// session ID, which equals the peer's SELF_NAME.
func AppendPeerName(dst []byte, role Role, sessID []byte) []byte {
	return AppendSelfName(dst, role.Peer(), sessID)
}

// SetSessionID stores the session ID the TEP computed, once it has one.
// It must begin with the negotiated TEP byte as B sent it and be at least
// 33 bytes long (§5.1).
func (t *Tracker) SetSessionID(id []byte) error {
	switch {
	case t.state == StateDisabled:
		return ErrDisabled
	case t.flags&fPeerSYN == 0:
		return ErrNotNegotiated
	case len(id) < MinSessionIDLen || len(id) > MaxSessionIDLen || id[0] != t.res.negTEP:
		return ErrBadSessionID
	}
	t.sidLen = uint8(copy(t.sid[:], id))
	return nil
}

// readable says whether the read-only API may answer: only in the
// encrypting state, which for session IDs also needs the TEP's ID. It
// never lets an empty ID pass for success.
func (t *Tracker) readable() error {
	switch t.state {
	case StateDisabled:
		return ErrDisabled
	case StateEnabled:
		return nil
	}
	return ErrNotNegotiated
}

func (t *Tracker) sessID() ([]byte, error) {
	if err := t.readable(); err != nil {
		return nil, err
	}
	if t.sidLen == 0 {
		return nil, ErrNotNegotiated
	}
	return t.sid[:t.sidLen], nil
}

// SessionID appends the session ID (TCP_ENO_SESSID) to dst.
func (t *Tracker) SessionID(dst []byte) ([]byte, error) {
	id, err := t.sessID()
	if err != nil {
		return dst, err
	}
	return append(dst, id...), nil
}

// SelfName appends TCP_ENO_SELF_NAME: role byte || session ID.
func (t *Tracker) SelfName(dst []byte) ([]byte, error) {
	id, err := t.sessID()
	if err != nil {
		return dst, err
	}
	return AppendSelfName(dst, t.res.role, id), nil
}

// PeerName appends TCP_ENO_PEER_NAME: negated role byte || session ID.
func (t *Tracker) PeerName(dst []byte) ([]byte, error) {
	id, err := t.sessID()
	if err != nil {
		return dst, err
	}
	return AppendPeerName(dst, t.res.role, id), nil
}

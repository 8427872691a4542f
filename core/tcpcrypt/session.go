package tcpcrypt

import (
	"fmt"
	"sync"
)

// Session holds the keys of one encrypted connection after the key
// exchange (fresh or resumed) and tracks key generations (RFC 8548 §3.8).
//
// Generations: each host has a local generation (the key it encrypts
// with) and a remote generation (the highest the peer used). A frame with
// rekey=1 advances the remote generation by exactly one. When that makes
// the remote generation exceed the local one, the local one follows and
// the next frame sent must carry rekey=1; RekeyReplyDue reports that an
// immediate (possibly empty) frame is owed. When the local generation was
// already there (this host initiated), no reply is owed: a reply would
// need rekey=1 without a new generation, which §3.8 forbids.
//
// A Session is used by one connection's engine; its methods are not safe
// for concurrent use.
type Session struct {
	id      [SessionIDLen]byte
	aead    AEADID
	resumed bool
	// sealAB: this host encrypts with k_ab, i.e. it was A when ss[0]
	// was made (§3.5: the direction never changes under resumption).
	sealAB bool

	sendMK, recvMK Secret // mk of the current send / receive generation
	send, recv     *TrafficKey
	// oldSend keeps earlier send keys until released, because a
	// retransmission must be encrypted under its original key.
	oldSend []*TrafficKey
	// oldRecv keeps earlier receive keys until released, so a packet
	// engine can open a frame again after the local stack lost its
	// plaintext.
	oldRecv []*TrafficKey

	rekeyNext bool // the next sealed frame carries rekey=1
	replyDue  bool // a rekey=1 frame is owed to the peer at once

	next    ResumeSecret // ss[i+1] and its identifier, for the cache
	hasNext bool

	closeOnce sync.Once
	closed    bool
}

// newSession derives generation-0 keys from mk[0] and prepares ss[i+1].
// It takes ownership of mk and zeroes ss, following the ratchet of §3.5.
func newSession(tep TEP, tepByte byte, aead AEADID, ss *Secret, sn []byte, sealAB, resumed bool) (*Session, error) {
	s := &Session{aead: aead, resumed: resumed, sealAB: sealAB}
	s.id = SessionID(tepByte, ss, sn)
	mk := MasterKey(ss, sn)
	s.next = ResumeSecret{TEP: tep &^ ResumeBit, AEAD: aead, OrigA: sealAB, Secret: NextSecret(ss)}
	s.next.ID = ResumeID(&s.next.Secret)
	s.hasNext = true
	ss.Zero()
	s.sendMK, s.recvMK = mk, mk
	mk.Zero()
	var err error
	if s.send, err = s.deriveKey(&s.sendMK, 0, s.sealAB); err != nil {
		s.Close()
		return nil, err
	}
	if s.recv, err = s.deriveKey(&s.recvMK, 0, !s.sealAB); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Session) deriveKey(mk *Secret, gen uint64, ab bool) (*TrafficKey, error) {
	var material [32 + aeadNonceLen]byte
	m := material[:s.aead.TrafficKeyLen()]
	TrafficKeyMaterial(m, mk, ab)
	k, err := NewTrafficKey(s.aead, gen, m)
	clear(material[:])
	return k, err
}

// ID returns the session ID (RFC 8548 §3.4), 33 bytes.
func (s *Session) ID() [SessionIDLen]byte { return s.id }

// AEAD returns the negotiated AEAD.
func (s *Session) AEAD() AEADID { return s.aead }

// Resumed reports whether the session came from a cached secret.
func (s *Session) Resumed() bool { return s.resumed }

// SealsWithKAB reports whether this host encrypts with k_ab (it was A in
// the session that made ss[0]).
func (s *Session) SealsWithKAB() bool { return s.sealAB }

// SendKey returns the key for the next frame and whether that frame must
// carry rekey=1. Call FrameSent after sealing the frame with it.
func (s *Session) SendKey() (k *TrafficKey, control byte) {
	if s.rekeyNext {
		control = ControlRekey
	}
	return s.send, control
}

// FrameSent records that a frame was sealed with the current send key,
// clearing any pending rekey flag.
func (s *Session) FrameSent() {
	s.rekeyNext = false
	s.replyDue = false
}

// AppendFrame seals data as the next frame at offset with the current
// send key, setting rekey when due. It is SendKey + AppendFrame +
// FrameSent in one call for stream users.
func (s *Session) AppendFrame(dst []byte, offset uint64, flags byte, urgent *uint16, data []byte) ([]byte, error) {
	if s.closed {
		return dst, ErrSessionClosed
	}
	k, control := s.SendKey()
	out, err := k.AppendFrame(dst, offset, control, flags, urgent, data)
	if err == nil {
		s.FrameSent()
	}
	return out, err
}

// Rekey initiates rekeying: the local generation advances and the next
// frame sent carries rekey=1. A rekey already outstanding (the peer has
// not yet used our generation) is refused, which also satisfies §3.8's
// limit on empty-frame rekeys.
func (s *Session) Rekey() error {
	if s.closed {
		return ErrSessionClosed
	}
	if s.send.gen > s.recv.gen || s.rekeyNext {
		return fmt.Errorf("%w: a rekey is already outstanding", ErrBadRekey)
	}
	return s.advanceSend()
}

func (s *Session) advanceSend() error {
	if s.send.gen == ^uint64(0) {
		return fmt.Errorf("%w: generation limit", ErrBadRekey)
	}
	next := NextMasterKey(&s.sendMK)
	s.sendMK.Zero()
	s.sendMK = next
	next.Zero()
	k, err := s.deriveKey(&s.sendMK, s.send.gen+1, s.sealAB)
	if err != nil {
		return err
	}
	s.oldSend = append(s.oldSend, s.send)
	s.send = k
	s.rekeyNext = true
	return nil
}

// SendKeyFor returns the send key of generation gen if it is still held,
// for re-encrypting a retransmission exactly as first sent.
func (s *Session) SendKeyFor(gen uint64) *TrafficKey { return keyFor(s.send, s.oldSend, gen) }

// ReleaseSendKeysBefore destroys send keys older than gen, once no
// retransmission can need them (§3.8: SHOULD delete older keys).
func (s *Session) ReleaseSendKeysBefore(gen uint64) { s.oldSend = releaseBefore(s.oldSend, gen) }

// RecvKeyFor returns the receive key of generation gen if still held.
func (s *Session) RecvKeyFor(gen uint64) *TrafficKey { return keyFor(s.recv, s.oldRecv, gen) }

// keyFor finds generation gen among a direction's current and old keys.
func keyFor(cur *TrafficKey, old []*TrafficKey, gen uint64) *TrafficKey {
	if cur != nil && cur.gen == gen {
		return cur
	}
	for _, k := range old {
		if k.gen == gen {
			return k
		}
	}
	return nil
}

// ReleaseRecvKeysBefore destroys receive keys older than gen, once no
// frame of theirs can be needed again.
func (s *Session) ReleaseRecvKeysBefore(gen uint64) { s.oldRecv = releaseBefore(s.oldRecv, gen) }

func releaseBefore(keys []*TrafficKey, gen uint64) []*TrafficKey {
	kept := keys[:0]
	for _, k := range keys {
		if k.gen < gen {
			k.Destroy()
			continue
		}
		kept = append(kept, k)
	}
	clear(keys[len(kept):])
	return kept
}

// OpenFrame opens the frame at the start of b (stream offset offset) in
// place, following a rekey=1 frame to the next receive generation. Frames
// must be opened in stream order. Any error is fatal for the connection,
// even one returned together with an opened frame (the local generation
// could not follow the peer's).
func (s *Session) OpenFrame(b []byte, offset uint64) (Frame, int, error) {
	if s.closed {
		return Frame{}, 0, ErrSessionClosed
	}
	control, n, err := PeekFrame(b)
	if err != nil {
		return Frame{}, 0, err
	}
	if len(b) < n {
		// Check before deriving keys, so partial or forged rekey
		// frames cost nothing.
		return Frame{}, 0, ErrNeedMore
	}
	if control&ControlRekey == 0 {
		return s.recv.OpenFrame(b, offset)
	}
	// Try the next generation without committing, so a forged rekey bit
	// cannot move our keys.
	next := NextMasterKey(&s.recvMK)
	k, err := s.deriveKey(&next, s.recv.gen+1, !s.sealAB)
	if err != nil {
		next.Zero()
		return Frame{}, 0, err
	}
	f, n, err := k.OpenFrame(b, offset)
	if err != nil {
		next.Zero()
		k.Destroy()
		return f, 0, err
	}
	s.oldRecv = append(s.oldRecv, s.recv)
	s.recv = k
	s.recvMK.Zero()
	s.recvMK = next
	next.Zero()
	if s.recv.gen > s.send.gen {
		if err := s.advanceSend(); err != nil {
			return f, n, err
		}
		s.replyDue = true
	}
	return f, n, nil
}

// RekeyReplyDue reports that the peer advanced our local generation and
// §3.8 requires an immediate frame with rekey=1 (empty if there is no
// data), unless this host has already sent a TCP FIN.
func (s *Session) RekeyReplyDue() bool { return s.replyDue }

// Generations returns the local (send) and remote (receive) generation.
func (s *Session) Generations() (local, remote uint64) { return s.send.gen, s.recv.gen }

// TakeResumeSecret hands ss[i+1] to the caller (normally a Cache) and
// forgets it. ok is false if it was already taken or the session closed.
func (s *Session) TakeResumeSecret() (rs ResumeSecret, ok bool) {
	if !s.hasNext || s.closed {
		return rs, false
	}
	rs = s.next
	s.next.Zero()
	s.hasNext = false
	return rs, true
}

// DiscardResumeSecret erases ss[i+1] without caching it (the no-cache
// policy of §3.5).
func (s *Session) DiscardResumeSecret() {
	s.next.Zero()
	s.hasNext = false
}

// Close zeroes every secret the session holds. It is idempotent.
func (s *Session) Close() {
	s.closeOnce.Do(func() {
		s.closed = true
		s.sendMK.Zero()
		s.recvMK.Zero()
		s.send.Destroy()
		s.recv.Destroy()
		s.oldSend = releaseBefore(s.oldSend, ^uint64(0))
		s.oldRecv = releaseBefore(s.oldRecv, ^uint64(0))
		s.DiscardResumeSecret()
	})
}

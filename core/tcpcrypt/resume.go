package tcpcrypt

import (
	"container/list"
	"crypto/subtle"
	"fmt"
	"io"
	"net/netip"
	"sync"
)

// ResumeSecret is a cached session secret ss[i], ready for the next
// connection with the same peer (RFC 8548 §3.5).
type ResumeSecret struct {
	TEP TEP // TEP of the original session (v bit clear)
	// AEAD of the session that made ss[0]. A resumed session has no
	// Init messages to negotiate one, so it keeps the original's.
	AEAD   AEADID
	OrigA  bool              // this host was A when ss[0] was made
	Secret Secret            // ss[i]
	ID     [ResumeIDLen]byte // resume[i] = CPRF(ss[i], CONST_RESUME, 18)
}

// OwnHalf is the identifier half this host sends: the first 9 bytes if
// it was originally A, the last 9 otherwise.
func (r *ResumeSecret) OwnHalf() []byte {
	if r.OrigA {
		return r.ID[:ResumeHalfLen]
	}
	return r.ID[ResumeHalfLen:]
}

// PeerHalf is the identifier half the peer sends.
func (r *ResumeSecret) PeerHalf() []byte {
	if r.OrigA {
		return r.ID[ResumeHalfLen:]
	}
	return r.ID[:ResumeHalfLen]
}

// Zero erases the secret.
func (r *ResumeSecret) Zero() {
	r.Secret.Zero()
	clear(r.ID[:])
}

// AppendResumeSuboption appends the SYN suboption that offers (or, from a
// passive opener, accepts) resumption: (TEP|v) | own half | nonce
// (§3.5, Figures 2 and 3). It has no length byte; put it last in the ENO
// option or prefix a length byte.
func AppendResumeSuboption(dst []byte, r *ResumeSecret, nonce []byte) ([]byte, error) {
	if len(nonce) > MaxResumeNonceLen {
		return dst, fmt.Errorf("%w: nonce of %d bytes (max %d)", ErrBadResumption, len(nonce), MaxResumeNonceLen)
	}
	dst = append(dst, byte(r.TEP)|ResumeBit)
	dst = append(dst, r.OwnHalf()...)
	return append(dst, nonce...), nil
}

// ParseResumeData splits the data of a v=1 tcpcrypt suboption. Data
// shorter than 9 bytes is an offer of fresh key exchange (§3.5: "MUST
// behave as if the same TEP had been sent with v = 0"): ok is false and
// err nil. More than 17 bytes is not a valid suboption for tcpcrypt.
func ParseResumeData(data []byte) (half, nonce []byte, ok bool, err error) {
	switch {
	case len(data) < ResumeHalfLen:
		return nil, nil, false, nil
	case len(data) > ResumeHalfLen+MaxResumeNonceLen:
		return nil, nil, false, fmt.Errorf("%w: %d data bytes (max %d)", ErrBadResumption, len(data), ResumeHalfLen+MaxResumeNonceLen)
	}
	return data[:ResumeHalfLen], data[ResumeHalfLen:], true, nil
}

// SuboptionAcceptable reports whether data is acceptable to a tcpcrypt
// TEP as ENO suboption data (RFC 8547 §4.4 "valid TEP" rule): none, a
// short (fresh) one, or a resumption identifier with a 0–8 byte nonce.
func SuboptionAcceptable(data []byte) bool {
	return len(data) <= ResumeHalfLen+MaxResumeNonceLen
}

// NewResumeNonce reads a resumption nonce of n bytes (0–8; §3.5 says 8
// unless reuse of session secrets can be ruled out).
func NewResumeNonce(rand io.Reader, n int) ([]byte, error) {
	if n < 0 || n > MaxResumeNonceLen {
		return nil, fmt.Errorf("%w: nonce length %d (allowed 0–8)", ErrBadResumption, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rand, b); err != nil {
		return nil, fmt.Errorf("tcpcrypt: read resumption nonce: %w", err)
	}
	return b, nil
}

// Resume builds the session of a resumed connection from the cached
// secret r (which it erases) and both nonces, with r's AEAD; nonceA is the nonce of the
// host that was originally A. The session ID starts with r.TEP|v, the
// byte B sends when it agrees to resume. The session then holds ss[i+1]
// for the cache.
func Resume(r *ResumeSecret, nonceA, nonceB []byte) (*Session, error) {
	aead := r.AEAD
	if !aead.Supported() {
		return nil, fmt.Errorf("tcpcrypt: resume: %w: %v", ErrUnsupportedAEAD, aead)
	}
	if len(nonceA) > MaxResumeNonceLen || len(nonceB) > MaxResumeNonceLen {
		return nil, fmt.Errorf("%w: nonce longer than %d bytes", ErrBadResumption, MaxResumeNonceLen)
	}
	var snBuf [2 * MaxResumeNonceLen]byte
	sn := append(append(snBuf[:0], nonceA...), nonceB...)
	ss := r.Secret
	r.Zero()
	s, err := newSession(r.TEP, byte(r.TEP)|ResumeBit, aead, &ss, sn, r.OrigA, true)
	ss.Zero()
	return s, err
}

// HalvesMatch compares identifier halves in constant time.
func HalvesMatch(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// Cache is a bounded LRU cache of resumption secrets, safe for concurrent
// use. An entry is removed when it is taken, so a secret can secure at
// most one connection (§3.5) and a proposer always uses the lowest i it
// has not tried. Secrets live only in memory and are zeroed on eviction.
type Cache struct {
	mu     sync.Mutex
	max    int
	lru    *list.List // of *cacheEntry, front = most recent
	byPeer map[peerKey][]*list.Element
	byHalf map[halfKey]*list.Element
}

type peerKey struct {
	addr netip.Addr
	tep  TEP
}

type halfKey struct {
	tep  TEP
	half [ResumeHalfLen]byte
}

type cacheEntry struct {
	peer peerKey
	half halfKey // the half the peer will send
	rs   ResumeSecret
}

// NewCache returns a cache holding at most max secrets (max <= 0 means
// the cache keeps nothing).
func NewCache(max int) *Cache {
	return &Cache{max: max, lru: list.New(), byPeer: map[peerKey][]*list.Element{}, byHalf: map[halfKey]*list.Element{}}
}

// Put stores the secret for a peer address, evicting the least recently
// stored secret when full. The caller's copy is zeroed.
func (c *Cache) Put(peer netip.Addr, r *ResumeSecret) {
	defer r.Zero()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max <= 0 {
		return
	}
	e := &cacheEntry{peer: peerKey{peer.Unmap(), r.TEP &^ ResumeBit}, rs: *r}
	e.half.tep = e.peer.tep
	copy(e.half.half[:], r.PeerHalf())
	if old, ok := c.byHalf[e.half]; ok {
		c.remove(old)
	}
	for c.lru.Len() >= c.max {
		c.remove(c.lru.Back())
	}
	el := c.lru.PushFront(e)
	c.byPeer[e.peer] = append(c.byPeer[e.peer], el)
	c.byHalf[e.half] = el
}

// TakeForPeer removes and returns the newest secret for proposing
// resumption to peer with tep.
func (c *Cache) TakeForPeer(peer netip.Addr, tep TEP) (ResumeSecret, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	els := c.byPeer[peerKey{peer.Unmap(), tep &^ ResumeBit}]
	if len(els) == 0 {
		return ResumeSecret{}, false
	}
	return c.take(els[len(els)-1]), true
}

// TakeByPeerHalf removes and returns the secret a peer named by sending
// half in a resumption suboption for tep (passive opener, §3.5).
func (c *Cache) TakeByPeerHalf(tep TEP, half []byte) (ResumeSecret, bool) {
	if len(half) != ResumeHalfLen {
		return ResumeSecret{}, false
	}
	k := halfKey{tep: tep &^ ResumeBit}
	copy(k.half[:], half)
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byHalf[k]
	if !ok {
		return ResumeSecret{}, false
	}
	return c.take(el), true
}

// Flush erases every cached secret.
func (c *Cache) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.lru.Len() > 0 {
		c.remove(c.lru.Back())
	}
}

// FlushPeer erases every secret cached for peer.
func (c *Cache) FlushPeer(peer netip.Addr) {
	peer = peer.Unmap()
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, els := range c.byPeer {
		if k.addr == peer {
			for len(els) > 0 {
				c.remove(els[len(els)-1])
				els = c.byPeer[k]
			}
		}
	}
}

// Len returns the number of cached secrets.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

func (c *Cache) take(el *list.Element) ResumeSecret {
	rs := el.Value.(*cacheEntry).rs
	c.remove(el)
	return rs
}

func (c *Cache) remove(el *list.Element) {
	e := el.Value.(*cacheEntry)
	c.lru.Remove(el)
	delete(c.byHalf, e.half)
	els := c.byPeer[e.peer]
	for i, x := range els {
		if x == el {
			els = append(els[:i], els[i+1:]...)
			break
		}
	}
	if len(els) == 0 {
		delete(c.byPeer, e.peer)
	} else {
		c.byPeer[e.peer] = els
	}
	e.rs.Zero()
}

package divert

import (
	"crypto/rand"
	"sync"

	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

// KeyPool keeps ephemeral keys (and Init nonces) generated ahead of
// time, so that a fresh key exchange does not wait for key generation:
// the engine's Config.Ephemerals takes them from here. A key is handed
// out once and then belongs to the handshake, which erases it; keys are
// never reused (RFC 8548 §3.3). A goroutine refills the pool; the engine
// itself stays free of goroutines.
type KeyPool struct {
	pools map[tcpcrypt.TEP]chan *tcpcrypt.Ephemeral
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

// NewKeyPool starts a pool of size keys for each of teps.
func NewKeyPool(size int, teps ...tcpcrypt.TEP) *KeyPool {
	p := &KeyPool{pools: map[tcpcrypt.TEP]chan *tcpcrypt.Ephemeral{}, stop: make(chan struct{})}
	for _, t := range teps {
		t &^= tcpcrypt.ResumeBit
		if _, ok := p.pools[t]; ok || !t.Supported() {
			continue
		}
		ch := make(chan *tcpcrypt.Ephemeral, size)
		p.pools[t] = ch
		p.wg.Go(func() { p.fill(t, ch) })
	}
	return p
}

func (p *KeyPool) fill(t tcpcrypt.TEP, ch chan *tcpcrypt.Ephemeral) {
	for {
		eph, err := newEphemeral(t)
		if err != nil {
			return // Get returns nil: handshakes generate their own
		}
		select {
		case ch <- eph:
		case <-p.stop:
			destroyEphemeral(eph)
			return
		}
	}
}

// Get returns a pooled key for t, or nil if there is none at hand (the
// handshake then generates one). It never blocks.
func (p *KeyPool) Get(t tcpcrypt.TEP) *tcpcrypt.Ephemeral {
	if p == nil {
		return nil
	}
	ch := p.pools[t&^tcpcrypt.ResumeBit]
	if ch == nil {
		return nil
	}
	select {
	case eph := <-ch:
		return eph
	default:
		return nil
	}
}

// Close stops the refill and erases the keys not handed out.
func (p *KeyPool) Close() {
	if p == nil {
		return
	}
	p.once.Do(func() {
		close(p.stop)
		p.wg.Wait()
		for _, ch := range p.pools {
			for {
				select {
				case eph := <-ch:
					destroyEphemeral(eph)
					continue
				default:
				}
				break
			}
		}
	})
}

func newEphemeral(t tcpcrypt.TEP) (*tcpcrypt.Ephemeral, error) {
	k, err := tcpcrypt.GenerateKey(t, nil)
	if err != nil {
		return nil, err
	}
	eph := &tcpcrypt.Ephemeral{Key: k}
	if _, err := rand.Read(eph.Nonce[:]); err != nil {
		k.Destroy()
		return nil, err
	}
	return eph, nil
}

// destroyEphemeral erases a key nobody will use.
func destroyEphemeral(eph *tcpcrypt.Ephemeral) {
	if eph.Key != nil {
		eph.Key.Destroy()
	}
	clear(eph.Nonce[:])
}

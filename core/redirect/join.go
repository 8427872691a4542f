package redirect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

// copyBufSize is the per-direction buffer of an encrypted connection:
// two default frames per read keeps system calls few.
const copyBufSize = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// proxied is one joined connection.
type proxied struct {
	p           *Proxy
	local, wire net.Conn
	tuples      []tuple
	peer        tuple // the wire leg, for the resumption cache

	mu   sync.Mutex
	info core.ConnInfo
	st   *tcpcrypt.Stream

	aborted  atomic.Bool
	ended    atomic.Bool // both legs done; listed until the linger ends
	bytesOut atomic.Uint64
	bytesIn  atomic.Uint64
}

func (c *proxied) snapshot() core.ConnInfo {
	c.mu.Lock()
	info := c.info
	c.mu.Unlock()
	info.SessionID = append([]byte(nil), info.SessionID...)
	if len(info.SessionID) == 0 {
		info.SessionID = nil
	}
	info.BytesOut, info.BytesIn = c.bytesOut.Load(), c.bytesIn.Load()
	return info
}

func (c *proxied) setState(s string) {
	c.mu.Lock()
	c.info.State = s
	c.mu.Unlock()
}

// abort resets both legs (SO_LINGER 0), once.
func (c *proxied) abort() {
	if c.ended.Load() || c.aborted.Swap(true) {
		return
	}
	c.p.ctr.aborted.Add(1)
	c.setState("closing")
	resetConn(c.local)
	resetConn(c.wire)
}

// linger marks an ended connection and drops it from Conns and Lookup
// after Config.Linger.
func (p *Proxy) linger(c *proxied) {
	c.mu.Lock()
	if c.aborted.Load() {
		c.info.State = "reset"
	} else {
		c.info.State = "closed"
	}
	c.mu.Unlock()
	c.ended.Store(true)
	forget := func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}
	if p.cfg.Linger < 0 {
		forget()
		return
	}
	time.AfterFunc(p.cfg.Linger, forget)
}

// resetConn closes c with a reset where the socket allows it.
func resetConn(c net.Conn) {
	if c == nil {
		return
	}
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
	c.Close()
}

// closeWrite half-closes c, or closes it if it cannot half-close.
func closeWrite(c io.Closer) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// Join proxies one connection: local is the application's leg, wire the
// leg that crosses the network, o the wire leg's ENO outcome (Join takes
// its resumption secret). It returns when both directions have ended,
// with nil for a clean end, and closes both legs.
func (p *Proxy) Join(ctx context.Context, local, wire net.Conn, o Outcome, f Flow) error {
	c := &proxied{p: p, local: local, wire: wire}
	c.info = core.ConnInfo{Mode: core.ModeRedirect, State: "negotiating", Created: time.Now(), PlainReason: o.Reason}
	wl, wr := addrPort(wire.LocalAddr()), addrPort(wire.RemoteAddr())
	c.peer = tuple{wl, wr}
	if o.Remote.IsValid() {
		c.peer = tuple{o.Local, o.Remote} // as the hook keyed it
	}
	if f.Dir == Outbound {
		c.info.Local, c.info.Remote = f.Src, f.Dst
		c.tuples = []tuple{{f.Src, f.Dst}, {wl, wr}}
	} else {
		c.info.Local, c.info.Remote = f.Dst, f.Src
		// The application's socket sees the proxy's leg from the other end.
		c.tuples = []tuple{{f.Dst, f.Src}, {addrPort(local.RemoteAddr()), addrPort(local.LocalAddr())}}
	}
	if o.Enabled {
		res := &o.Result
		c.info.Role, c.info.TEP, c.info.NegTEP = res.Role(), res.TEP(), res.NegTEP()
		c.info.SelfGOpt, c.info.PeerGOpt = res.SelfGOpt(), res.PeerGOpt()
		c.info.State = "key-exchange"
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		o.Zero()
		resetConn(local)
		resetConn(wire)
		return net.ErrClosed
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	defer p.linger(c)
	p.ctr.conns.Add(1)
	stop := context.AfterFunc(ctx, c.abort)
	defer stop()

	if !o.Enabled {
		p.ctr.plain.Add(1)
		c.setState("plain")
		p.log.Debug("redirect: connection plain", "local", c.info.Local, "remote", c.info.Remote, "reason", o.Reason)
		return c.splice()
	}
	st, err := p.handshake(wire, &o)
	if err != nil {
		p.ctr.hsFailed.Add(1)
		p.log.Info("redirect: key exchange failed; connection reset", "local", c.info.Local, "remote", c.info.Remote, "err", err)
		c.abort()
		return fmt.Errorf("redirect: key exchange with %v: %w", c.info.Remote, err)
	}
	if cache := p.cfg.Cache; cache != nil {
		// RFC 8548 §3.5: once the keys exist, the next secret of the
		// chain is ready for the next connection to this peer.
		if rs, ok := st.TakeResumeSecret(); ok {
			cache.Put(c.peer.remote.Addr(), &rs)
		}
	} else if rs, ok := st.TakeResumeSecret(); ok {
		rs.Zero()
	}
	id := st.ID()
	c.mu.Lock()
	c.st = st
	c.info.State = "encrypted"
	c.info.AEAD = st.AEAD()
	c.info.SessionID = id[:]
	c.info.Resumed = o.Resumed()
	c.mu.Unlock()
	p.ctr.encrypted.Add(1)
	if c.info.Resumed {
		p.ctr.resumed.Add(1)
	}
	p.log.Debug("redirect: connection encrypted", "local", c.info.Local, "remote", c.info.Remote, "tep", c.info.TEP, "aead", c.info.AEAD, "resumed", c.info.Resumed)
	err = c.pump(st)
	st.Close() // erases the keys; the legs are closed already
	if err != nil && p.cfg.Cache != nil {
		// The failure may be an attack on this session's chain: do not
		// resume from it.
		p.cfg.Cache.FlushPeer(c.peer.remote.Addr())
	}
	return err
}

// handshake runs Init1/Init2 on the wire leg (or resumes), bounded by
// HandshakeTimeout.
func (p *Proxy) handshake(wire net.Conn, o *Outcome) (*tcpcrypt.Stream, error) {
	res := &o.Result
	if o.Resumed() {
		rs := o.Resume
		o.Resume = nil
		if rs == nil {
			return nil, errors.New("resumption negotiated without a cached secret")
		}
		// sn = nonce_a | nonce_b, ordered by the original roles.
		_, nA, _, _ := tcpcrypt.ParseResumeData(res.A().Data)
		_, nB, _, _ := tcpcrypt.ParseResumeData(res.B().Data)
		if rs.OrigA != (res.Role() == eno.RoleA) {
			nA, nB = nB, nA
		}
		s, err := tcpcrypt.Resume(rs, nA, nB) // erases rs
		if err != nil {
			return nil, err
		}
		return tcpcrypt.NewStream(wire, s, 0, 0, &p.scfg), nil
	}
	o.Zero()
	p.mu.Lock()
	tc := p.tc
	p.mu.Unlock()
	tep := tcpcrypt.TEP(res.TEP())
	var h *tcpcrypt.Handshake
	var err error
	if res.Role() == eno.RoleA {
		h, err = tcpcrypt.NewInitiator(&tc, tep, res.Transcript(), nil)
	} else {
		h, err = tcpcrypt.NewResponder(&tc, tep, res.Transcript(), nil)
	}
	if err != nil {
		return nil, err
	}
	wire.SetDeadline(time.Now().Add(p.cfg.HandshakeTimeout))
	st, err := tcpcrypt.StreamHandshake(wire, h, &p.scfg)
	wire.SetDeadline(time.Time{})
	return st, err
}

// pump copies both directions through the stream codec until both end.
func (c *proxied) pump(st *tcpcrypt.Stream) error {
	errs := make(chan error, 2)
	go func() { errs <- c.up(st) }()
	go func() { errs <- c.down(st) }()
	var first error
	for range 2 {
		if err := <-errs; err != nil {
			c.abort() // unblocks the other direction
			if first == nil {
				first = err
			}
		}
	}
	if first == nil {
		c.local.Close()
		c.wire.Close()
		return nil
	}
	return first
}

// up: application → network, encrypted.
func (c *proxied) up(st *tcpcrypt.Stream) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, err := c.local.Read(buf)
		if n > 0 {
			if _, werr := st.Write(buf[:n]); werr != nil {
				return c.wireErr(werr)
			}
			c.bytesOut.Add(uint64(n))
			c.p.ctr.bytesOut.Add(uint64(n))
		}
		switch {
		case err == io.EOF:
			// FIN from the application → FINp, then TCP FIN.
			if err := st.CloseWrite(); err != nil {
				return c.wireErr(err)
			}
			return nil
		case err != nil:
			return c.localErr(err)
		}
	}
}

// down: network → application, decrypted.
func (c *proxied) down(st *tcpcrypt.Stream) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, err := st.Read(buf)
		if n > 0 {
			if _, werr := c.local.Write(buf[:n]); werr != nil {
				return c.localErr(werr)
			}
			c.bytesIn.Add(uint64(n))
			c.p.ctr.bytesIn.Add(uint64(n))
		}
		switch {
		case err == io.EOF:
			// FINp: the peer's stream ended cleanly.
			closeWrite(c.local)
			return nil
		case err != nil:
			return c.wireErr(err)
		}
	}
}

// wireErr counts and wraps a failure on the wire leg.
func (c *proxied) wireErr(err error) error {
	if c.aborted.Load() {
		return fmt.Errorf("%w: %w", errAborted, err)
	}
	ctr := &c.p.ctr
	switch {
	case errors.Is(err, tcpcrypt.ErrIntegrity):
		ctr.integrity.Add(1)
		c.p.log.Warn("redirect: frame failed authentication; connection reset", "local", c.info.Local, "remote", c.info.Remote)
	case errors.Is(err, tcpcrypt.ErrTruncated):
		ctr.truncated.Add(1)
		c.p.log.Info("redirect: peer ended the stream without FINp; connection reset", "local", c.info.Local, "remote", c.info.Remote)
	case isReset(err):
		ctr.resetWire.Add(1)
	default:
		c.p.log.Info("redirect: wire leg failed; connection reset", "local", c.info.Local, "remote", c.info.Remote, "err", err)
	}
	return fmt.Errorf("redirect: wire leg %v: %w", c.info.Remote, err)
}

// localErr counts and wraps a failure on the application's leg.
func (c *proxied) localErr(err error) error {
	if c.aborted.Load() {
		return fmt.Errorf("%w: %w", errAborted, err)
	}
	if isReset(err) {
		c.p.ctr.resetLocal.Add(1)
	}
	return fmt.Errorf("redirect: local leg: %w", err)
}

// splice copies a plain connection both ways, letting the kernel move
// the bytes where it can (io.Copy between TCP sockets uses splice(2) on
// Linux). Byte counters are updated when each direction ends.
func (c *proxied) splice() error {
	errs := make(chan error, 2)
	go func() {
		n, err := io.Copy(c.wire, c.local)
		c.bytesOut.Add(uint64(n))
		c.p.ctr.bytesOut.Add(uint64(n))
		if err == nil {
			closeWrite(c.wire)
			errs <- nil
			return
		}
		errs <- c.localErr(err)
	}()
	go func() {
		n, err := io.Copy(c.local, c.wire)
		c.bytesIn.Add(uint64(n))
		c.p.ctr.bytesIn.Add(uint64(n))
		if err == nil {
			closeWrite(c.local)
			errs <- nil
			return
		}
		errs <- c.wireErr(err)
	}()
	var first error
	for range 2 {
		if err := <-errs; err != nil {
			c.abort()
			if first == nil {
				first = err
			}
		}
	}
	if first == nil {
		c.local.Close()
		c.wire.Close()
	}
	return first
}

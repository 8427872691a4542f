package tcpcrypt

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// The stream codec runs tcpcrypt frames over a reliable byte stream, for
// redirect mode: a local proxy reads the application's plaintext and
// writes frames onto its own TCP socket. There is no sequence-number
// mapping; the only state shared with the wire is the frame offset, which
// counts every byte of the sender's underlying data stream, the Init
// message included (see the package documentation).

const (
	// DefaultStreamFrameData is the default limit on the application
	// data a Stream puts in one frame. 16 KiB keeps the per-frame
	// overhead near 0.1 % while bounding the latency and memory of one
	// frame, as TLS records do.
	DefaultStreamFrameData = 16 << 10

	// maxWireFrame is the longest frame a peer may send.
	maxWireFrame = FrameHeaderLen + MaxFrameCiphertext

	// writeBatchBytes bounds the bytes sealed before one call to the
	// underlying Write: a batch holds as many whole frames as fit, and at
	// least one.
	writeBatchBytes = 64 << 10

	// closeFINTimeout bounds how long Close waits to send its FINp frame
	// when the underlying connection supports write deadlines.
	closeFINTimeout = 5 * time.Second

	// maxEmptyReads is how many consecutive (0, nil) results from the
	// underlying Read are tolerated before giving up with
	// io.ErrNoProgress, as bufio does.
	maxEmptyReads = 100
)

// ErrWriteClosed is returned by writes after CloseWrite or Close: the
// FINp frame has been sent and RFC 8548 §3.7 allows no frame after it.
var ErrWriteClosed = errors.New("tcpcrypt: write after FINp (write side closed)")

// errStreamClosed is returned by operations on a closed Stream. It
// matches both ErrSessionClosed and net.ErrClosed, so proxy code can use
// the usual errors.Is(err, net.ErrClosed) test.
var errStreamClosed = fmt.Errorf("%w: %w", ErrSessionClosed, net.ErrClosed)

// StreamConfig tunes a Stream. The zero value (or a nil pointer) gives
// the defaults.
type StreamConfig struct {
	// MaxFrameData is the most application data the Stream puts in one
	// frame it sends. 0 means DefaultStreamFrameData; values above
	// MaxFrameData are reduced to MaxFrameData, and negative ones mean
	// the default. It does not limit the frames the peer may send: any
	// frame up to the protocol maximum is accepted.
	MaxFrameData int
}

func (c *StreamConfig) maxData() int {
	if c == nil || c.MaxFrameData <= 0 {
		return DefaultStreamFrameData
	}
	return min(c.MaxFrameData, MaxFrameData)
}

// Stream carries an application byte stream as tcpcrypt frames over an
// underlying reliable stream, normally a net.Conn. Reads open frames and
// return their authenticated plaintext; writes seal plaintext into frames.
//
// Read and Write may be called from different goroutines, as with a
// net.Conn; concurrent Reads are serialized, as are concurrent writes
// (Write, CloseWrite, Rekey). Read never holds the write side while it
// waits for the underlying connection.
//
// Errors from the underlying connection are returned unchanged, so
// timeouts set with SetDeadline behave as on a net.Conn. Protocol errors
// (ErrIntegrity, ErrTruncated, ErrDataAfterFIN, ErrOffsetWrap, ...) are
// wrapped with the frame offset and are permanent: the stream must be
// closed. A write error from the underlying connection is permanent too,
// because a partly written frame cannot be continued.
type Stream struct {
	rw      io.ReadWriter
	maxData int

	closed atomic.Bool // Close was called

	// mu guards the Session (which is not safe for concurrent use) and
	// the write-side state below. It is never held while blocking on rw.
	mu      sync.Mutex
	wcond   sync.Cond // signalled when writing becomes false
	sess    *Session
	writing bool  // a goroutine owns the write side (sendOff, wbuf, rw.Write)
	wclosed bool  // the FINp frame was sealed
	werr    error // permanent write error

	// Owned by the goroutine that set writing.
	sendOff uint64 // offset of the next frame to send
	wbuf    []byte // sealed frames awaiting rw.Write

	// rmu serializes Read; the fields below belong to its holder.
	rmu     sync.Mutex
	rbuf    []byte // wire bytes; rbuf[rpos:] are not yet opened
	rpos    int
	pt      []byte // undelivered plaintext, aliasing rbuf[:rpos]
	recvOff uint64 // offset of the frame at rbuf[rpos]
	rerr    error  // permanent read error
	rEOF    bool   // rw.Read reported io.EOF
	fin     bool   // a FINp frame was opened
}

// NewStream returns a Stream that sends and receives frames with s over
// rw. sendOffset and recvOffset are the offsets of the first frame in each
// direction: the length of this host's and the peer's Init message after
// a fresh key exchange, 0 for a resumed session. The Stream takes
// ownership of s: Close closes it, and s must not be used directly while
// the Stream is in use. cfg may be nil.
//
// If rw has a CloseWrite() error method (as *net.TCPConn does),
// CloseWrite half-closes it after sending FINp; if it is an io.Closer,
// Close closes it.
func NewStream(rw io.ReadWriter, s *Session, sendOffset, recvOffset uint64, cfg *StreamConfig) *Stream {
	st := &Stream{
		rw:      rw,
		maxData: cfg.maxData(),
		sess:    s,
		sendOff: sendOffset,
		recvOff: recvOffset,
	}
	st.wcond.L = &st.mu
	return st
}

// StreamHandshake runs the fresh key exchange of h over rw and returns
// the resulting Stream. As A it writes Init1 and reads Init2; as B it
// reads Init1 and writes Init2. It reads in blocks, never byte by byte;
// bytes that follow the peer's Init message (B may send frames right
// after Init2) stay buffered in the Stream. Frame offsets start after the
// Init messages, as the package documentation describes.
//
// StreamHandshake destroys h's ephemeral key whatever the outcome. It
// sets no deadline: bound a stalled peer with rw's SetDeadline. On error
// the caller should close rw; encryption was already negotiated, so there
// is no fallback to plain TCP (RFC 8548 §3.3). A peer that closes before
// completing its Init message gives an error wrapping io.ErrUnexpectedEOF.
func StreamHandshake(rw io.ReadWriter, h *Handshake, cfg *StreamConfig) (*Stream, error) {
	defer h.Destroy()
	st := NewStream(rw, nil, 0, 0, cfg)
	switch h.Role() {
	case RoleA:
		init1 := h.Init1()
		if err := writeAll(rw, init1); err != nil {
			return nil, fmt.Errorf("tcpcrypt: stream handshake: writing Init1: %w", err)
		}
		n, err := st.readInit(false)
		if err != nil {
			return nil, fmt.Errorf("tcpcrypt: stream handshake: reading Init2: %w", err)
		}
		s, err := h.ReadInit2(st.rbuf[:n])
		if err != nil {
			return nil, fmt.Errorf("tcpcrypt: stream handshake: %w", err)
		}
		st.sess, st.sendOff, st.recvOff = s, uint64(len(init1)), uint64(n)
	case RoleB:
		n, err := st.readInit(true)
		if err != nil {
			return nil, fmt.Errorf("tcpcrypt: stream handshake: reading Init1: %w", err)
		}
		init2, s, err := h.ReadInit1(st.rbuf[:n])
		if err != nil {
			return nil, fmt.Errorf("tcpcrypt: stream handshake: %w", err)
		}
		if err := writeAll(rw, init2); err != nil {
			s.Close()
			return nil, fmt.Errorf("tcpcrypt: stream handshake: writing Init2: %w", err)
		}
		st.sess, st.sendOff, st.recvOff = s, uint64(len(init2)), uint64(n)
	default:
		return nil, fmt.Errorf("tcpcrypt: stream handshake: unknown role %v", h.Role())
	}
	return st, nil
}

// readInit reads the peer's Init message into rbuf and returns its
// length; rpos is left just after it, so surplus bytes stay buffered.
func (st *Stream) readInit(isInit1 bool) (int, error) {
	for {
		n, err := InitLen(st.rbuf, isInit1)
		if err == nil && len(st.rbuf) >= n {
			st.rpos = n
			return n, nil
		}
		if err != nil && !errors.Is(err, ErrNeedMore) {
			return 0, err
		}
		need := initHeaderLen
		if err == nil {
			need = n
		}
		if st.rEOF {
			return 0, fmt.Errorf("peer closed after %d bytes: %w", len(st.rbuf), io.ErrUnexpectedEOF)
		}
		if err := st.fill(need); err != nil {
			return 0, err
		}
	}
}

// writeAll writes b to w, treating a short write as an error.
func writeAll(w io.Writer, b []byte) error {
	n, err := w.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return err
}

// Read reads authenticated application data. It returns io.EOF only
// after the peer's FINp frame. If the underlying stream ends without one,
// it returns an error wrapping ErrTruncated; a frame that fails
// authentication gives an error wrapping ErrIntegrity, and no byte of
// that frame is returned. Bytes that arrive together with the FINp frame
// but after it give ErrDataAfterFIN; once FINp is seen Read does not wait
// for more bytes, since the peer's TCP FIN may come later or, on a
// transport without half-close, never. Zero-length frames (rekeying,
// keep-alive) are consumed silently; when the peer's rekey frame requires
// an immediate answer (RFC 8548 §3.8) and no write is in progress, Read
// sends it.
func (st *Stream) Read(p []byte) (int, error) {
	st.rmu.Lock()
	defer st.rmu.Unlock()
	if st.closed.Load() {
		return 0, errStreamClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(st.pt) > 0 {
			n := copy(p, st.pt)
			st.pt = st.pt[n:]
			return n, nil
		}
		if st.rerr != nil {
			return 0, st.rerr
		}
		if st.fin {
			if st.rpos < len(st.rbuf) {
				st.rerr = fmt.Errorf("tcpcrypt: stream: %d bytes at offset %d: %w", len(st.rbuf)-st.rpos, st.recvOff, ErrDataAfterFIN)
				continue
			}
			return 0, io.EOF
		}
		_, frameLen, err := PeekFrame(st.rbuf[st.rpos:])
		switch {
		case err == nil && len(st.rbuf)-st.rpos >= frameLen:
			if err := st.openFrame(frameLen); err != nil {
				return 0, err
			}
			continue
		case err != nil && !errors.Is(err, ErrNeedMore):
			st.rerr = fmt.Errorf("tcpcrypt: stream: frame at offset %d: %w", st.recvOff, err)
			continue
		case err != nil:
			frameLen = FrameHeaderLen
		}
		if st.rEOF {
			if partial := len(st.rbuf) - st.rpos; partial > 0 {
				st.rerr = fmt.Errorf("tcpcrypt: stream: peer closed inside the frame at offset %d (%d of %d bytes): %w", st.recvOff, partial, frameLen, ErrTruncated)
			} else {
				st.rerr = fmt.Errorf("tcpcrypt: stream: peer closed at offset %d: %w", st.recvOff, ErrTruncated)
			}
			continue
		}
		if err := st.fill(frameLen); err != nil {
			if st.closed.Load() {
				return 0, errStreamClosed
			}
			return 0, err
		}
	}
}

// openFrame opens the complete frame of frameLen bytes at rbuf[rpos].
// Errors from it are returned at once; permanent ones are also recorded.
func (st *Stream) openFrame(frameLen int) error {
	off := st.recvOff
	if off+uint64(frameLen) < off {
		st.rerr = fmt.Errorf("tcpcrypt: stream: frame at offset %d: %w", off, ErrOffsetWrap)
		return st.rerr
	}
	st.mu.Lock()
	if st.closed.Load() {
		st.mu.Unlock()
		return errStreamClosed
	}
	f, n, err := st.sess.OpenFrame(st.rbuf[st.rpos:st.rpos+frameLen], off)
	reply := false
	if err == nil && st.sess.RekeyReplyDue() && !st.writing && !st.wclosed && st.werr == nil {
		// The write side is idle: answer the rekey ourselves. If a
		// writer holds it, releaseWrite sends the answer (or its next
		// frame carries rekey=1).
		st.writing = true
		reply = true
	}
	st.mu.Unlock()
	if err != nil {
		st.rerr = fmt.Errorf("tcpcrypt: stream: frame at offset %d: %w", off, err)
		return st.rerr
	}
	st.rpos += n
	st.recvOff += uint64(n)
	st.pt = f.Data // the urgent pointer is meaningless to a proxy; data is delivered in order
	if f.FIN() {
		st.fin = true
	}
	if reply {
		st.releaseWrite()
	}
	return nil
}

// fill makes room for need bytes at rbuf[rpos:] (compacting, or growing
// rbuf up to one maximal frame) and reads once from rw, retrying empty
// reads. Bytes read are kept even when an error comes with them, so a
// timeout loses nothing.
func (st *Stream) fill(need int) error {
	if st.rpos > 0 {
		// pt is empty whenever fill is called, so the opened prefix can
		// be dropped.
		n := copy(st.rbuf, st.rbuf[st.rpos:])
		st.rbuf = st.rbuf[:n]
		st.rpos = 0
	}
	if cap(st.rbuf) < need || cap(st.rbuf) == 0 {
		nb := make([]byte, len(st.rbuf), max(need, FrameLen(DefaultStreamFrameData, false)))
		copy(nb, st.rbuf)
		st.rbuf = nb
	}
	if len(st.rbuf) == cap(st.rbuf) {
		// Cannot happen: need exceeds the buffered bytes.
		return errors.New("tcpcrypt: stream: internal error: receive buffer full")
	}
	for empty := 0; ; empty++ {
		if st.closed.Load() {
			return errStreamClosed
		}
		n, err := st.rw.Read(st.rbuf[len(st.rbuf):cap(st.rbuf)])
		if n < 0 || n > cap(st.rbuf)-len(st.rbuf) {
			return fmt.Errorf("tcpcrypt: stream: underlying Read returned invalid count %d", n)
		}
		st.rbuf = st.rbuf[:len(st.rbuf)+n]
		if err == io.EOF {
			st.rEOF = true
			return nil
		}
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if empty >= maxEmptyReads {
			return io.ErrNoProgress
		}
	}
}

// acquireWrite waits for and takes ownership of the write side.
func (st *Stream) acquireWrite() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	for st.writing && !st.closed.Load() {
		st.wcond.Wait()
	}
	switch {
	case st.closed.Load():
		return errStreamClosed
	case st.werr != nil:
		return st.werr
	case st.wclosed:
		return ErrWriteClosed
	}
	st.writing = true
	return nil
}

// releaseWrite gives up the write side, first sending the empty rekey=1
// frame RFC 8548 §3.8 requires if the reader has made one due.
func (st *Stream) releaseWrite() {
	st.mu.Lock()
	for st.werr == nil && !st.wclosed && !st.closed.Load() && st.sess.RekeyReplyDue() {
		err := st.sealLocked(0, nil)
		st.mu.Unlock()
		if err == nil {
			st.flush()
		}
		st.mu.Lock()
	}
	st.writing = false
	st.wcond.Broadcast()
	st.mu.Unlock()
}

// sealLocked appends one frame to wbuf at the current end of the batch.
// It must be called with mu held by the write owner; a failure is
// recorded as the permanent write error.
func (st *Stream) sealLocked(flags byte, data []byte) error {
	off := st.sendOff + uint64(len(st.wbuf))
	b, err := st.sess.AppendFrame(st.wbuf, off, flags, nil, data)
	st.wbuf = b
	if err != nil {
		if errors.Is(err, ErrSessionClosed) && st.closed.Load() {
			err = errStreamClosed
		} else {
			err = fmt.Errorf("tcpcrypt: stream: sealing frame at offset %d: %w", off, err)
		}
		st.werr = err
	}
	return err
}

// flush writes wbuf to rw and empties it; the write owner calls it
// without mu. It returns the number of bytes written.
func (st *Stream) flush() (int, error) {
	n, err := st.rw.Write(st.wbuf)
	if n < 0 || n > len(st.wbuf) {
		n, err = 0, fmt.Errorf("tcpcrypt: stream: underlying Write returned invalid count %d", n)
	} else if err == nil && n < len(st.wbuf) {
		err = io.ErrShortWrite
	}
	st.sendOff += uint64(n)
	st.wbuf = st.wbuf[:0]
	if err != nil {
		if st.closed.Load() {
			err = errStreamClosed
		}
		st.mu.Lock()
		if st.werr == nil {
			st.werr = err
		}
		st.mu.Unlock()
	}
	return n, err
}

// Write seals p into frames of at most the configured size and writes
// them to the underlying stream, several frames per underlying Write. It
// returns the number of bytes of p whose frames were written completely.
func (st *Stream) Write(p []byte) (int, error) {
	if err := st.acquireWrite(); err != nil {
		return 0, err
	}
	defer st.releaseWrite()
	fullLen := FrameLen(st.maxData, false)
	perBatch := max(1, writeBatchBytes/fullLen)
	written := 0
	for len(p) > 0 {
		frames := min(perBatch, (len(p)+st.maxData-1)/st.maxData)
		batchData := min(len(p), frames*st.maxData)
		need := batchData + frames*FrameOverhead
		if cap(st.wbuf) < need {
			st.wbuf = make([]byte, 0, max(need, min(2*cap(st.wbuf), perBatch*fullLen)))
		}
		st.mu.Lock()
		for rest := p[:batchData]; len(rest) > 0; {
			chunk := rest[:min(len(rest), st.maxData)]
			if err := st.sealLocked(0, chunk); err != nil {
				st.mu.Unlock()
				st.wbuf = st.wbuf[:0]
				return written, err
			}
			rest = rest[len(chunk):]
		}
		st.mu.Unlock()
		total := len(st.wbuf)
		n, err := st.flush()
		if err != nil {
			if n < total {
				// Only the full-size frames before the first incomplete
				// one were delivered.
				return written + min(batchData, n/fullLen*st.maxData), err
			}
			return written + batchData, err
		}
		written += batchData
		p = p[batchData:]
	}
	return written, nil
}

// CloseWrite sends the final frame, an empty one with FINp, and then
// half-closes the underlying connection if it has a CloseWrite method.
// Later writes fail with ErrWriteClosed; reading continues. Calling it
// again does nothing.
func (st *Stream) CloseWrite() error {
	st.mu.Lock()
	for st.writing && !st.closed.Load() {
		st.wcond.Wait()
	}
	switch {
	case st.closed.Load():
		st.mu.Unlock()
		return errStreamClosed
	case st.wclosed || st.werr != nil:
		err := st.werr
		st.mu.Unlock()
		return err
	}
	st.writing = true
	st.wclosed = true
	err := st.sealLocked(FlagFIN, nil)
	st.mu.Unlock()
	if err == nil {
		_, err = st.flush()
	}
	st.releaseWrite()
	if err != nil {
		return err
	}
	if cw, ok := st.rw.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Rekey starts a new key generation (RFC 8548 §3.8) and sends an empty
// frame with rekey=1 at once, which also serves as the keep-alive of
// §3.9: the peer must answer with its own rekey frame. It fails with an
// error wrapping ErrBadRekey while an earlier rekey is outstanding (the
// peer has not yet answered, or our answer to the peer's rekey has not
// been sent yet).
func (st *Stream) Rekey() error {
	if err := st.acquireWrite(); err != nil {
		return err
	}
	st.mu.Lock()
	err := st.sess.Rekey()
	if err != nil {
		if errors.Is(err, ErrSessionClosed) {
			err = errStreamClosed
		} else {
			err = fmt.Errorf("tcpcrypt: stream: rekey: %w", err)
		}
	} else {
		err = st.sealLocked(0, nil)
	}
	st.mu.Unlock()
	if err == nil {
		_, err = st.flush()
	}
	st.releaseWrite()
	return err
}

// Close sends a FINp frame unless the write side is already closed, then
// closes the underlying connection if it is an io.Closer and erases the
// session keys. Pending Reads and Writes return an error matching
// net.ErrClosed once closing the connection unblocks them (a net.Conn
// does; a transport that is not an io.Closer cannot be interrupted). Close
// returns such an error too when called again. If a write is in
// progress, Close does not wait for it and sends no FINp (as crypto/tls
// does): closing during a write is taken as a wish to break it off, and
// the peer then sees ErrTruncated. When the connection supports write
// deadlines, sending the FINp frame is bounded by a 5-second deadline.
func (st *Stream) Close() error {
	st.mu.Lock()
	if st.closed.Load() {
		st.mu.Unlock()
		return errStreamClosed
	}
	sendFIN := !st.writing && !st.wclosed && st.werr == nil && st.sess != nil
	var finErr error
	if sendFIN {
		st.writing = true
		st.wclosed = true
		finErr = st.sealLocked(FlagFIN, nil)
	}
	st.closed.Store(true)
	st.wcond.Broadcast()
	st.mu.Unlock()

	if sendFIN {
		if finErr == nil {
			if d, ok := st.rw.(interface{ SetWriteDeadline(time.Time) error }); ok {
				_ = d.SetWriteDeadline(time.Now().Add(closeFINTimeout))
			}
			n, err := st.rw.Write(st.wbuf)
			if err == nil && n < len(st.wbuf) {
				err = io.ErrShortWrite
			}
			finErr = err
		}
		st.wbuf = st.wbuf[:0]
	}
	var err error
	if c, ok := st.rw.(io.Closer); ok {
		err = c.Close()
	}

	st.mu.Lock()
	if sendFIN {
		st.writing = false
	}
	if st.sess != nil {
		st.sess.Close()
	}
	st.wcond.Broadcast()
	st.mu.Unlock()

	if err != nil {
		return err
	}
	if finErr != nil && !errors.Is(finErr, errStreamClosed) {
		return fmt.Errorf("tcpcrypt: stream: sending FINp on close (connection closed anyway): %w", finErr)
	}
	return nil
}

// ID returns the session ID (RFC 8548 §3.4).
func (st *Stream) ID() [SessionIDLen]byte {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.sess.ID()
}

// AEAD returns the session's AEAD.
func (st *Stream) AEAD() AEADID {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.sess.AEAD()
}

// Generations returns the local (send) and remote (receive) key
// generations.
func (st *Stream) Generations() (local, remote uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.sess.Generations()
}

// TakeResumeSecret hands over the session's ss[i+1] for a resumption
// cache, as Session.TakeResumeSecret does.
func (st *Stream) TakeResumeSecret() (ResumeSecret, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.sess.TakeResumeSecret()
}

// Transport returns the underlying connection. Reading or writing it
// directly corrupts the stream; it is meant for addresses, socket options
// and the like.
func (st *Stream) Transport() io.ReadWriter { return st.rw }

// SetDeadline sets the read and write deadlines of the underlying
// connection, if it supports them (else it returns os.ErrNoDeadline).
func (st *Stream) SetDeadline(t time.Time) error {
	if d, ok := st.rw.(interface{ SetDeadline(time.Time) error }); ok {
		return d.SetDeadline(t)
	}
	return os.ErrNoDeadline
}

// SetReadDeadline sets the underlying connection's read deadline, if it
// supports one (else it returns os.ErrNoDeadline).
func (st *Stream) SetReadDeadline(t time.Time) error {
	if d, ok := st.rw.(interface{ SetReadDeadline(time.Time) error }); ok {
		return d.SetReadDeadline(t)
	}
	return os.ErrNoDeadline
}

// SetWriteDeadline sets the underlying connection's write deadline, if it
// supports one (else it returns os.ErrNoDeadline). A write that times out
// leaves the stream unusable for writing, since part of a frame may have
// been sent.
func (st *Stream) SetWriteDeadline(t time.Time) error {
	if d, ok := st.rw.(interface{ SetWriteDeadline(time.Time) error }); ok {
		return d.SetWriteDeadline(t)
	}
	return os.ErrNoDeadline
}

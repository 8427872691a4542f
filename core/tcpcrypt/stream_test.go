package tcpcrypt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Helpers in this file carry an "st" prefix so they cannot collide with
// the other test files of the package.

var (
	stTEPs       = []TEP{TEPCurve25519, TEPCurve448, TEPP256, TEPP521}
	stAEADs      = []AEADID{AES128GCM, AES256GCM, ChaCha20Poly1305}
	stTranscript = []byte{69, 4, 0x23, 0x24, 69, 3, 0x23} // any bytes both sides agree on
	stConnKinds  = []string{"pipe", "tcp"}
)

// stTestTimeout bounds every blocking test operation through connection
// deadlines, so a deadlock fails the test instead of hanging it.
const stTestTimeout = 60 * time.Second

// stCheckLeaks fails the test if goroutines started during it are still
// running after its other cleanups. Call it first, so its cleanup runs last.
func stCheckLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d running, %d before\n%s", runtime.NumGoroutine(), before, buf)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// stConnPair returns two connected net.Conns: a synchronous in-memory
// pipe or a TCP connection over 127.0.0.1. Both are closed at cleanup.
func stConnPair(t *testing.T, kind string) (a, b net.Conn) {
	t.Helper()
	switch kind {
	case "pipe":
		a, b = net.Pipe()
	case "tcp":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		type res struct {
			c   net.Conn
			err error
		}
		ch := make(chan res, 1)
		go func() {
			c, err := ln.Accept()
			ch <- res{c, err}
		}()
		a, err = net.Dial("tcp", ln.Addr().String())
		r := <-ch
		ln.Close()
		if err != nil || r.err != nil {
			if r.c != nil {
				r.c.Close()
			}
			if a != nil {
				a.Close()
			}
			t.Fatalf("dial/accept: %v / %v", err, r.err)
		}
		b = r.c
	default:
		t.Fatalf("unknown conn kind %q", kind)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	deadline := time.Now().Add(stTestTimeout)
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	return a, b
}

// stHandshake runs StreamHandshake on both conns at once with random
// ephemerals. B prefers aead; A offers every AEAD.
func stHandshake(t *testing.T, ca, cb io.ReadWriter, tep TEP, aead AEADID, cfg *StreamConfig) (sa, sb *Stream) {
	t.Helper()
	ha, err := NewInitiator(nil, tep, stTranscript, nil)
	if err != nil {
		t.Fatalf("NewInitiator: %v", err)
	}
	hb, err := NewResponder(&Config{AEADs: []AEADID{aead}}, tep, stTranscript, nil)
	if err != nil {
		t.Fatalf("NewResponder: %v", err)
	}
	var errA error
	done := make(chan struct{})
	go func() {
		defer close(done)
		sa, errA = StreamHandshake(ca, ha, cfg)
	}()
	sb, errB := StreamHandshake(cb, hb, cfg)
	<-done
	if errA != nil || errB != nil {
		t.Fatalf("StreamHandshake: A: %v, B: %v", errA, errB)
	}
	t.Cleanup(func() { sa.Close(); sb.Close() })
	if sa.ID() != sb.ID() {
		t.Fatalf("session IDs differ:\nA %x\nB %x", sa.ID(), sb.ID())
	}
	if id := sa.ID(); id[0] != byte(tep) {
		t.Fatalf("session ID starts with %#x, want TEP %#x", id[0], byte(tep))
	}
	if sa.AEAD() != aead || sb.AEAD() != aead {
		t.Fatalf("AEAD A %v B %v, want %v", sa.AEAD(), sb.AEAD(), aead)
	}
	return sa, sb
}

// stPattern returns n bytes of a position-dependent pattern, so any
// reordering, loss or duplication shows up in a comparison.
func stPattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+i>>11) ^ seed
	}
	return b
}

// stReadAll reads r to io.EOF with a buffer of bufLen bytes. It fails on
// (0, nil) results, which a Stream must never give for a non-empty buffer.
// On error it returns the bytes read so far with the error.
// stWriteClose writes data and half-closes s on a goroutine; the channel
// reports the outcome.
func stWriteClose(s *Stream, data []byte) <-chan error {
	errc := make(chan error, 1)
	go func() {
		_, err := s.Write(data)
		if err == nil {
			err = s.CloseWrite()
		}
		errc <- err
	}()
	return errc
}

func stReadAll(r io.Reader, bufLen int) ([]byte, error) {
	var out []byte
	buf := make([]byte, bufLen)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if n == 0 {
			return out, errors.New("Read returned 0, nil")
		}
	}
}

// stExchange sends da from A to B and db from B to A at the same time,
// each side half-closing after its data, and checks what arrives.
func stExchange(t *testing.T, sa, sb *Stream, da, db []byte) {
	t.Helper()
	var wg sync.WaitGroup
	var gotA, gotB []byte
	var errWA, errWB, errRA, errRB error
	wg.Go(func() {
		if _, errWA = sa.Write(da); errWA == nil {
			errWA = sa.CloseWrite()
		}
	})
	wg.Go(func() {
		if _, errWB = sb.Write(db); errWB == nil {
			errWB = sb.CloseWrite()
		}
	})
	wg.Go(func() { gotA, errRA = stReadAll(sa, 32<<10) })
	wg.Go(func() { gotB, errRB = stReadAll(sb, 32<<10) })
	wg.Wait()
	for name, err := range map[string]error{"A write": errWA, "B write": errWB, "A read": errRA, "B read": errRB} {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !bytes.Equal(gotB, da) {
		t.Errorf("B received %d bytes, A sent %d (or contents differ)", len(gotB), len(da))
	}
	if !bytes.Equal(gotA, db) {
		t.Errorf("A received %d bytes, B sent %d (or contents differ)", len(gotA), len(db))
	}
}

// stDetSessions runs a deterministic fresh key exchange in memory (fixed
// scalars and nonces) and returns the Init messages and both sessions.
// Every call returns sessions with identical keys.
func stDetSessions(tb testing.TB, tep TEP, aead AEADID) (init1, init2 []byte, a, b *Session) {
	tb.Helper()
	key := func(seed byte) *PrivateKey {
		var n int
		switch tep {
		case TEPCurve25519, TEPP256:
			n = 32
		case TEPCurve448:
			n = 56
		case TEPP521:
			n = 66
		}
		scalar := make([]byte, n)
		// Small big-endian values are in [1, n-1] for the NIST curves;
		// any bytes are valid X25519/X448 scalars.
		for i := n - 8; i < n; i++ {
			scalar[i] = seed + byte(i)
		}
		k, err := NewPrivateKey(tep, scalar)
		if err != nil {
			tb.Fatalf("NewPrivateKey(%v): %v", tep, err)
		}
		return k
	}
	cfg := &Config{AEADs: []AEADID{aead}}
	ha, err := NewInitiator(cfg, tep, stTranscript, &Ephemeral{Key: key(0x11), Nonce: [NonceLen]byte{0xa0, 1, 2, 3}})
	if err != nil {
		tb.Fatalf("NewInitiator: %v", err)
	}
	hb, err := NewResponder(cfg, tep, stTranscript, &Ephemeral{Key: key(0x77), Nonce: [NonceLen]byte{0xb0, 4, 5, 6}})
	if err != nil {
		tb.Fatalf("NewResponder: %v", err)
	}
	init1 = bytes.Clone(ha.Init1())
	init2, b, err = hb.ReadInit1(init1)
	if err != nil {
		tb.Fatalf("ReadInit1: %v", err)
	}
	a, err = ha.ReadInit2(init2)
	if err != nil {
		tb.Fatalf("ReadInit2: %v", err)
	}
	return init1, init2, a, b
}

// stBuf is an in-memory io.ReadWriter: writes append, reads consume.
type stBuf struct{ bytes.Buffer }

// stFeed returns a connection that reads b and discards writes (the
// reader's rekey answers must not come back to it).
func stFeed(b []byte) stRW { return stRW{bytes.NewReader(b), io.Discard} }

// stRW joins a separate reader and writer.
type stRW struct {
	io.Reader
	io.Writer
}

// stDiscard reads nothing (EOF) and discards writes without allocating.
type stDiscard struct{}

func (stDiscard) Read([]byte) (int, error)    { return 0, io.EOF }
func (stDiscard) Write(p []byte) (int, error) { return len(p), nil }

// stWire writes frames with a fresh deterministic A session and returns
// the bytes of A's stream after Init1 (the frames), plus len(Init1).
func stWire(tb testing.TB, cfg *StreamConfig, script func(st *Stream)) (frames []byte, base uint64) {
	tb.Helper()
	init1, init2, a, b := stDetSessions(tb, TEPCurve25519, AES128GCM)
	b.Close()
	var buf stBuf
	st := NewStream(&buf, a, uint64(len(init1)), uint64(len(init2)), cfg)
	script(st)
	return buf.Bytes(), uint64(len(init1))
}

func TestStreamRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 1 << 20}
	for _, kind := range stConnKinds {
		for _, tep := range stTEPs {
			for _, aead := range stAEADs {
				for _, size := range sizes {
					t.Run(fmt.Sprintf("%s/%v/%v/%d", kind, tep, aead, size), func(t *testing.T) {
						stCheckLeaks(t)
						ca, cb := stConnPair(t, kind)
						sa, sb := stHandshake(t, ca, cb, tep, aead, nil)
						stExchange(t, sa, sb, stPattern(size, 1), stPattern(size, 2))
					})
				}
			}
		}
	}
}

func TestStreamHalfClose(t *testing.T) {
	for _, kind := range stConnKinds {
		t.Run(kind, func(t *testing.T) {
			stCheckLeaks(t)
			ca, cb := stConnPair(t, kind)
			sa, sb := stHandshake(t, ca, cb, TEPCurve25519, AES128GCM, nil)
			da, db := stPattern(100<<10, 3), stPattern(300<<10, 4)

			errW := stWriteClose(sa, da)
			got, err := stReadAll(sb, 4096)
			if err != nil || !bytes.Equal(got, da) {
				t.Fatalf("B read %d bytes, err %v; want %d bytes and EOF", len(got), err, len(da))
			}
			if err := <-errW; err != nil {
				t.Fatalf("A write/CloseWrite: %v", err)
			}
			if n, err := sa.Write([]byte("x")); n != 0 || !errors.Is(err, ErrWriteClosed) {
				t.Fatalf("Write after CloseWrite = %d, %v; want ErrWriteClosed", n, err)
			}
			if err := sa.CloseWrite(); err != nil {
				t.Fatalf("second CloseWrite: %v", err)
			}
			if err := sa.Rekey(); !errors.Is(err, ErrWriteClosed) {
				t.Fatalf("Rekey after CloseWrite: %v", err)
			}
			// EOF is repeatable.
			if n, err := sb.Read(make([]byte, 10)); n != 0 || err != io.EOF {
				t.Fatalf("second Read after EOF = %d, %v", n, err)
			}

			// B still writes after A's half-close; A still reads.
			errW = stWriteClose(sb, db)
			got, err = stReadAll(sa, 1000)
			if err != nil || !bytes.Equal(got, db) {
				t.Fatalf("A read %d bytes, err %v; want %d bytes and EOF", len(got), err, len(db))
			}
			if err := <-errW; err != nil {
				t.Fatalf("B write/CloseWrite: %v", err)
			}
			if err := sa.Close(); err != nil {
				t.Errorf("Close A: %v", err)
			}
			if err := sb.Close(); err != nil {
				t.Errorf("Close B: %v", err)
			}
			if err := sa.Close(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("second Close: %v, want net.ErrClosed", err)
			}
		})
	}
}

func TestStreamRekey(t *testing.T) {
	const size = 1 << 20
	cases := []struct {
		name           string
		sizeA, sizeB   int
		rekeyA, rekeyB int // number of rekeys during the transfer
	}{
		{"A", size, size, 1, 0},
		{"B", size, size, 0, 1},
		{"both", size, size, 1, 1},
		{"A-repeated", size, size, 5, 0},
		{"both-repeated", size, size, 4, 4},
		{"A-silent-peer", size, 0, 3, 0},
		{"B-silent-peer", 0, size, 0, 3},
	}
	for _, kind := range stConnKinds {
		for _, tc := range cases {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				stCheckLeaks(t)
				ca, cb := stConnPair(t, kind)
				sa, sb := stHandshake(t, ca, cb, TEPCurve25519, ChaCha20Poly1305, &StreamConfig{MaxFrameData: 4096})
				da, db := stPattern(tc.sizeA, 5), stPattern(tc.sizeB, 6)
				gotAll := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
				var wg sync.WaitGroup
				var errs [4]error
				var got [2][]byte
				writer := func(i int, st *Stream, data []byte, rekeys int) {
					defer wg.Done()
					parts := rekeys + 1
					for p := range parts {
						chunk := data[p*len(data)/parts : (p+1)*len(data)/parts]
						if _, err := st.Write(chunk); err != nil {
							errs[i] = err
							return
						}
						if p == parts-1 {
							break
						}
						// Our previous rekey may not be answered yet, or (with
						// both sides rekeying) our answer to the peer's may
						// still be pending: try again shortly.
						err := st.Rekey()
						for deadline := time.Now().Add(stTestTimeout); errors.Is(err, ErrBadRekey) && time.Now().Before(deadline); {
							time.Sleep(time.Millisecond)
							err = st.Rekey()
						}
						if err != nil {
							errs[i] = fmt.Errorf("Rekey: %w", err)
							return
						}
					}
					// Half-close only when both readers have every data
					// byte: by then every rekey has been seen and answered.
					<-gotAll[0]
					<-gotAll[1]
					errs[i] = st.CloseWrite()
				}
				reader := func(i int, st *Stream, want int) {
					defer wg.Done()
					var out []byte
					buf := make([]byte, 8192)
					signalled := false
					for {
						if !signalled && len(out) >= want {
							close(gotAll[i])
							signalled = true
						}
						n, err := st.Read(buf)
						out = append(out, buf[:n]...)
						if err != nil {
							if err != io.EOF {
								errs[2+i] = err
							}
							break
						}
					}
					if !signalled {
						close(gotAll[i])
					}
					got[i] = out
				}
				wg.Add(4)
				go writer(0, sa, da, tc.rekeyA)
				go writer(1, sb, db, tc.rekeyB)
				go reader(0, sa, len(db))
				go reader(1, sb, len(da))
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Errorf("%s: %v", []string{"A write", "B write", "A read", "B read"}[i], err)
					}
				}
				if !bytes.Equal(got[1], da) || !bytes.Equal(got[0], db) {
					t.Fatalf("data corrupted: B got %d of %d, A got %d of %d", len(got[1]), len(da), len(got[0]), len(db))
				}
				la, ra := sa.Generations()
				lb, rb := sb.Generations()
				if la != rb || ra != lb || la != ra {
					t.Fatalf("generations disagree: A local %d remote %d, B local %d remote %d", la, ra, lb, rb)
				}
				if minGen := uint64(max(tc.rekeyA, tc.rekeyB)); la < minGen {
					t.Fatalf("generation %d after %d/%d rekeys", la, tc.rekeyA, tc.rekeyB)
				}
			})
		}
	}
}

// stMITM joins two pipes and flips the bits of mask in byte flipAt of
// the A→B direction. It returns the ends for A and B.
func stMITM(t *testing.T, flipAt int, mask byte) (ca, cb net.Conn) {
	ca, ma := net.Pipe()
	mb, cb := net.Pipe()
	var wg sync.WaitGroup
	t.Cleanup(func() {
		for _, c := range []net.Conn{ca, ma, mb, cb} {
			c.Close()
		}
		wg.Wait()
	})
	for _, c := range []net.Conn{ca, ma, mb, cb} {
		c.SetDeadline(time.Now().Add(stTestTimeout))
	}
	wg.Go(func() {
		defer mb.Close()
		buf := make([]byte, 4096)
		pos := 0
		for {
			n, err := ma.Read(buf)
			if flipAt >= pos && flipAt < pos+n {
				buf[flipAt-pos] ^= mask
			}
			pos += n
			if n > 0 {
				if _, werr := mb.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
	wg.Go(func() {
		defer ma.Close()
		io.Copy(ma, mb)
	})
	return ca, cb
}

func TestStreamTamper(t *testing.T) {
	msg1 := []byte("authentic first frame")
	msg2 := []byte("second frame, to be tampered with!") // even length: clen is odd
	if (1+len(msg2)+TagLen)%2 != 1 {
		t.Fatal("test needs an odd clen for frame 2")
	}
	f2 := FrameLen(len(msg1), false) // frame 2 starts here, after Init1
	f2len := FrameLen(len(msg2), false)
	cases := []struct {
		name     string
		pos      int // in the frames after Init1
		mask     byte
		noData   bool // the flip is in frame 1
		wantTrnc bool // ErrTruncated is acceptable as well
	}{
		{"frame1-data", 10, 0x01, true, false},
		{"rekey-bit", f2, ControlRekey, false, false},
		{"cres-bit", f2, 0x80, false, false},
		{"clen-shorter", f2 + 2, 0x01, false, false},
		{"flags", f2 + 3, 0x01, false, false},
		{"data", f2 + 12, 0x40, false, false},
		{"tag", f2 + f2len - 1, 0x80, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stCheckLeaks(t)
			ha, err := NewInitiator(nil, TEPCurve25519, stTranscript, nil)
			if err != nil {
				t.Fatal(err)
			}
			hb, err := NewResponder(nil, TEPCurve25519, stTranscript, nil)
			if err != nil {
				t.Fatal(err)
			}
			ca, cb := stMITM(t, len(ha.Init1())+tc.pos, tc.mask)
			var sa *Stream
			var errA error
			var wg sync.WaitGroup
			wg.Go(func() {
				if sa, errA = StreamHandshake(ca, ha, nil); errA != nil {
					return
				}
				if _, errA = sa.Write(msg1); errA == nil {
					_, errA = sa.Write(msg2)
				}
			})
			sb, err := StreamHandshake(cb, hb, nil)
			if err != nil {
				t.Fatalf("B handshake: %v", err)
			}
			got, err := stReadAll(sb, 7)
			if !errors.Is(err, ErrIntegrity) {
				t.Errorf("B read error = %v, want ErrIntegrity", err)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, ErrTruncated) {
				t.Errorf("integrity error %v also matches EOF/ErrTruncated", err)
			}
			want := msg1
			if tc.noData {
				want = nil
			}
			if !bytes.Equal(got, want) {
				t.Errorf("B delivered %q, want %q", got, want)
			}
			if _, err2 := sb.Read(make([]byte, 100)); err2 != err {
				t.Errorf("error not sticky: second Read gave %v", err2)
			}
			if !strings.Contains(err.Error(), "offset") {
				t.Errorf("error lacks the frame offset: %v", err)
			}
			sb.Close()
			ca.Close() // unblocks A if the MITM is stuck writing to B
			wg.Wait()
			if sa != nil {
				sa.Close()
			}
		})
	}
}

func TestStreamTruncatedOverConn(t *testing.T) {
	for _, kind := range stConnKinds {
		t.Run(kind, func(t *testing.T) {
			stCheckLeaks(t)
			ca, cb := stConnPair(t, kind)
			sa, sb := stHandshake(t, ca, cb, TEPCurve25519, AES256GCM, nil)
			msg := stPattern(50000, 9)
			errW := make(chan error, 1)
			go func() {
				_, err := sa.Write(msg)
				ca.Close() // TCP FIN (or pipe close) without a FINp frame
				errW <- err
			}()
			got, err := stReadAll(sb, 1024)
			if !errors.Is(err, ErrTruncated) || errors.Is(err, io.EOF) {
				t.Fatalf("Read error = %v, want ErrTruncated and not io.EOF", err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatalf("got %d bytes before the error, want %d", len(got), len(msg))
			}
			if err := <-errW; err != nil {
				t.Fatalf("A write: %v", err)
			}
		})
	}
}

// TestStreamTruncatedEverywhere cuts a valid stream at every byte and
// checks that the reader returns exactly the complete frames' data and
// then ErrTruncated, never io.EOF.
func TestStreamTruncatedEverywhere(t *testing.T) {
	wire, base := stWire(t, &StreamConfig{MaxFrameData: 5}, func(st *Stream) {
		for _, s := range []string{"", "a", "bcdef", "ghijklm", "nopq"} {
			st.Write([]byte(s))
		}
		st.Rekey()
		st.Write([]byte("rstuvwxyz"))
		st.CloseWrite()
	})
	full := []byte("abcdefghijklmnopqrstuvwxyz")
	for cut := 0; cut <= len(wire); cut++ {
		_, _, _, b := stDetSessions(t, TEPCurve25519, AES128GCM)
		st := NewStream(stFeed(wire[:cut]), b, 0, base, nil)
		got, err := stReadAll(st, 3)
		if cut == len(wire) {
			if err != nil || !bytes.Equal(got, full) {
				t.Fatalf("complete stream: got %q, %v", got, err)
			}
			continue
		}
		if !errors.Is(err, ErrTruncated) || errors.Is(err, io.EOF) {
			t.Fatalf("cut at %d: error %v, want ErrTruncated", cut, err)
		}
		if !bytes.HasPrefix(full, got) {
			t.Fatalf("cut at %d: got %q, not a prefix of the data", cut, got)
		}
	}
}

func TestStreamResume(t *testing.T) {
	for _, kind := range stConnKinds {
		for _, aead := range stAEADs {
			t.Run(kind+"/"+aead.String(), func(t *testing.T) {
				stCheckLeaks(t)
				ca, cb := stConnPair(t, kind)
				sa, sb := stHandshake(t, ca, cb, TEPCurve448, aead, nil)
				stExchange(t, sa, sb, []byte("fresh A"), []byte("fresh B"))
				rsA, okA := sa.TakeResumeSecret()
				rsB, okB := sb.TakeResumeSecret()
				if !okA || !okB {
					t.Fatal("TakeResumeSecret failed")
				}
				if _, ok := sa.TakeResumeSecret(); ok {
					t.Fatal("resume secret handed out twice")
				}
				// Two generations of resumption; roles swap in the
				// second (B opens), which must not change key direction.
				for round, nonces := range [][2][]byte{{[]byte("nonceA01"), []byte("nonceB01")}, {[]byte("A2"), nil}} {
					ra, err := Resume(&rsA, nonces[0], nonces[1])
					if err != nil {
						t.Fatal(err)
					}
					rb, err := Resume(&rsB, nonces[0], nonces[1])
					if err != nil {
						t.Fatal(err)
					}
					c1, c2 := stConnPair(t, kind)
					if round == 1 {
						c1, c2 = c2, c1
					}
					xa := NewStream(c1, ra, 0, 0, nil)
					xb := NewStream(c2, rb, 0, 0, nil)
					t.Cleanup(func() { xa.Close(); xb.Close() })
					if xa.ID() != xb.ID() {
						t.Fatalf("round %d: resumed IDs differ", round)
					}
					if xa.AEAD() != aead || xb.AEAD() != aead {
						t.Fatalf("round %d: resumed AEAD %v/%v, original %v", round, xa.AEAD(), xb.AEAD(), aead)
					}
					if id := xa.ID(); id[0] != byte(TEPCurve448)|ResumeBit || id == sa.ID() {
						t.Fatalf("round %d: resumed ID %x", round, id)
					}
					stExchange(t, xa, xb, stPattern(70000, byte(round)), []byte(fmt.Sprint("resumed B ", round)))
					if rsA, okA = xa.TakeResumeSecret(); !okA {
						t.Fatal("no ss[i+1] from resumed session A")
					}
					if rsB, okB = xb.TakeResumeSecret(); !okB {
						t.Fatal("no ss[i+1] from resumed session B")
					}
				}
			})
		}
	}
}

// TestStreamWireOffsets checks the frame offsets on the wire against an
// independent Session: A's first frame sits at len(Init1), B's at
// len(Init2), a resumed session's at 0, and each frame follows the last.
func TestStreamWireOffsets(t *testing.T) {
	check := func(t *testing.T, wire []byte, opener *Session, base uint64, want [][]byte) {
		t.Helper()
		off := base
		for i, w := range want {
			f, n, err := opener.OpenFrame(wire, off)
			if err != nil {
				t.Fatalf("frame %d at offset %d: %v", i, off, err)
			}
			if !bytes.Equal(f.Data, w) || f.FIN() != (i == len(want)-1) {
				t.Fatalf("frame %d: data %q FIN %v", i, f.Data, f.FIN())
			}
			wire = wire[n:]
			off += uint64(n)
		}
		if len(wire) != 0 {
			t.Fatalf("%d stray bytes", len(wire))
		}
	}
	script := func(st *Stream) {
		st.Write([]byte("hello, "))
		st.Write([]byte("world"))
		st.CloseWrite()
	}
	want := [][]byte{[]byte("hello, "), []byte("world"), {}}
	t.Run("fresh", func(t *testing.T) {
		init1, init2, a, b := stDetSessions(t, TEPP256, AES128GCM)
		_, _, a2, b2 := stDetSessions(t, TEPP256, AES128GCM)
		var wa, wb stBuf
		script(NewStream(&wa, a, uint64(len(init1)), uint64(len(init2)), nil))
		script(NewStream(&wb, b, uint64(len(init2)), uint64(len(init1)), nil))
		check(t, wa.Bytes(), b2, uint64(len(init1)), want)
		check(t, wb.Bytes(), a2, uint64(len(init2)), want)
		// Offset 0 is not what the peer expects for a fresh session.
		if _, _, err := b2.OpenFrame(wa.Bytes(), 0); !errors.Is(err, ErrIntegrity) {
			t.Fatalf("fresh frame opened at offset 0: %v", err)
		}
	})
	t.Run("resumed", func(t *testing.T) {
		mk := func(origA bool) *Session {
			rs := ResumeSecret{TEP: TEPCurve25519, AEAD: ChaCha20Poly1305, OrigA: origA, Secret: Secret{1, 2, 3, 4}}
			s, err := Resume(&rs, []byte("na"), []byte("nb"))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		var wa, wb stBuf
		script(NewStream(&wa, mk(true), 0, 0, nil))
		script(NewStream(&wb, mk(false), 0, 0, nil))
		check(t, wa.Bytes(), mk(false), 0, want)
		check(t, wb.Bytes(), mk(true), 0, want)
	})
}

// stSplitConn turns every Write into 1-byte writes and every Read into a
// 1-byte read, so frames arrive split at every possible point.
type stSplitConn struct{ net.Conn }

func (c stSplitConn) Write(p []byte) (int, error) {
	for i := range p {
		if _, err := c.Conn.Write(p[i : i+1]); err != nil {
			return i, err
		}
	}
	return len(p), nil
}

func (c stSplitConn) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return c.Conn.Read(p)
}

func TestStreamTinyReadsAndWrites(t *testing.T) {
	for _, kind := range stConnKinds {
		t.Run(kind+"/1-byte-caller-buffer", func(t *testing.T) {
			stCheckLeaks(t)
			ca, cb := stConnPair(t, kind)
			sa, sb := stHandshake(t, ca, cb, TEPCurve25519, AES128GCM, nil)
			data := stPattern(40000, 11)
			errW := stWriteClose(sa, data)
			got, err := stReadAll(sb, 1)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes, %v", len(got), err)
			}
			if err := <-errW; err != nil {
				t.Fatal(err)
			}
		})
		t.Run(kind+"/1-byte-underlying-io", func(t *testing.T) {
			stCheckLeaks(t)
			ca, cb := stConnPair(t, kind)
			// The handshake also runs over the split conns: Init
			// messages arrive a byte at a time too.
			sa, sb := stHandshake(t, stSplitConn{ca}, stSplitConn{cb}, TEPP521, ChaCha20Poly1305, &StreamConfig{MaxFrameData: 1000})
			stExchange(t, sa, sb, stPattern(5000, 12), stPattern(3000, 13))
		})
	}
}

// TestStreamHandshakeSurplus has B send Init2 and its first frames in a
// single write: A's handshake reads past Init2 and must keep those bytes.
func TestStreamHandshakeSurplus(t *testing.T) {
	stCheckLeaks(t)
	ca, cb := stConnPair(t, "pipe")
	ha, err := NewInitiator(nil, TEPCurve25519, stTranscript, nil)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := NewResponder(nil, TEPCurve25519, stTranscript, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("data right behind Init2")
	errB := make(chan error, 1)
	go func() {
		errB <- func() error {
			init1 := make([]byte, len(ha.Init1()))
			if _, err := io.ReadFull(cb, init1); err != nil {
				return err
			}
			init2, s, err := hb.ReadInit1(init1)
			if err != nil {
				return err
			}
			var buf stBuf
			buf.Write(init2)
			st := NewStream(&buf, s, uint64(len(init2)), uint64(len(init1)), nil)
			st.Write(data)
			st.CloseWrite()
			_, err = cb.Write(buf.Bytes()) // one write: Init2 | frame | FINp frame
			return err
		}()
	}()
	sa, err := StreamHandshake(ca, ha, nil)
	if err != nil {
		t.Fatalf("A handshake: %v", err)
	}
	if err := <-errB; err != nil {
		t.Fatalf("B: %v", err)
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		io.Copy(io.Discard, cb) // A's FINp from Close
	}()
	defer func() { <-drained }()
	defer sa.Close()
	got, err := stReadAll(sa, 100)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("A read %q, %v; want %q", got, err, data)
	}
}

func TestStreamHandshakeErrors(t *testing.T) {
	mk := func(role Role) *Handshake {
		var h *Handshake
		var err error
		if role == RoleA {
			h, err = NewInitiator(nil, TEPCurve25519, stTranscript, nil)
		} else {
			h, err = NewResponder(nil, TEPCurve25519, stTranscript, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	validInit1 := bytes.Clone(mk(RoleA).Init1())
	cases := []struct {
		name string
		role Role
		peer []byte
		want error
	}{
		{"A/bad-magic", RoleA, []byte{0x09, 0x71, 0x05, 0xe1, 0, 0, 0, 80}, ErrBadMagic},
		{"A/eof-in-header", RoleA, []byte{0x09, 0x71}, io.ErrUnexpectedEOF},
		{"A/eof-in-body", RoleA, []byte{0x09, 0x71, 0x05, 0xe0, 0, 0, 0, 80, 0, 1}, io.ErrUnexpectedEOF},
		{"A/too-long", RoleA, []byte{0x09, 0x71, 0x05, 0xe0, 0, 2, 0, 0}, ErrBadInitLength},
		{"A/init1-instead", RoleA, validInit1, ErrBadMagic},
		{"B/eof", RoleB, nil, io.ErrUnexpectedEOF},
		{"B/init2-magic", RoleB, []byte{0x09, 0x71, 0x05, 0xe0}, ErrBadMagic},
		{"B/truncated-init1", RoleB, validInit1[:len(validInit1)-1], io.ErrUnexpectedEOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rw := stRW{bytes.NewReader(tc.peer), io.Discard}
			st, err := StreamHandshake(rw, mk(tc.role), nil)
			if !errors.Is(err, tc.want) || errors.Is(err, io.EOF) || st != nil {
				t.Fatalf("StreamHandshake = %v, %v; want %v", st, err, tc.want)
			}
		})
	}
}

func TestStreamDataAfterFIN(t *testing.T) {
	wire, base := stWire(t, nil, func(st *Stream) {
		st.Write([]byte("last words"))
		st.CloseWrite()
	})
	wire = append(wire, 0, 0, 17, 1, 2, 3)
	_, _, _, b := stDetSessions(t, TEPCurve25519, AES128GCM)
	st := NewStream(stFeed(wire), b, 0, base, nil)
	got, err := stReadAll(st, 100)
	if string(got) != "last words" || !errors.Is(err, ErrDataAfterFIN) {
		t.Fatalf("got %q, %v; want data then ErrDataAfterFIN", got, err)
	}
}

func TestStreamUrgentFramesRead(t *testing.T) {
	init1, init2, a, b := stDetSessions(t, TEPCurve25519, AES256GCM)
	off := uint64(len(init1))
	var wire []byte
	for i, s := range []string{"normal ", "urgent!", "", " tail"} {
		var urg *uint16
		if i%2 == 1 {
			u := uint16(6)
			urg = &u
		}
		flags := byte(0)
		if i == 3 {
			flags = FlagFIN
		}
		n := len(wire)
		var err error
		if wire, err = a.AppendFrame(wire, off, flags, urg, []byte(s)); err != nil {
			t.Fatal(err)
		}
		off += uint64(len(wire) - n)
	}
	st := NewStream(stFeed(wire), b, uint64(len(init2)), uint64(len(init1)), nil)
	got, err := stReadAll(st, 3)
	if err != nil || string(got) != "normal urgent! tail" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestStreamLargePeerFrames(t *testing.T) {
	// The writer uses the largest frames; the reader's buffer must grow.
	data := stPattern(3*MaxFrameData+17, 14)
	wire, base := stWire(t, &StreamConfig{MaxFrameData: MaxFrameData + 1000}, func(st *Stream) {
		st.Write(data)
		st.CloseWrite()
	})
	if _, n, _ := PeekFrame(wire); n != maxWireFrame {
		t.Fatalf("first frame is %d bytes, want %d (MaxFrameData clamp)", n, maxWireFrame)
	}
	_, _, _, b := stDetSessions(t, TEPCurve25519, AES128GCM)
	st := NewStream(stFeed(wire), b, 0, base, nil)
	got, err := stReadAll(st, 1<<20)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
	if cap(st.rbuf) > maxWireFrame {
		t.Fatalf("receive buffer grew to %d bytes, bound is %d", cap(st.rbuf), maxWireFrame)
	}
}

func TestStreamFrameSizes(t *testing.T) {
	for _, maxData := range []int{-1, 0, 1, 100, DefaultStreamFrameData, MaxFrameData} {
		want := maxData
		if maxData <= 0 {
			want = DefaultStreamFrameData
		}
		data := stPattern(2*want+min(3, want-1), 15)
		wire, _ := stWire(t, &StreamConfig{MaxFrameData: maxData}, func(st *Stream) { st.Write(data) })
		var lens []int
		for len(wire) > 0 {
			_, n, err := PeekFrame(wire)
			if err != nil {
				t.Fatal(err)
			}
			lens = append(lens, n-FrameOverhead)
			wire = wire[n:]
		}
		wantLens := []int{want, want}
		if want > 1 {
			wantLens = append(wantLens, min(3, want-1))
		}
		if fmt.Sprint(lens) != fmt.Sprint(wantLens) {
			t.Errorf("MaxFrameData %d: frame data sizes %v", maxData, lens)
		}
	}
}

func TestStreamOffsetWrap(t *testing.T) {
	t.Run("send", func(t *testing.T) {
		_, _, a, _ := stDetSessions(t, TEPCurve25519, AES128GCM)
		st := NewStream(stDiscard{}, a, math.MaxUint64-100, 0, nil)
		if _, err := st.Write(make([]byte, 50)); err != nil {
			t.Fatalf("frame below the limit: %v", err)
		}
		n, err := st.Write(make([]byte, 50))
		if n != 0 || !errors.Is(err, ErrOffsetWrap) {
			t.Fatalf("Write across 2^64 = %d, %v; want ErrOffsetWrap", n, err)
		}
		if _, err := st.Write([]byte{1}); !errors.Is(err, ErrOffsetWrap) {
			t.Fatalf("write error not sticky: %v", err)
		}
	})
	t.Run("recv", func(t *testing.T) {
		wire, _ := stWire(t, nil, func(st *Stream) { st.Write([]byte("x")) })
		_, _, _, b := stDetSessions(t, TEPCurve25519, AES128GCM)
		st := NewStream(stFeed(wire), b, 0, math.MaxUint64-5, nil)
		if _, err := st.Read(make([]byte, 10)); !errors.Is(err, ErrOffsetWrap) {
			t.Fatalf("Read across 2^64: %v", err)
		}
	})
}

func TestStreamCloseUnblocks(t *testing.T) {
	t.Run("read", func(t *testing.T) {
		stCheckLeaks(t)
		ca, cb := stConnPair(t, "pipe")
		sa, sb := stHandshake(t, ca, cb, TEPCurve25519, AES128GCM, nil)
		readErr := make(chan error, 1)
		go func() {
			_, err := sa.Read(make([]byte, 10))
			readErr <- err
		}()
		peerRead := make(chan error, 1)
		go func() {
			_, err := stReadAll(sb, 10) // receives the FINp of Close
			peerRead <- err
		}()
		time.Sleep(20 * time.Millisecond)
		if err := sa.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-readErr; !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read blocked during Close returned %v, want net.ErrClosed", err)
		}
		if err := <-peerRead; err != nil {
			t.Errorf("peer read %v, want a clean EOF from Close's FINp", err)
		}
		if _, err := sa.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read after Close: %v", err)
		}
		if _, err := sa.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Write after Close: %v", err)
		}
		if err := sa.Rekey(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Rekey after Close: %v", err)
		}
		if err := sa.CloseWrite(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("CloseWrite after Close: %v", err)
		}
	})
	t.Run("write", func(t *testing.T) {
		stCheckLeaks(t)
		ca, cb := stConnPair(t, "pipe")
		_, sb := stHandshake(t, ca, cb, TEPCurve25519, AES128GCM, nil)
		writeErr := make(chan error, 1)
		go func() {
			// Nobody reads A's side: this Write blocks in the pipe.
			_, err := sb.Write(make([]byte, 1<<20))
			writeErr <- err
		}()
		for busy := false; !busy; time.Sleep(time.Millisecond) {
			sb.mu.Lock()
			busy = sb.writing
			sb.mu.Unlock()
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			sb.Close() // must not wait for the blocked Write
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatal("Close blocked behind a pending Write")
		}
		if err := <-writeErr; !errors.Is(err, net.ErrClosed) {
			t.Errorf("Write blocked during Close returned %v, want net.ErrClosed", err)
		}
	})
}

// TestStreamReadDeadline checks net.Conn semantics: a timeout is not a
// permanent error, and no byte is lost by it.
func TestStreamReadDeadline(t *testing.T) {
	stCheckLeaks(t)
	ca, cb := stConnPair(t, "tcp")
	sa, sb := stHandshake(t, ca, cb, TEPCurve25519, AES128GCM, nil)
	if err := sb.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past deadline: %v", err)
	}
	sb.SetReadDeadline(time.Now().Add(stTestTimeout))
	go func() {
		sa.Write([]byte("after the timeout"))
		sa.CloseWrite()
	}()
	got, err := stReadAll(sb, 64)
	if err != nil || string(got) != "after the timeout" {
		t.Fatalf("after timeout: %q, %v", got, err)
	}
	if err := NewStream(stDiscard{}, nil, 0, 0, nil).SetDeadline(time.Now()); !errors.Is(err, os.ErrNoDeadline) {
		t.Fatalf("SetDeadline without support: %v", err)
	}
}

// stFailWriter accepts limit bytes, then fails.
type stFailWriter struct {
	stDiscard
	limit int
}

func (w *stFailWriter) Write(p []byte) (int, error) {
	if len(p) <= w.limit {
		w.limit -= len(p)
		return len(p), nil
	}
	n := w.limit
	w.limit = 0
	return n, errors.New("link down")
}

func TestStreamWriteError(t *testing.T) {
	_, _, a, _ := stDetSessions(t, TEPCurve25519, AES128GCM)
	fw := &stFailWriter{limit: 2*FrameLen(100, false) + 7}
	st := NewStream(fw, a, 0, 0, &StreamConfig{MaxFrameData: 100})
	n, err := st.Write(make([]byte, 1000))
	if n != 200 || err == nil || err.Error() != "link down" {
		t.Fatalf("Write = %d, %v; want 200 bytes and the link error", n, err)
	}
	if _, err2 := st.Write([]byte("x")); err2 != err {
		t.Fatalf("write error not sticky: %v", err2)
	}
	if err2 := st.CloseWrite(); err2 != err {
		t.Fatalf("CloseWrite after write error: %v", err2)
	}
}

func TestStreamAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	for _, size := range []int{1, 1000, 100 << 10} {
		init1, _, a, _ := stDetSessions(t, TEPCurve25519, AES128GCM)
		st := NewStream(stDiscard{}, a, uint64(len(init1)), 0, nil)
		data := make([]byte, size)
		st.Write(data)
		if allocs := testing.AllocsPerRun(100, func() {
			if _, err := st.Write(data); err != nil {
				t.Fatal(err)
			}
		}); allocs != 0 {
			t.Errorf("Write(%d bytes): %.1f allocations per call, want 0", size, allocs)
		}
	}

	const runs, size = 100, 1000
	data := make([]byte, size)
	wire, base := stWire(t, nil, func(st *Stream) {
		for range runs + 2 {
			st.Write(data)
		}
	})
	_, _, _, b := stDetSessions(t, TEPCurve25519, AES128GCM)
	st := NewStream(stFeed(wire), b, 0, base, nil)
	buf := make([]byte, size)
	io.ReadFull(st, buf)
	if allocs := testing.AllocsPerRun(runs, func() {
		if _, err := io.ReadFull(st, buf); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("Read of one frame: %.1f allocations per call, want 0", allocs)
	}
}

// stFuzzConn feeds the fuzz input in chunks of at most chunk bytes (all
// at once for 0) and discards writes (rekey answers).
type stFuzzConn struct {
	data  []byte
	chunk int
}

func (c *stFuzzConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	if c.chunk > 0 && len(p) > c.chunk {
		p = p[:c.chunk]
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	return n, nil
}

func (c *stFuzzConn) Write(p []byte) (int, error) { return len(p), nil }

// stOracle opens wire frame by frame with s, directly through the Session
// API, and returns the authenticated data and how the stream ends.
func stOracle(s *Session, wire []byte, off uint64) (data []byte, end error) {
	for {
		_, n, err := PeekFrame(wire)
		if err == nil && len(wire) < n {
			err = ErrNeedMore
		}
		if errors.Is(err, ErrNeedMore) {
			return data, ErrTruncated
		}
		if err != nil {
			return data, err
		}
		f, n, err := s.OpenFrame(wire[:n], off)
		if err != nil {
			return data, err
		}
		data = append(data, f.Data...)
		wire, off = wire[n:], off+uint64(n)
		if f.FIN() {
			if len(wire) > 0 {
				return data, ErrDataAfterFIN
			}
			return data, io.EOF
		}
	}
}

// stErrClass returns the package sentinel err matches, or nil.
func stErrClass(err error) error {
	for _, e := range []error{ErrIntegrity, ErrTruncated, ErrDataAfterFIN, ErrOffsetWrap, ErrBadRekey, ErrFrameTooLarge, ErrSessionClosed} {
		if errors.Is(err, e) {
			return e
		}
	}
	return nil
}

// The fuzz target's session is a resumed one from a fixed secret: it is
// as deterministic as a fresh exchange with fixed ephemerals, and costs
// a few HMACs instead of eight X25519 operations per execution, which
// would dominate the fuzzing rate. Its frames start at stFuzzBase, the
// length of a Curve25519 Init1 offering one AEAD, so the offsets are
// those of a fresh session's stream.
const stFuzzBase = 75

func stFuzzSession(tb testing.TB, origA bool) *Session {
	tb.Helper()
	rs := ResumeSecret{TEP: TEPCurve25519, AEAD: AES128GCM, OrigA: origA, Secret: Secret{0xf0, 0x22, 0x5e, 0xed, 31: 0x01}}
	s, err := Resume(&rs, []byte("fuzz-n-a"), []byte("fuzz-n-b"))
	if err != nil {
		tb.Fatalf("Resume: %v", err)
	}
	return s
}

// stFuzzWire writes the frames of the fuzz target's peer.
func stFuzzWire(tb testing.TB, cfg *StreamConfig, script func(st *Stream)) []byte {
	tb.Helper()
	var buf stBuf
	script(NewStream(&buf, stFuzzSession(tb, true), stFuzzBase, 0, cfg))
	return buf.Bytes()
}

// FuzzStreamRead feeds arbitrary bytes to a Stream as the peer's frames.
// The Stream must end with an error, deliver exactly the data that
// authenticates (checked against frame-by-frame Session.OpenFrame), and
// classify the ending the same way.
func FuzzStreamRead(f *testing.F) {
	f.Fuzz(func(t *testing.T, wire []byte, chunk byte) {
		b, oracle := stFuzzSession(t, false), stFuzzSession(t, false)
		base := uint64(stFuzzBase)
		want, wantEnd := stOracle(oracle, bytes.Clone(wire), base)

		st := NewStream(&stFuzzConn{data: wire, chunk: int(chunk)}, b, 0, base, nil)
		var got []byte
		buf := make([]byte, 1+int(chunk)%37)
		var err error
		for i := 0; ; i++ {
			var n int
			n, err = st.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
			if n == 0 {
				t.Fatal("Read returned 0, nil")
			}
			if i > len(wire)+10 {
				t.Fatal("Read does not terminate")
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("delivered %q, authenticated data is %q", got, want)
		}
		switch {
		case wantEnd == io.EOF:
			if err != io.EOF {
				t.Fatalf("oracle saw a clean FINp end, Stream: %v", err)
			}
		case errors.Is(wantEnd, ErrDataAfterFIN):
			// The Stream sees trailing bytes only if they were buffered
			// with the FINp frame.
			if err != io.EOF && !errors.Is(err, ErrDataAfterFIN) {
				t.Fatalf("data after FINp: Stream gave %v", err)
			}
		default:
			if err == io.EOF || stErrClass(err) != stErrClass(wantEnd) || stErrClass(err) == nil {
				t.Fatalf("oracle ended with %v, Stream with %v", wantEnd, err)
			}
		}
		if errors.Is(err, ErrDataAfterFIN) && !errors.Is(wantEnd, ErrDataAfterFIN) {
			t.Fatalf("Stream reported data after FINp, oracle %v", wantEnd)
		}
		st.Close()
	})
}

// TestStreamFuzzSeeds regenerates the FuzzStreamRead seed corpus when
// TCPCRYPT_WRITE_FUZZ_SEEDS=1, and otherwise checks that its "valid"
// seeds still authenticate, so a change to the key schedule or offsets
// cannot silently turn them into garbage.
func TestStreamFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzStreamRead")
	seeds := stFuzzSeeds(t)
	if os.Getenv("TCPCRYPT_WRITE_FUZZ_SEEDS") == "1" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, s := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbyte(%q)\n", s.wire, s.chunk)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	for name := range seeds {
		if !strings.HasPrefix(name, "valid") {
			continue
		}
		body, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("seed %s missing (regenerate with TCPCRYPT_WRITE_FUZZ_SEEDS=1): %v", name, err)
		}
		lines := strings.Split(string(body), "\n")
		if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
			t.Fatalf("seed %s: unexpected format", name)
		}
		wire, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("seed %s: %v", name, err)
		}
		if _, end := stOracle(stFuzzSession(t, false), []byte(wire), stFuzzBase); end != io.EOF {
			t.Errorf("seed %s no longer authenticates (%v); regenerate with TCPCRYPT_WRITE_FUZZ_SEEDS=1", name, end)
		}
	}
}

type stSeed struct {
	wire  []byte
	chunk byte
}

func stFuzzSeeds(t *testing.T) map[string]stSeed {
	simple := stFuzzWire(t, nil, func(st *Stream) {
		st.Write([]byte("hello"))
		st.CloseWrite()
	})
	multi := stFuzzWire(t, &StreamConfig{MaxFrameData: 7}, func(st *Stream) {
		st.Write([]byte("frames of seven bytes at most"))
		st.Rekey()
		st.Write([]byte("after a rekey"))
		st.Rekey()
		st.CloseWrite()
	})
	large := stFuzzWire(t, &StreamConfig{MaxFrameData: 1500}, func(st *Stream) {
		st.Write(stPattern(2000, 7))
		st.CloseWrite()
	})
	a := stFuzzSession(t, true)
	u := uint16(3)
	urgent, _ := a.AppendFrame(nil, stFuzzBase, 0, &u, []byte("urgent"))
	urgent, _ = a.AppendFrame(urgent, stFuzzBase+uint64(len(urgent)), FlagFIN, nil, nil)
	flip := func(b []byte, i int, mask byte) []byte {
		b = bytes.Clone(b)
		b[i] ^= mask
		return b
	}
	f1 := FrameLen(7, false)
	return map[string]stSeed{
		"valid-simple":            {simple, 0},
		"valid-simple-chunk1":     {simple, 1},
		"valid-multi-rekey":       {multi, 0},
		"valid-multi-rekey-chunk": {multi, 5},
		"valid-large":             {large, 0},
		"valid-large-chunk":       {large, 100},
		"valid-urgent":            {urgent, 0},
		"empty":                   {nil, 0},
		"short-clen":              {[]byte{0, 0, 16, 1, 2}, 0},
		"truncated-header":        {multi[:f1+2], 0},
		"truncated-frame":         {multi[:f1+10], 3},
		"truncated-no-fin":        {multi[:len(multi)-FrameOverhead], 0},
		"flip-first-data":         {flip(simple, 5, 0x04), 0},
		"flip-second-rekey":       {flip(multi, f1, ControlRekey), 0},
		"flip-clen":               {flip(multi, f1+2, 0x01), 2},
		"flip-tag":                {flip(large, len(large)-FrameOverhead-1, 0x80), 0},
		"data-after-fin":          {append(bytes.Clone(simple), 1, 0, 17), 0},
		"fin-then-valid-frame":    {append(bytes.Clone(simple), simple...), 0},
	}
}

// BenchmarkStream measures Write followed by Read of the same bytes over
// an in-memory buffer, so it shows the codec's own cost. "plain" is the
// same copy without tcpcrypt.
func BenchmarkStream(b *testing.B) {
	sizes := []int{64, 1 << 10, 16 << 10, 64 << 10, 1 << 20}
	for _, aead := range append([]AEADID{0}, stAEADs...) {
		name := "plain"
		if aead != 0 {
			name = aead.String()
		}
		for _, size := range sizes {
			b.Run(fmt.Sprintf("%s/%d", name, size), func(b *testing.B) {
				var pipe stBuf
				var w, r io.ReadWriter = &pipe, &pipe
				if aead != 0 {
					init1, init2, sa, sb := stDetSessions(b, TEPCurve25519, aead)
					w = NewStream(&pipe, sa, uint64(len(init1)), uint64(len(init2)), nil)
					r = NewStream(&pipe, sb, uint64(len(init2)), uint64(len(init1)), nil)
				}
				data := stPattern(size, 1)
				buf := make([]byte, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := w.Write(data); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(r, buf); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

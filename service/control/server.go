package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"tcpinc.dev/tcpinc/service/version"
)

// Serve answers control requests on ln with h until ctx ends, then closes
// ln, waits for the connections it is serving, and returns nil. It
// returns an error if accepting fails for another reason. ln.Log (may
// be nil) records refused and malformed requests.
func Serve(ctx context.Context, ln *Listener, h Handler) error {
	log := ln.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := make(map[net.Conn]struct{})
	wg.Go(func() {
		<-ctx.Done()
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			cancel()
			return fmt.Errorf("control socket: %w", err)
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Go(func() {
			ln.stats.conns.Add(1)
			peer, err := ln.peer(c, &ln.access)
			if err != nil {
				ln.stats.unidentified.Add(1)
				// Unknown callers may still read; they cannot control.
				log.Warn("control: cannot identify the caller; treating it as unprivileged", "err", err)
				peer = Peer{UID: -1}
			}
			s := &session{h: h, acc: &ln.access, peer: peer, log: log, stats: &ln.stats}
			s.serve(ctx, c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
		})
	}
}

// idleTimeout closes connections that send nothing for this long.
const idleTimeout = time.Minute

// session is one client connection.
type session struct {
	h     Handler
	acc   *access
	peer  Peer
	log   *slog.Logger
	stats *stats
}

func (s *session) serve(ctx context.Context, c net.Conn) {
	r := bufio.NewReaderSize(c, 4096)
	enc := json.NewEncoder(c)
	for ctx.Err() == nil {
		c.SetReadDeadline(time.Now().Add(idleTimeout))
		line, err := readLine(r, maxRequestLine)
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				s.stats.badRequests.Add(1)
				s.log.Warn("control: request too long; closing the connection", "uid", s.peer.UID, "pid", s.peer.PID)
				c.SetWriteDeadline(time.Now().Add(ioTimeout))
				enc.Encode(Response{V: ProtocolVersion, Code: CodeBadRequest, Error: "request too long"})
			}
			return
		}
		resp := s.handle(line)
		c.SetWriteDeadline(time.Now().Add(ioTimeout))
		if err := enc.Encode(resp); err != nil {
			return
		}
	}
}

func (s *session) handle(line []byte) (resp Response) {
	resp.V = ProtocolVersion
	s.stats.requests.Add(1)
	fail := func(code, msg string) Response {
		resp.Code, resp.Error = code, msg
		switch code {
		case CodeFailed:
			s.stats.failed.Add(1)
		case CodePermission:
			s.stats.refused.Add(1)
			s.log.Warn("control: request refused", "uid", s.peer.UID, "pid", s.peer.PID, "error", msg)
		default:
			s.stats.badRequests.Add(1)
			s.log.Info("control: bad request", "uid", s.peer.UID, "pid", s.peer.PID, "error", msg)
		}
		return resp
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return fail(CodeBadRequest, "malformed request: "+err.Error())
	}
	if req.V != ProtocolVersion {
		return fail(CodeBadRequest, fmt.Sprintf("unsupported control protocol version %d (this tcpincd speaks version %d); use tcpinc and tcpincd from the same release", req.V, ProtocolVersion))
	}
	switch req.Method {
	case MethodEnable, MethodDisable, MethodReload:
		if !s.peer.Admin {
			return fail(CodePermission, s.acc.permissionError(req.Method))
		}
		s.log.Info("control: "+req.Method, "uid", s.peer.UID, "pid", s.peer.PID)
	}
	var result any
	var err error
	switch req.Method {
	case MethodStatus:
		result, err = s.h.Status()
	case MethodVersion:
		result = VersionReply{Version: version.String(), Protocol: ProtocolVersion, OS: runtime.GOOS, Arch: runtime.GOARCH}
	case MethodCounters:
		ch, ok := s.h.(CountersHandler)
		if !ok {
			return fail(CodeFailed, notSupported(req.Method))
		}
		var m map[string]uint64
		m, err = ch.Counters()
		if m == nil {
			m = map[string]uint64{}
		}
		result = m
	case MethodConns:
		var cs []ConnJSON
		cs, err = s.h.Conns()
		if cs == nil {
			cs = []ConnJSON{}
		}
		result = cs
	case MethodLookup:
		var p LookupParams
		if perr := json.Unmarshal(req.Params, &p); perr != nil || len(req.Params) == 0 {
			return fail(CodeBadRequest, `lookup needs params {"local":"ADDR:PORT","remote":"ADDR:PORT"}`)
		}
		for _, a := range []string{p.Local, p.Remote} {
			if _, perr := netip.ParseAddrPort(a); perr != nil {
				return fail(CodeBadRequest, fmt.Sprintf("lookup: %q is not an address:port (IPv6 as [addr]:port)", a))
			}
		}
		lh, ok := s.h.(LookupHandler)
		if !ok {
			return fail(CodeFailed, notSupported(req.Method))
		}
		result, err = lh.Lookup(p)
	case MethodMetrics:
		mh, ok := s.h.(MetricsHandler)
		if !ok {
			return fail(CodeFailed, notSupported(req.Method))
		}
		var text string
		text, err = mh.Metrics()
		result = text
	case MethodEnable, MethodDisable:
		ch, ok := s.h.(ControlHandler)
		if !ok {
			return fail(CodeFailed, notSupported(req.Method))
		}
		on := req.Method == MethodEnable
		err = ch.SetEnabled(on)
		result = EnabledReply{Enabled: on}
	case MethodReload:
		ch, ok := s.h.(ControlHandler)
		if !ok {
			return fail(CodeFailed, notSupported(req.Method))
		}
		result, err = ch.Reload()
	default:
		return fail(CodeBadRequest, fmt.Sprintf("unknown method %q", req.Method))
	}
	if err != nil {
		return fail(CodeFailed, err.Error())
	}
	raw, err := json.Marshal(result)
	if err != nil {
		return fail(CodeFailed, "encoding the reply: "+err.Error())
	}
	resp.OK, resp.Result = true, raw
	return resp
}

func notSupported(method string) string {
	return fmt.Sprintf("%s is not supported by this tcpincd", method)
}

var errLineTooLong = errors.New("line too long")

// readLine reads one newline-terminated line of at most max bytes.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > max {
			return nil, errLineTooLong
		}
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

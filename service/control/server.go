package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Listen creates the control socket at path with mode SocketMode, making
// its directory (mode 0755) if needed. A socket file left by a daemon that
// is gone is replaced; if a daemon still answers there, Listen fails
// rather than steal its socket. Closing the returned listener removes the
// socket file.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating the control socket's directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket; remove it or choose another path with --control", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("another tcpincd is already running and listening on %s; stop it first, or choose another path with --control", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale control socket: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listening on the control socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, SocketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("setting the control socket's mode: %w", err)
	}
	return ln, nil
}

// Serve answers control requests on ln with h until ctx ends, then closes
// ln, waits for the connections it is serving, and returns nil. It
// returns an error if accepting fails for another reason.
func Serve(ctx context.Context, ln net.Listener, h Handler) error {
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
			serveConn(ctx, c, h)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
		})
	}
}

// idleTimeout closes connections that send nothing for this long.
const idleTimeout = time.Minute

func serveConn(ctx context.Context, c net.Conn, h Handler) {
	r := bufio.NewReaderSize(c, 4096)
	enc := json.NewEncoder(c)
	for ctx.Err() == nil {
		c.SetReadDeadline(time.Now().Add(idleTimeout))
		line, err := readLine(r, maxRequestLine)
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				c.SetWriteDeadline(time.Now().Add(ioTimeout))
				enc.Encode(Response{V: ProtocolVersion, Error: "request too long"})
			}
			return
		}
		resp := handle(line, h)
		c.SetWriteDeadline(time.Now().Add(ioTimeout))
		if err := enc.Encode(resp); err != nil {
			return
		}
	}
}

func handle(line []byte, h Handler) (resp Response) {
	resp.V = ProtocolVersion
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		resp.Error = "malformed request: " + err.Error()
		return resp
	}
	if req.V != ProtocolVersion {
		resp.Error = fmt.Sprintf("unsupported control protocol version %d (this tcpincd speaks version %d); use tcpinc and tcpincd from the same release", req.V, ProtocolVersion)
		return resp
	}
	var result any
	var err error
	switch req.Method {
	case MethodStatus:
		result, err = h.Status()
	case MethodConns:
		var cs []ConnJSON
		cs, err = h.Conns()
		if cs == nil {
			cs = []ConnJSON{}
		}
		result = cs
	default:
		resp.Error = fmt.Sprintf("unknown method %q", req.Method)
		return resp
	}
	if err != nil {
		resp.Error = err.Error()
		return resp
	}
	raw, err := json.Marshal(result)
	if err != nil {
		resp.Error = "encoding the reply: " + err.Error()
		return resp
	}
	resp.OK, resp.Result = true, raw
	return resp
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

package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"syscall"
	"time"
)

// maxResponseLine bounds a response line (a conns reply with a large table
// is a few hundred bytes per connection).
const maxResponseLine = 256 << 20

// UnreachableError is returned by Dial when no tcpincd listens at Path.
type UnreachableError struct {
	Path string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach tcpincd at %s: is it running? (start it with: tcpincd run)", e.Path)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Client is a connection to tcpincd's control socket. Its methods must not
// be called concurrently.
type Client struct {
	c net.Conn
	r *bufio.Reader
}

// Dial connects to the control socket at path. If nothing listens there
// the error is an *UnreachableError.
func Dial(path string) (*Client, error) {
	c, err := net.DialTimeout("unix", path, ioTimeout)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			return nil, &UnreachableError{Path: path, Err: err}
		case errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("permission denied on %s: run as root, or as a member of the socket's group", path)
		}
		return nil, fmt.Errorf("connecting to tcpincd at %s: %w", path, err)
	}
	return &Client{c: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

// Close closes the connection.
func (cl *Client) Close() error { return cl.c.Close() }

// Status asks for the daemon's status.
func (cl *Client) Status() (*StatusReply, error) {
	var st StatusReply
	if err := cl.call(MethodStatus, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Conns asks for the connections the daemon tracks.
func (cl *Client) Conns() ([]ConnJSON, error) {
	var cs []ConnJSON
	if err := cl.call(MethodConns, &cs); err != nil {
		return nil, err
	}
	return cs, nil
}

func (cl *Client) call(method string, result any) error {
	req, err := json.Marshal(Request{V: ProtocolVersion, Method: method})
	if err != nil {
		return err
	}
	cl.c.SetDeadline(time.Now().Add(ioTimeout))
	defer cl.c.SetDeadline(time.Time{})
	if _, err := cl.c.Write(append(req, '\n')); err != nil {
		return fmt.Errorf("sending %s request to tcpincd: %w", method, err)
	}
	line, err := readLine(cl.r, maxResponseLine)
	if err != nil {
		return fmt.Errorf("reading tcpincd's %s reply: %w", method, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return fmt.Errorf("malformed %s reply from tcpincd: %w", method, err)
	}
	if !resp.OK {
		if resp.Error == "" {
			resp.Error = "request failed"
		}
		return fmt.Errorf("tcpincd: %s", resp.Error)
	}
	if resp.V != ProtocolVersion {
		return fmt.Errorf("tcpincd replied with control protocol version %d, this tcpinc speaks %d; use tcpinc and tcpincd from the same release", resp.V, ProtocolVersion)
	}
	if err := json.Unmarshal(resp.Result, result); err != nil {
		return fmt.Errorf("malformed %s reply from tcpincd: %w", method, err)
	}
	return nil
}

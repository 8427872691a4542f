package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
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
	return fmt.Sprintf("cannot reach tcpincd at %s: is it running? (start it with 'tcpincd start', or 'tcpincd run' in the foreground)", e.Path)
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
	c, err := dialConn(path, ioTimeout)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist), isRefused(err):
			return nil, &UnreachableError{Path: path, Err: err}
		case errors.Is(err, fs.ErrPermission):
			who := "run as root, or as a member of the socket's group"
			if windowsAccess {
				who = "run from an elevated (administrator) prompt (control.private is set)"
			}
			return nil, &Error{Code: CodePermission, Msg: fmt.Sprintf("permission denied on %s: %s", path, who)}
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
	if err := cl.call(MethodStatus, nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Conns asks for the connections the daemon tracks.
func (cl *Client) Conns() ([]ConnJSON, error) {
	var cs []ConnJSON
	if err := cl.call(MethodConns, nil, &cs); err != nil {
		return nil, err
	}
	return cs, nil
}

// Version asks for the daemon's version.
func (cl *Client) Version() (*VersionReply, error) {
	var v VersionReply
	if err := cl.call(MethodVersion, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Counters asks for the daemon's counters.
func (cl *Client) Counters() (map[string]uint64, error) {
	var m map[string]uint64
	if err := cl.call(MethodCounters, nil, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// Lookup asks for the tcpinc API answers about the connection between
// local and remote (as the daemon's host sees them).
func (cl *Client) Lookup(local, remote netip.AddrPort) (*LookupReply, error) {
	var r LookupReply
	if err := cl.call(MethodLookup, LookupParams{Local: local.String(), Remote: remote.String()}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Metrics asks for the Prometheus text exposition.
func (cl *Client) Metrics() (string, error) {
	var text string
	if err := cl.call(MethodMetrics, nil, &text); err != nil {
		return "", err
	}
	return text, nil
}

// SetEnabled turns encryption of new connections on or off (tcpinc up,
// tcpinc down). Connections already encrypted stay encrypted. Only an
// administrator may: others get an *Error with Code CodePermission.
func (cl *Client) SetEnabled(on bool) error {
	method := MethodDisable
	if on {
		method = MethodEnable
	}
	var r EnabledReply
	return cl.call(method, nil, &r)
}

// Reload makes the daemon read its configuration file again. Only an
// administrator may.
func (cl *Client) Reload() (*ReloadReply, error) {
	var r ReloadReply
	if err := cl.call(MethodReload, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Error is a request the daemon refused or failed.
type Error struct {
	Code string // CodeBadRequest, CodePermission, CodeFailed
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// IsPermission reports whether err is a refusal for lack of privilege.
func IsPermission(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == CodePermission
}

func (cl *Client) call(method string, params, result any) error {
	req := Request{V: ProtocolVersion, Method: method}
	if params != nil {
		p, err := json.Marshal(params)
		if err != nil {
			return err
		}
		req.Params = p
	}
	line, err := json.Marshal(req)
	if err != nil {
		return err
	}
	cl.c.SetDeadline(time.Now().Add(ioTimeout))
	defer cl.c.SetDeadline(time.Time{})
	if _, err := cl.c.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("sending %s request to tcpincd: %w", method, err)
	}
	line, err = readLine(cl.r, maxResponseLine)
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
		if resp.Code == "" {
			resp.Code = CodeFailed
		}
		return &Error{Code: resp.Code, Msg: "tcpincd: " + resp.Error}
	}
	if resp.V != ProtocolVersion {
		return fmt.Errorf("tcpincd replied with control protocol version %d, this tcpinc speaks %d; use tcpinc and tcpincd from the same release", resp.V, ProtocolVersion)
	}
	if err := json.Unmarshal(resp.Result, result); err != nil {
		return fmt.Errorf("malformed %s reply from tcpincd: %w", method, err)
	}
	return nil
}

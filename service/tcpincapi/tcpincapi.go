// Package tcpincapi gives applications the per-connection answers of the
// tcpinc API (draft-ietf-tcpinc-api-06) for connections that tcpincd
// encrypts: whether TCP-ENO is in effect, the session ID, the role, the
// negotiated TEP, the global suboptions and the AEAD. An application
// uses them to authenticate the connection itself, for example by
// comparing or signing the session ID (RFC 8547 §5.1, the "hooks for
// external authentication").
//
// tcpincd runs in user space, so the answers come from it over its
// control socket rather than from getsockopt. Errors follow the draft:
// while TCP-ENO is still negotiated they match syscall.ENOTCONN (ask
// again), and where it is not in effect syscall.EINVAL; a missing session
// ID is never an empty success.
//
//	info, err := tcpincapi.QueryConn(conn)
//	if err != nil { ... }             // errors.Is(err, syscall.EINVAL): not encrypted
//	fmt.Printf("%x %v\n", info.SessionID, info.Role)
//
// Programs in other languages get the same with 'tcpinc sessid --json'
// (see docs/service.md).
package tcpincapi

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"tcpinc.dev/tcpinc/service/control"
)

// Role is the TCP-ENO role: TCP_ENO_ROLE.
type Role uint8

const (
	RoleA Role = 0 // normally the active opener
	RoleB Role = 1 // always the passive opener
)

func (r Role) String() string {
	if r == RoleB {
		return "B"
	}
	return "A"
}

// Info holds the answers for one encrypted connection.
type Info struct {
	// Local and Remote are the connection's addresses as this host sees
	// them.
	Local, Remote netip.AddrPort
	// SessionID is TCP_ENO_SESSID.
	SessionID []byte
	// Role is TCP_ENO_ROLE.
	Role Role
	// NegTEP is TCP_ENO_NEGTEP: the negotiated TEP byte, v bit
	// included; TEP is its registry name.
	NegTEP byte
	TEP    string
	// SelfGOpt and PeerGOpt are TCP_ENO_SELF_GOPT and TCP_ENO_PEER_GOPT.
	SelfGOpt, PeerGOpt byte
	// SelfName and PeerName are TCP_ENO_SELF_NAME and TCP_ENO_PEER_NAME:
	// a role byte followed by the session ID. One end's SelfName is the
	// other end's PeerName.
	SelfName, PeerName []byte
	// AEAD is TCP_CRYPT_CONF: the negotiated AEAD's id and name.
	AEADID uint16
	AEAD   string
	// AAMandatory is TCP_ENO_AA_MANDATORY as tcpincd applies it.
	AAMandatory bool
	// Resumed: the session was resumed (RFC 8548 §3.5).
	Resumed bool
	// Mode is the capture mode that handles the connection.
	Mode string
}

// Error is a connection without answers (yet). It matches
// syscall.ENOTCONN or syscall.EINVAL with errors.Is.
type Error struct {
	Local, Remote netip.AddrPort
	Errno         syscall.Errno
	// State is tcpincd's state for the connection ("negotiating",
	// "plain", "untracked", ...).
	State  string
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("tcpinc: %v %v: %s", e.Local, e.Remote, e.Reason)
}

// Is makes errors.Is(err, syscall.ENOTCONN) and syscall.EINVAL work.
func (e *Error) Is(target error) bool {
	errno, ok := target.(syscall.Errno)
	return ok && errno == e.Errno
}

// Client asks one tcpincd. The zero value asks the one at
// control.DefaultPath.
type Client struct {
	// Socket is tcpincd's control socket; "" means control.DefaultPath.
	Socket string
}

// Query returns the answers for the connection between local and remote.
func Query(local, remote netip.AddrPort) (*Info, error) {
	return (&Client{}).Query(local, remote)
}

// QueryConn returns the answers for a TCP connection.
func QueryConn(c net.Conn) (*Info, error) { return (&Client{}).QueryConn(c) }

// QueryRawConn returns the answers for a connected TCP socket, for
// programs that hold a syscall.RawConn (from SyscallConn) rather than a
// net.Conn.
func QueryRawConn(rc syscall.RawConn) (*Info, error) { return (&Client{}).QueryRawConn(rc) }

// QueryConn returns the answers for a TCP connection.
func (cl *Client) QueryConn(c net.Conn) (*Info, error) {
	l, lok := c.LocalAddr().(*net.TCPAddr)
	r, rok := c.RemoteAddr().(*net.TCPAddr)
	if !lok || !rok || l == nil || r == nil {
		return nil, fmt.Errorf("tcpinc: %T is not a TCP connection: %w", c, syscall.EINVAL)
	}
	return cl.Query(l.AddrPort(), r.AddrPort())
}

// QueryRawConn returns the answers for a connected TCP socket.
func (cl *Client) QueryRawConn(rc syscall.RawConn) (*Info, error) {
	local, remote, err := rawAddrs(rc)
	if err != nil {
		return nil, err
	}
	return cl.Query(local, remote)
}

// Query returns the answers for the connection between local and remote.
func (cl *Client) Query(local, remote netip.AddrPort) (*Info, error) {
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	path := cl.Socket
	if path == "" {
		path = control.DefaultPath
	}
	c, err := control.Dial(path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r, err := c.Lookup(local, remote)
	if err != nil {
		return nil, err
	}
	return fromReply(local, remote, r)
}

func fromReply(local, remote netip.AddrPort, r *control.LookupReply) (*Info, error) {
	switch r.Errno {
	case "":
	case control.ErrnoNotConn:
		return nil, &Error{Local: local, Remote: remote, Errno: syscall.ENOTCONN, State: r.State, Reason: r.Reason}
	default:
		return nil, &Error{Local: local, Remote: remote, Errno: syscall.EINVAL, State: r.State, Reason: r.Reason}
	}
	info := &Info{Local: local, Remote: remote, Role: Role(r.RoleBit & 1), NegTEP: r.NegTEP, TEP: r.TEP,
		SelfGOpt: r.SelfGOpt, PeerGOpt: r.PeerGOpt, AEADID: r.AEADID, AEAD: r.AEAD,
		AAMandatory: r.AAMandatory, Resumed: r.Resumed, Mode: r.Mode}
	var err error
	for _, f := range []struct {
		dst *[]byte
		s   string
	}{{&info.SessionID, r.SessionID}, {&info.SelfName, r.SelfName}, {&info.PeerName, r.PeerName}} {
		if *f.dst, err = hex.DecodeString(f.s); err != nil {
			return nil, fmt.Errorf("tcpinc: malformed answer from tcpincd: %w", err)
		}
	}
	if len(info.SessionID) == 0 {
		return nil, errors.New("tcpinc: tcpincd reported success without a session ID")
	}
	return info, nil
}

// Package control is the local control protocol between tcpincd and its
// clients (the tcpinc command, the tray icon, the tcpincapi package):
// newline-delimited JSON over a Unix socket (a named pipe on Windows,
// \\.\pipe\tcpinc).
//
// A client sends one request per line and reads one response line for each:
//
//	{"v":1,"method":"status"}
//	{"v":1,"ok":true,"result":{...}}
//
//	{"v":1,"method":"lookup","params":{"local":"10.0.0.1:5000","remote":"10.0.0.2:80"}}
//	{"v":1,"ok":true,"result":{...}}
//
// A failed request gets {"v":1,"ok":false,"code":"...","error":"..."}; the
// connection stays usable. "code" is machine-readable (see the Code
// constants). "v" is the protocol version: a server answers requests of a
// version it does not speak with an error that names both versions, so
// mismatched binaries say so instead of misreading each other. Fields may
// be added to requests and replies without a version change; both sides
// ignore fields they do not know.
//
// # Access
//
// Every local user may read (status, version, counters, conns, lookup,
// metrics): the same information ss(8) shows every user, plus session IDs,
// which are public by design (RFC 8547 §5.1). Only an administrator may
// change the daemon's state (enable, disable, reload). The server learns
// the caller's identity from the kernel (SO_PEERCRED on Linux,
// LOCAL_PEERCRED on macOS, the peer process's token on Windows), never
// from the request; see Access.
package control

import (
	"encoding/json"
	"time"
)

// ProtocolVersion is the version of the request/response envelope.
const ProtocolVersion = 1

// SocketMode is the permission of the socket file when every local user
// may read (Access.Private false). Connecting to a Unix socket needs write
// permission on the file, so read-only users need the w bits too; what a
// caller may do is decided per request from its credentials.
const SocketMode = 0o666

// PrivateSocketMode is the permission of the socket file when only root
// and the admin group may connect (Access.Private).
const PrivateSocketMode = 0o660

// Methods.
const (
	MethodStatus   = "status"
	MethodVersion  = "version"
	MethodCounters = "counters"
	MethodConns    = "conns"
	MethodLookup   = "lookup"
	MethodMetrics  = "metrics"
	MethodEnable   = "enable"  // admin only
	MethodDisable  = "disable" // admin only
	MethodReload   = "reload"  // admin only
)

// Error codes in Response.Code.
const (
	CodeBadRequest = "bad_request" // malformed, unknown method, bad params, version mismatch
	CodePermission = "permission"  // the caller may not do this
	CodeFailed     = "failed"      // the daemon could not do it
)

// maxRequestLine bounds a request line. Responses are bounded on the
// client side by maxResponseLine.
const maxRequestLine = 64 << 10

// ioTimeout bounds how long either side waits for the other mid-exchange.
const ioTimeout = 10 * time.Second

// Request is one line from client to server.
type Request struct {
	V      int             `json:"v"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
}

// Response is one line from server to client.
type Response struct {
	V      int             `json:"v"`
	OK     bool            `json:"ok"`
	Code   string          `json:"code,omitempty"`
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// StatusReply answers MethodStatus.
type StatusReply struct {
	// Version is tcpincd's version string.
	Version string `json:"version"`
	// Mode is the capture mode in use ("divert" or "redirect").
	Mode string `json:"mode"`
	// Running is true while packets are being captured.
	Running bool `json:"running"`
	// Enabled is true when new connections are offered encryption (tcpinc
	// up); false after tcpinc down or enabled = false in the config.
	Enabled bool `json:"enabled"`
	// Conns is the number of connections the backend tracks; Encrypted
	// and Plain count those in state "encrypted" and "plain" (the rest
	// are negotiating or closing).
	Conns     int `json:"conns"`
	Encrypted int `json:"encrypted"`
	Plain     int `json:"plain"`
	// Counters are the backend's and engines' counters, flattened into
	// snake_case names (see core.Flatten).
	Counters map[string]uint64 `json:"counters"`
	// Config is the configuration file in effect ("" when none was found
	// and the defaults apply).
	Config string `json:"config,omitempty"`
	// Since is when the daemon started capturing (RFC 3339).
	Since string `json:"since,omitempty"`
	// CaptureError, when not empty, says why the daemon does not
	// capture: it runs without capture (as a service does when, for
	// instance, the WinDivert driver cannot load) and tries again on
	// reload or up. Clients show it as "capture unavailable: " and it.
	CaptureError string `json:"capture_error,omitempty"`
}

// VersionReply answers MethodVersion.
type VersionReply struct {
	Version  string `json:"version"`  // tcpincd's version
	Protocol int    `json:"protocol"` // ProtocolVersion of the server
	OS       string `json:"os"`
	Arch     string `json:"arch"`
}

// ConnJSON describes one connection in a MethodConns reply.
type ConnJSON struct {
	// Mode is the capture mode that handles the connection.
	Mode   string `json:"mode,omitempty"`
	Local  string `json:"local"`
	Remote string `json:"remote"`
	// State: negotiating, key-exchange, encrypted, plain, closing.
	State string `json:"state"`
	// Role is the TCP-ENO role, "A" or "B".
	Role string `json:"role"`
	// TEP is the negotiated encryption protocol's name.
	TEP string `json:"tep"`
	// NegTEP is the negotiated TEP suboption byte, v bit included.
	NegTEP uint8 `json:"neg_tep"`
	// AEAD is the AEAD algorithm's name.
	AEAD string `json:"aead"`
	// SessionID is the tcpcrypt session ID in hex; empty until encrypted.
	SessionID string `json:"session_id"`
	Resumed   bool   `json:"resumed"`
	BytesOut  uint64 `json:"bytes_out"`
	BytesIn   uint64 `json:"bytes_in"`
	// PlainReason says why a plain connection is not encrypted.
	PlainReason string `json:"plain_reason,omitempty"`
}

// LookupParams are the parameters of MethodLookup: the connection's
// addresses as the host running tcpincd sees them.
type LookupParams struct {
	Local  string `json:"local"`
	Remote string `json:"remote"`
}

// Errno values of LookupReply, as the tcpinc API draft's getsockopt
// would return them for a read-only TCP_ENO_* option.
const (
	// ErrnoNotConn (ENOTCONN): ENO is still being negotiated; ask again.
	ErrnoNotConn = "ENOTCONN"
	// ErrnoInval (EINVAL): ENO is not in effect on this connection (the
	// peer does not speak it, it was excluded or disabled, or tcpincd
	// does not track the connection); there is no session ID.
	ErrnoInval = "EINVAL"
)

// LookupReply answers MethodLookup with the per-connection answers of the
// tcpinc API draft (draft-ietf-tcpinc-api-06 §4.1). The read-only options
// succeed only when State is "encrypted": otherwise Errno says which
// error getsockopt would return and the option fields are zero. A
// missing session ID is never reported as an empty success.
type LookupReply struct {
	Local  string `json:"local"`
	Remote string `json:"remote"`
	// Tracked is false when tcpincd does not know the connection.
	Tracked bool   `json:"tracked"`
	Mode    string `json:"mode,omitempty"`
	State   string `json:"state"`
	// Errno is "" on success, else ErrnoNotConn or ErrnoInval.
	Errno string `json:"errno,omitempty"`
	// Reason explains Errno in words.
	Reason string `json:"reason,omitempty"`
	// ENOEnabled: TCP-ENO succeeded and the connection is encrypted
	// (the effective value of TCP_ENO_ENABLED).
	ENOEnabled bool `json:"eno_enabled"`
	// SessionID is TCP_ENO_SESSID, in hex.
	SessionID string `json:"session_id,omitempty"`
	// Role is TCP_ENO_ROLE: "A" (0) or "B" (1); RoleBit is the number.
	Role    string `json:"role,omitempty"`
	RoleBit int    `json:"role_bit"`
	// NegTEP is TCP_ENO_NEGTEP: the negotiated TEP byte, v bit included;
	// TEP is its name.
	NegTEP uint8  `json:"neg_tep"`
	TEP    string `json:"tep,omitempty"`
	// SelfGOpt and PeerGOpt are TCP_ENO_SELF_GOPT and TCP_ENO_PEER_GOPT.
	SelfGOpt uint8 `json:"self_gopt"`
	PeerGOpt uint8 `json:"peer_gopt"`
	// SelfName and PeerName are TCP_ENO_SELF_NAME and TCP_ENO_PEER_NAME
	// in hex: the role byte (negated for the peer) followed by the
	// session ID.
	SelfName string `json:"self_name,omitempty"`
	PeerName string `json:"peer_name,omitempty"`
	// AEAD is TCP_CRYPT_CONF: the negotiated AEAD's name and id.
	AEAD   string `json:"aead,omitempty"`
	AEADID uint16 `json:"aead_id"`
	// AAMandatory is TCP_ENO_AA_MANDATORY as tcpincd applies it.
	AAMandatory bool `json:"aa_mandatory"`
	Resumed     bool `json:"resumed"`
}

// ReloadReply answers MethodReload.
type ReloadReply struct {
	// Config is the file that was read ("" when none exists and the
	// defaults apply).
	Config string `json:"config"`
	// Applied lists the keys whose new values took effect.
	Applied []string `json:"applied"`
	// NeedRestart lists changed keys that take effect only when tcpincd
	// restarts (mode, queue settings, the control socket).
	NeedRestart []string `json:"need_restart,omitempty"`
}

// EnabledReply answers MethodEnable and MethodDisable.
type EnabledReply struct {
	Enabled bool `json:"enabled"`
}

// Handler supplies the answers of a server. Its methods are called from
// the server's connection goroutines, possibly concurrently. A handler
// may implement any of the optional interfaces below; the server answers
// the methods of those it lacks with "not supported by this tcpincd".
type Handler interface {
	Status() (StatusReply, error)
	Conns() ([]ConnJSON, error)
}

// CountersHandler answers MethodCounters.
type CountersHandler interface {
	Counters() (map[string]uint64, error)
}

// LookupHandler answers MethodLookup.
type LookupHandler interface {
	Lookup(LookupParams) (LookupReply, error)
}

// MetricsHandler answers MethodMetrics with the Prometheus text
// exposition (format 0.0.4).
type MetricsHandler interface {
	Metrics() (string, error)
}

// ControlHandler changes the daemon's state. The server checks the
// caller's permission before calling its methods.
type ControlHandler interface {
	SetEnabled(on bool) error
	Reload() (ReloadReply, error)
}

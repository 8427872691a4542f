// Package control is the local control protocol between tcpincd and the
// tcpinc command: newline-delimited JSON over a Unix socket.
//
// A client sends one request per line and reads one response line for each:
//
//	{"v":1,"method":"status"}
//	{"v":1,"ok":true,"result":{...}}
//
//	{"v":1,"method":"conns"}
//	{"v":1,"ok":true,"result":[{...}, ...]}
//
// A failed request gets {"v":1,"ok":false,"error":"..."}; the connection
// stays usable. "v" is the protocol version: a server answers requests of a
// version it does not speak with an error that names both versions, so
// mismatched tcpinc and tcpincd binaries say so instead of misreading each
// other. Fields may be added to replies without a version change; clients
// ignore fields they do not know.
//
// Access is controlled by the socket file's mode (0660): root and the
// socket's group may ask.
package control

import (
	"encoding/json"
	"time"
)

// ProtocolVersion is the version of the request/response envelope.
const ProtocolVersion = 1

// DefaultPath is where tcpincd listens unless told otherwise.
const DefaultPath = "/run/tcpinc/tcpincd.sock"

// SocketMode is the permission of the socket file.
const SocketMode = 0o660

// Methods.
const (
	MethodStatus = "status"
	MethodConns  = "conns"
)

// maxLine bounds a request or response line. Responses for very large
// connection tables may exceed it on the client side; see Client.
const maxRequestLine = 64 << 10

// ioTimeout bounds how long either side waits for the other mid-exchange.
const ioTimeout = 10 * time.Second

// Request is one line from client to server.
type Request struct {
	V      int    `json:"v"`
	Method string `json:"method"`
}

// Response is one line from server to client.
type Response struct {
	V      int             `json:"v"`
	OK     bool            `json:"ok"`
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// StatusReply answers MethodStatus.
type StatusReply struct {
	// Version is tcpincd's version string.
	Version string `json:"version"`
	// Mode is the capture mode in use ("divert").
	Mode string `json:"mode"`
	// Running is true while packets are being captured.
	Running bool `json:"running"`
	// Counters are the backend's and engines' counters, flattened into
	// snake_case names (see Flatten).
	Counters map[string]uint64 `json:"counters"`
	// Conns is the number of connections the engines track.
	Conns int `json:"conns"`
}

// ConnJSON describes one connection in a MethodConns reply.
type ConnJSON struct {
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

// Handler supplies the answers of a server. Its methods are called from
// the server's connection goroutines, possibly concurrently.
type Handler interface {
	Status() (StatusReply, error)
	Conns() ([]ConnJSON, error)
}

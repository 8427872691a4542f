package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/core/divert"
	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

var pipeSeq atomic.Uint64

type fakeHandler struct {
	status StatusReply
	conns  []ConnJSON
	err    error
}

func (f *fakeHandler) Status() (StatusReply, error) { return f.status, f.err }
func (f *fakeHandler) Conns() ([]ConnJSON, error)   { return f.conns, f.err }

// sockPath returns a short socket path: sun_path holds about 100 bytes,
// and t.TempDir can be longer than that.
func sockPath(t testing.TB) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		// A named pipe (listen_windows.go): unique per test.
		return fmt.Sprintf(`\\.\pipe\tcpinc-test-%d-%d`, os.Getpid(), pipeSeq.Add(1))
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "c.sock")
	if len(p) < 100 {
		return p
	}
	d, err := os.MkdirTemp("", "tci")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return filepath.Join(d, "c.sock")
}

func startServer(t *testing.T, path string, h Handler) (stop func()) {
	t.Helper()
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, h) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}

func TestStatusAndConns(t *testing.T) {
	path := sockPath(t)
	h := &fakeHandler{
		status: StatusReply{Version: "1.0", Mode: "divert", Running: true,
			Counters: map[string]uint64{"engine_conns_encrypted": 3}, Conns: 1},
		conns: []ConnJSON{{Local: "10.0.0.1:1234", Remote: "10.0.0.2:80", State: "encrypted",
			Role: "A", TEP: "TCPCRYPT_ECDHE_Curve25519", NegTEP: 0x22, AEAD: "AEAD_AES_128_GCM",
			SessionID: "0102", BytesOut: 5, BytesIn: 7}},
	}
	startServer(t, path, h)

	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != SocketMode {
			t.Errorf("socket mode %v, want %v", got, os.FileMode(SocketMode))
		}
	}

	cl, err := Dial(path)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer cl.Close()
	// Several requests on one connection.
	for range 2 {
		st, err := cl.Status()
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if st.Version != "1.0" || st.Mode != "divert" || !st.Running || st.Conns != 1 || st.Counters["engine_conns_encrypted"] != 3 {
			t.Errorf("Status = %+v", st)
		}
		cs, err := cl.Conns()
		if err != nil {
			t.Fatalf("Conns: %v", err)
		}
		if len(cs) != 1 || cs[0] != h.conns[0] {
			t.Errorf("Conns = %+v, want %+v", cs, h.conns)
		}
	}
}

func TestEmptyConnsIsArray(t *testing.T) {
	path := sockPath(t)
	startServer(t, path, &fakeHandler{})
	c, err := dialConn(path, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(`{"v":1,"method":"conns"}` + "\n"))
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		t.Fatal(err)
	}
	if !resp.OK || string(resp.Result) != "[]" {
		t.Errorf("response %+v, result %s; want ok with []", resp, resp.Result)
	}
}

func TestHandlerError(t *testing.T) {
	path := sockPath(t)
	startServer(t, path, &fakeHandler{err: errors.New("backend not running")})
	cl, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Status(); err == nil || !strings.Contains(err.Error(), "backend not running") {
		t.Errorf("Status error = %v, want the handler's", err)
	}
	// The connection stays usable after an error reply.
	if _, err := cl.Conns(); err == nil {
		t.Error("Conns: no error")
	}
}

func TestProtocolErrors(t *testing.T) {
	path := sockPath(t)
	startServer(t, path, &fakeHandler{})
	c, err := dialConn(path, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dec := json.NewDecoder(c)
	for _, tc := range []struct{ req, want string }{
		{`{"v":2,"method":"status"}`, "unsupported control protocol version 2"},
		{`{"v":1,"method":"reboot"}`, `unknown method "reboot"`},
		{`not json`, "malformed request"},
	} {
		c.Write([]byte(tc.req + "\n"))
		var resp Response
		if err := dec.Decode(&resp); err != nil {
			t.Fatalf("%s: %v", tc.req, err)
		}
		if resp.OK || resp.V != ProtocolVersion || !strings.Contains(resp.Error, tc.want) {
			t.Errorf("%s: response %+v, want error containing %q", tc.req, resp, tc.want)
		}
	}
	// An oversized request closes the connection after an error.
	c.Write([]byte(strings.Repeat("x", maxRequestLine+10) + "\n"))
	var resp Response
	if err := dec.Decode(&resp); err != nil || resp.Error != "request too long" {
		t.Errorf("oversized request: %+v, %v", resp, err)
	}
}

func TestDialUnreachable(t *testing.T) {
	path := sockPath(t)
	_, err := Dial(path)
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("Dial of absent socket: %v, want *UnreachableError", err)
	}
	want := "cannot reach tcpincd at " + path + ": is it running? (start it with 'tcpincd start', or 'tcpincd run' in the foreground)"
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}

	// A server that stopped removes its socket.
	stop := startServer(t, path, &fakeHandler{})
	stop()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after Serve returned: %v", err)
	}
	if _, err := Dial(path); !errors.As(err, &ue) {
		t.Errorf("Dial after stop: %v, want *UnreachableError", err)
	}
}

func TestListenStaleAndBusy(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("stale socket files behave differently on Windows")
	}
	path := sockPath(t)
	// A stale socket file (no listener) is replaced.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	startServer(t, path, &fakeHandler{})

	// A live one is not taken over.
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("Listen on a live socket: %v, want 'already running'", err)
	}

	// A regular file is not removed.
	file := filepath.Join(filepath.Dir(path), "f")
	os.WriteFile(file, nil, 0o600)
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen on a regular file: %v, want 'not a socket'", err)
	}
}

func TestFromConnInfo(t *testing.T) {
	ci := divert.ConnInfo{
		Local:     netip.MustParseAddrPort("10.231.9.1:40000"),
		Remote:    netip.MustParseAddrPort("[fd00::2]:8080"),
		State:     "encrypted",
		Role:      eno.RoleB,
		TEP:       eno.TEPTcpcryptCurve25519,
		NegTEP:    byte(eno.TEPTcpcryptCurve25519),
		AEAD:      tcpcrypt.AES128GCM,
		SessionID: []byte{0xde, 0xad, 0xbe, 0xef},
		Resumed:   true,
		BytesOut:  10,
		BytesIn:   20,
	}
	got := FromConnInfo(ci)
	want := ConnJSON{Local: "10.231.9.1:40000", Remote: "[fd00::2]:8080", State: "encrypted", Role: "B",
		TEP: "TCPCRYPT_ECDHE_Curve25519", NegTEP: byte(eno.TEPTcpcryptCurve25519), AEAD: "AEAD_AES_128_GCM",
		SessionID: "deadbeef", Resumed: true, BytesOut: 10, BytesIn: 20}
	if got != want {
		t.Errorf("FromConnInfo = %+v\nwant %+v", got, want)
	}
	plain := FromConnInfo(divert.ConnInfo{Local: ci.Local, Remote: ci.Remote, State: "plain", PlainReason: eno.Reason(1)})
	if plain.SessionID != "" || plain.TEP != "" || plain.AEAD != "" || plain.Role != "A" || plain.PlainReason == "" {
		t.Errorf("plain conn = %+v", plain)
	}
	b, _ := json.Marshal(got)
	for _, key := range []string{"local", "remote", "state", "role", "tep", "neg_tep", "aead", "session_id", "resumed", "bytes_out", "bytes_in"} {
		if !strings.Contains(string(b), `"`+key+`":`) {
			t.Errorf("JSON %s lacks %q", b, key)
		}
	}
}

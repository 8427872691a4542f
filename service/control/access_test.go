package control

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fullHandler implements every optional interface and records toggles.
type fullHandler struct {
	fakeHandler
	enabled  *bool
	reloaded int
}

func (f *fullHandler) Counters() (map[string]uint64, error) { return map[string]uint64{"a": 1}, nil }
func (f *fullHandler) Metrics() (string, error)             { return "tcpinc_up 1\n", nil }
func (f *fullHandler) Lookup(p LookupParams) (LookupReply, error) {
	return LookupReply{Local: p.Local, Remote: p.Remote, Tracked: true, State: "encrypted", SessionID: "ab"}, nil
}
func (f *fullHandler) SetEnabled(on bool) error { *f.enabled = on; return nil }
func (f *fullHandler) Reload() (ReloadReply, error) {
	f.reloaded++
	return ReloadReply{Applied: []string{"x"}}, nil
}

func TestIsAdmin(t *testing.T) {
	for _, tc := range []struct {
		uid   int
		gids  []int
		admin int
		want  bool
	}{
		{0, nil, -1, true},
		{1000, []int{1000}, -1, false},
		{1000, []int{1000, 27}, 27, true},
		{1000, []int{1000}, 27, false},
		{65534, nil, 27, false},
	} {
		if got := isAdmin(tc.uid, tc.gids, tc.admin); got != tc.want {
			t.Errorf("isAdmin(%d, %v, %d) = %v", tc.uid, tc.gids, tc.admin, got)
		}
	}
}

var listeners = map[string]*Listener{}

func lnOf(t *testing.T, path string) *Listener {
	t.Helper()
	ln := listeners[path]
	if ln == nil {
		t.Fatalf("no listener for %s", path)
	}
	return ln
}

// serveAs runs a server whose callers all look like peer.
func serveAs(t testing.TB, h Handler, peer Peer, acc access) string {
	t.Helper()
	path := sockPath(t)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ln.access = acc
	ln.peer = func(net.Conn, *access) (Peer, error) { return peer, nil }
	listeners[path] = ln
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Serve(ctx, ln, h); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return path
}

func TestNonAdminReadsButCannotControl(t *testing.T) {
	on := true
	h := &fullHandler{enabled: &on}
	acc := access{Access: Access{AdminGroup: "tcpinc"}, adminGID: 4242}
	path := serveAs(t, h, Peer{UID: 1000, PID: 1}, acc)
	cl, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Status(); err != nil {
		t.Errorf("Status as a user: %v", err)
	}
	if _, err := cl.Conns(); err != nil {
		t.Errorf("Conns as a user: %v", err)
	}
	if _, err := cl.Lookup(netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2")); err != nil {
		t.Errorf("Lookup as a user: %v", err)
	}
	if _, err := cl.Metrics(); err != nil {
		t.Errorf("Metrics as a user: %v", err)
	}
	err = cl.SetEnabled(false)
	wantMsg, wantRoot := "permission denied: disable changes tcpincd's state; run as root or as a member of group tcpinc", "; run as root"
	if runtime.GOOS == "windows" {
		wantMsg = "permission denied: disable changes tcpincd's state; run from an elevated (administrator) prompt"
		wantRoot = wantMsg
	}
	if !IsPermission(err) || !strings.Contains(err.Error(), wantMsg) {
		t.Errorf("SetEnabled as a user: %v", err)
	}
	if _, err := cl.Reload(); !IsPermission(err) {
		t.Errorf("Reload as a user: %v", err)
	}
	if !on || h.reloaded != 0 {
		t.Error("a user changed the daemon's state")
	}
	if st := lnOf(t, path).Stats(); st.Refused != 2 || st.Requests != 6 || st.Conns != 1 {
		t.Errorf("stats %+v; want 2 refused of 6 requests on 1 connection", st)
	}
	// Without an admin group the message says root only.
	path = serveAs(t, h, Peer{UID: 1000}, access{adminGID: -1})
	cl2, _ := Dial(path)
	defer cl2.Close()
	if err := cl2.SetEnabled(false); !IsPermission(err) || !strings.Contains(err.Error(), wantRoot) || strings.Contains(err.Error(), "group") {
		t.Errorf("SetEnabled without admin group: %v", err)
	}
}

func TestAdminControls(t *testing.T) {
	on := true
	h := &fullHandler{enabled: &on}
	path := serveAs(t, h, Peer{UID: 1000, Admin: true}, access{adminGID: 4242})
	cl, _ := Dial(path)
	defer cl.Close()
	if err := cl.SetEnabled(false); err != nil || on {
		t.Errorf("SetEnabled(false): %v, enabled %v", err, on)
	}
	if err := cl.SetEnabled(true); err != nil || !on {
		t.Errorf("SetEnabled(true): %v, enabled %v", err, on)
	}
	if r, err := cl.Reload(); err != nil || h.reloaded != 1 || len(r.Applied) != 1 {
		t.Errorf("Reload: %+v %v", r, err)
	}
}

func TestLookupParams(t *testing.T) {
	on := true
	path := serveAs(t, &fullHandler{enabled: &on}, Peer{UID: 0, Admin: true}, access{adminGID: -1})
	c, err := dialConn(path, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dec := json.NewDecoder(c)
	for _, tc := range []struct{ req, want string }{
		{`{"v":1,"method":"lookup"}`, "lookup needs params"},
		{`{"v":1,"method":"lookup","params":[]}`, "lookup needs params"},
		{`{"v":1,"method":"lookup","params":{"local":"10.0.0.1","remote":"10.0.0.2:80"}}`, `"10.0.0.1" is not an address:port`},
	} {
		c.Write([]byte(tc.req + "\n"))
		var resp Response
		if err := dec.Decode(&resp); err != nil {
			t.Fatal(err)
		}
		if resp.OK || resp.Code != CodeBadRequest || !strings.Contains(resp.Error, tc.want) {
			t.Errorf("%s: %+v", tc.req, resp)
		}
	}
	// Methods the handler lacks are answered, not dropped.
	path = serveAs(t, &fakeHandler{}, Peer{UID: 0, Admin: true}, access{adminGID: -1})
	cl, _ := Dial(path)
	defer cl.Close()
	if err := cl.SetEnabled(true); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("SetEnabled on a status-only handler: %v", err)
	}
}

// TestPeerCredAsNobody runs a client as the user nobody against a real
// server (real SO_PEERCRED): it may read but not control.
func TestPeerCredAsNobody(t *testing.T) {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("needs root on Linux to run a client as nobody")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (util-linux)")
	}
	if os.Getenv("TCIS_CLIENT") != "" {
		return
	}
	dir, err := os.MkdirTemp("", "tcis")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "c.sock")
	ln, err := Listen(path, Access{AdminGroup: "tcis-no-such-group"})
	if err != nil {
		t.Fatal(err)
	}
	on := true
	h := &fullHandler{enabled: &on}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Serve(ctx, ln, h); close(done) }()
	defer func() { cancel(); <-done }()

	// A copy of the test binary where nobody may run it.
	self, _ := os.Executable()
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	client := filepath.Join(dir, "client.test")
	if err := os.WriteFile(client, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", client, "-test.run=^TestClientHelper$")
	cmd.Env = append(os.Environ(), "TCIS_CLIENT="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as nobody: %v\n%s", err, out)
	}
	for _, want := range []string{"status ok", "toggle refused: tcpincd: permission denied: disable changes tcpincd's state; run as root"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("client output lacks %q:\n%s", want, out)
		}
	}
	if !on {
		t.Error("nobody disabled encryption")
	}
	// Root (this process) may.
	cl, _ := Dial(path)
	defer cl.Close()
	if err := cl.SetEnabled(false); err != nil || on {
		t.Errorf("root SetEnabled: %v", err)
	}
}

// TestClientHelper is the client TestPeerCredAsNobody runs as nobody.
func TestClientHelper(t *testing.T) {
	path := os.Getenv("TCIS_CLIENT")
	if path == "" {
		t.Skip("helper for TestPeerCredAsNobody")
	}
	cl, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Status(); err != nil {
		t.Fatalf("status: %v", err)
	}
	t.Log("status ok")
	os.Stdout.WriteString("status ok\n")
	err = cl.SetEnabled(false)
	if !IsPermission(err) {
		t.Fatalf("toggle not refused: %v", err)
	}
	os.Stdout.WriteString("toggle refused: " + err.Error() + "\n")
}

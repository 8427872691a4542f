package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tcpinc.dev/tcpinc/service/control"
	"tcpinc.dev/tcpinc/service/control/controltest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// fake answers like a daemon with three connections.
type fake struct {
	enabled bool
	down    int
}

func (f *fake) Status() (control.StatusReply, error) {
	return control.StatusReply{Version: "9.9 (abcdef)", Mode: "divert", Running: true, Enabled: f.enabled,
		Conns: 3, Encrypted: 1, Plain: 1, Since: "2026-11-26T08:00:00Z", Config: "/etc/tcpinc/tcpincd.toml",
		Counters: map[string]uint64{"engine_conns_encrypted": 1, "queued": 0, "engine_packets_inbound": 1234}}, nil
}

var sid = "230f4f71cfec54613b180a2b731307f3a5c1d2e3f405162738495a6b7c8d9eaf01"

func (f *fake) Conns() ([]control.ConnJSON, error) {
	return []control.ConnJSON{
		{Mode: "divert", Local: "10.0.0.1:5001", Remote: "10.0.0.3:22", State: "plain", Role: "A", PlainReason: "peer-no-eno"},
		{Mode: "divert", Local: "10.0.0.1:5000", Remote: "10.0.0.2:80", State: "encrypted", Role: "A",
			TEP: "TCPCRYPT_ECDHE_Curve25519", NegTEP: 0x23, AEAD: "AEAD_AES_128_GCM", SessionID: sid, BytesOut: 1536, BytesIn: 5 << 20},
		{Mode: "divert", Local: "[fd00::1]:6000", Remote: "[fd00::2]:443", State: "negotiating", Role: "A"},
	}, nil
}

func (f *fake) Counters() (map[string]uint64, error) { return map[string]uint64{"x": 1}, nil }
func (f *fake) Metrics() (string, error)             { return "tcpinc_up 1\n", nil }
func (f *fake) SetEnabled(on bool) error {
	f.enabled = on
	return nil
}
func (f *fake) Reload() (control.ReloadReply, error) {
	return control.ReloadReply{Config: "/etc/tcpinc/tcpincd.toml", Applied: []string{"exclude_ports"}, NeedRestart: []string{"mode"}}, nil
}
func (f *fake) Lookup(p control.LookupParams) (control.LookupReply, error) {
	r := control.LookupReply{Local: p.Local, Remote: p.Remote, Tracked: true, Mode: "divert"}
	switch p.Remote {
	case "10.0.0.2:80":
		r.State, r.ENOEnabled, r.SessionID, r.Role, r.NegTEP, r.TEP = "encrypted", true, sid, "A", 0x23, "TCPCRYPT_ECDHE_Curve25519"
		r.PeerGOpt, r.SelfName, r.PeerName, r.AEAD, r.AEADID = 1, "00"+sid, "01"+sid, "AEAD_AES_128_GCM", 1
	case "10.0.0.3:22":
		r.State, r.Errno, r.Reason = "plain", control.ErrnoInval, "TCP-ENO is not in effect on this connection: peer-no-eno"
	case "[fd00::2]:443":
		r.State, r.Errno, r.Reason = "negotiating", control.ErrnoNotConn, "TCP-ENO is still being negotiated"
	default:
		r.Tracked, r.State, r.Errno, r.Reason = false, "untracked", control.ErrnoInval, "tcpincd does not track this connection"
	}
	return r, nil
}

func shortDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "tcis")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func sock(t *testing.T, h control.Handler) string {
	path := controltest.SockPath(t)
	controltest.Serve(t, path, h)
	return path
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	rc := run(args, &out, &errb)
	return rc, out.String(), errb.String()
}

// golden compares got with testdata/golden/name (or rewrites it with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/tcpinc -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s--- want\n%s", name, got, want)
	}
}

func TestGolden(t *testing.T) {
	f := &fake{enabled: true}
	path := sock(t, f)
	for _, tc := range []struct {
		golden string
		args   []string
		rc     int
	}{
		{"status.txt", []string{"status"}, 0},
		{"conns.txt", []string{"conns"}, 0},
		{"conns.json", []string{"conns", "--json"}, 0},
		{"sessid.txt", []string{"sessid", "10.0.0.1:5000", "10.0.0.2:80"}, 0},
		{"sessid.json", []string{"sessid", "--json", "10.0.0.1:5000", "10.0.0.2:80"}, 0},
		{"sessid-plain.txt", []string{"sessid", "10.0.0.1:5001", "10.0.0.3:22"}, exitNoSession},
		{"sessid-plain.json", []string{"sessid", "10.0.0.1:5001", "10.0.0.3:22", "--json"}, exitNoSession},
		{"sessid-negotiating.txt", []string{"sessid", "[fd00::1]:6000", "[fd00::2]:443"}, exitNotYet},
		{"down.txt", []string{"down"}, 0},
		{"status-down.txt", []string{"status"}, 0},
		{"up.txt", []string{"up"}, 0},
		{"reload.txt", []string{"reload"}, 0},
		{"metrics.txt", []string{"metrics"}, 0},
		{"help.txt", []string{"--help"}, 0},
		{"help-status.txt", []string{"status", "--help"}, 0},
		{"help-conns.txt", []string{"conns", "--help"}, 0},
		{"help-sessid.txt", []string{"sessid", "--help"}, 0},
		{"help-up.txt", []string{"up", "--help"}, 0},
		{"help-down.txt", []string{"down", "--help"}, 0},
		{"help-reload.txt", []string{"reload", "--help"}, 0},
		{"help-metrics.txt", []string{"metrics", "--help"}, 0},
		{"help-version.txt", []string{"version", "--help"}, 0},
	} {
		rc, out, errs := runCLI(append([]string{"--control", path}, tc.args...)...)
		if rc != tc.rc {
			t.Errorf("%q: rc %d, want %d; stderr %q", tc.args, rc, tc.rc, errs)
		}
		if rc != 0 {
			out += "stderr: " + errs
		}
		golden(t, tc.golden, strings.ReplaceAll(out, path, "SOCKET"))
	}
}

func TestJSONParses(t *testing.T) {
	path := sock(t, &fake{enabled: true})
	rc, out, _ := runCLI("conns", "--json", "--control", path) // --control after the command
	var cs []control.ConnJSON
	if rc != 0 || json.Unmarshal([]byte(out), &cs) != nil || len(cs) != 3 || cs[0].SessionID != sid {
		t.Errorf("conns --json: rc %d, %s", rc, out)
	}
	rc, out, _ = runCLI("--control", path, "status", "--json")
	var st control.StatusReply
	if rc != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Version != "9.9 (abcdef)" || len(st.Counters) != 3 || !st.Enabled {
		t.Errorf("status --json: rc %d, %s", rc, out)
	}
	rc, out, _ = runCLI("--control", path, "version", "--json")
	var v struct {
		Tcpinc  string
		Tcpincd *control.VersionReply
	}
	if rc != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Tcpinc == "" || v.Tcpincd == nil || v.Tcpincd.Protocol != control.ProtocolVersion {
		t.Errorf("version --json: rc %d, %s", rc, out)
	}
	// TCPINC_CONTROL names the socket.
	t.Setenv("TCPINC_CONTROL", path)
	if rc, _, errs := runCLI("status"); rc != 0 {
		t.Errorf("status with TCPINC_CONTROL: rc %d %s", rc, errs)
	}
}

func TestNotRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.sock")
	for _, cmd := range []string{"status", "conns", "up", "down", "reload", "metrics"} {
		rc, _, errs := runCLI("--control", path, cmd)
		want := "cannot reach tcpincd at " + path + ": is it running?"
		if rc != exitNotRunning || !strings.Contains(errs, want) {
			t.Errorf("%s: rc %d, stderr %q", cmd, rc, errs)
		}
	}
	// version still works, and says so.
	rc, out, _ := runCLI("--control", path, "version")
	if rc != 0 || !strings.Contains(out, "tcpincd not running") {
		t.Errorf("version: rc %d, %q", rc, out)
	}
}

// TestPermissionExit: a refusal from the daemon gives exit status 4 and
// its message. (The refusal itself is tested in service/control.)
func TestPermissionExit(t *testing.T) {
	path := filepath.Join(shortDir(t), "c.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					c.Write([]byte(`{"v":1,"ok":false,"code":"permission","error":"permission denied: disable changes tcpincd's state; run as root or as a member of group tcpinc"}` + "\n"))
				}
			}()
		}
	}()
	rc, _, errs := runCLI("--control", path, "down")
	if rc != exitPermission || !strings.Contains(errs, "run as root or as a member of group tcpinc") {
		t.Errorf("down: rc %d, stderr %q", rc, errs)
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{nil, "no command given"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"status", "extra"}, `unexpected arguments "extra"`},
		{[]string{"conns", "--bogus"}, "flag provided but not defined"},
		{[]string{"sessid"}, "sessid needs LOCAL REMOTE"},
		{[]string{"sessid", "1.2.3.4:5"}, "unexpected arguments"},
		{[]string{"sessid", "1.2.3.4", "5.6.7.8:9"}, `"1.2.3.4" is not ADDR:PORT`},
		{[]string{"sessid", "--pid", "1"}, "--pid and --fd go together"},
		{[]string{"sessid", "--pid", "1", "--fd", "2", "1.2.3.4:5", "1.2.3.4:6"}, "not both"},
		{[]string{"up", "now"}, "unexpected arguments"},
	} {
		rc, _, errs := runCLI(tc.args...)
		if rc != 2 || !strings.Contains(errs, tc.msg) {
			t.Errorf("%q: rc %d, stderr %q", tc.args, rc, errs)
		}
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[uint64]string{0: "0B", 1023: "1023B", 1024: "1.0K", 1536: "1.5K", 5 << 20: "5.0M", 3 << 30: "3.0G"} {
		if got := size(n); got != want {
			t.Errorf("size(%d) = %q, want %q", n, got, want)
		}
	}
}

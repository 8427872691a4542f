package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tcpinc.dev/tcpinc/service/control"
)

type fake struct{}

func (fake) Status() (control.StatusReply, error) {
	return control.StatusReply{Version: "9.9", Mode: "divert", Running: true, Conns: 1,
		Counters: map[string]uint64{"engine_conns_encrypted": 1, "queued": 0}}, nil
}

func (fake) Conns() ([]control.ConnJSON, error) {
	return []control.ConnJSON{{Local: "10.0.0.1:5000", Remote: "10.0.0.2:80", State: "encrypted", Role: "A",
		TEP: "TCPCRYPT_ECDHE_Curve25519", AEAD: "AEAD_AES_128_GCM",
		SessionID: "230f4f71cfec54613b180a2b731307f3a5"}}, nil
}

func sock(t *testing.T) string {
	d, err := os.MkdirTemp("", "tcpinc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	path := filepath.Join(d, "c.sock")
	ln, err := control.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { control.Serve(ctx, ln, fake{}); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return path
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	rc := run(args, &out, &errb)
	return rc, out.String(), errb.String()
}

func TestConnsTableAndJSON(t *testing.T) {
	path := sock(t)
	rc, out, errs := runCLI("--control", path, "conns")
	if rc != 0 {
		t.Fatalf("conns: rc %d, stderr %s", rc, errs)
	}
	for _, want := range []string{"LOCAL", "SESSION-ID", "10.0.0.1:5000", "encrypted", "230f4f71cfec5461…"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// --control after the command works too.
	rc, out, _ = runCLI("conns", "--json", "--control", path)
	var cs []control.ConnJSON
	if rc != 0 || json.Unmarshal([]byte(out), &cs) != nil || len(cs) != 1 || cs[0].SessionID != "230f4f71cfec54613b180a2b731307f3a5" {
		t.Errorf("conns --json: rc %d, %s", rc, out)
	}
}

func TestStatus(t *testing.T) {
	path := sock(t)
	rc, out, _ := runCLI("--control", path, "status")
	if rc != 0 || !strings.Contains(out, "running") || !strings.Contains(out, "engine_conns_encrypted") || strings.Contains(out, "queued") {
		t.Errorf("status: rc %d:\n%s", rc, out)
	}
	rc, out, _ = runCLI("--control", path, "status", "--json")
	var st control.StatusReply
	if rc != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Version != "9.9" || len(st.Counters) != 2 {
		t.Errorf("status --json: rc %d, %s", rc, out)
	}
}

func TestNotRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.sock")
	for _, cmd := range []string{"status", "conns"} {
		rc, _, errs := runCLI("--control", path, cmd)
		want := "cannot reach tcpincd at " + path + ": is it running?"
		if rc != 1 || !strings.Contains(errs, want) {
			t.Errorf("%s: rc %d, stderr %q", cmd, rc, errs)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		rc   int
		out  string
	}{
		{[]string{"--help"}, 0, "Usage: tcpinc"},
		{[]string{"conns", "--help"}, 0, "--json"},
		{[]string{"status", "-h"}, 0, "--control"},
		{[]string{}, 2, ""},
		{[]string{"frobnicate"}, 2, ""},
		{[]string{"conns", "extra"}, 2, ""},
		{[]string{"--bogus", "status"}, 2, ""},
		{[]string{"version"}, 0, "tcpinc "},
	} {
		rc, out, errs := runCLI(tc.args...)
		if rc != tc.rc || !strings.Contains(out, tc.out) {
			t.Errorf("%q: rc %d (want %d), stdout %q, stderr %q", tc.args, rc, tc.rc, out, errs)
		}
		if rc == 2 && !strings.Contains(errs, "tcpinc --help") {
			t.Errorf("%q: usage error without a hint: %q", tc.args, errs)
		}
	}
}

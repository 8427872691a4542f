package main

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"tcpinc.dev/tcpinc/service/config"
)

// TestMain lets tests run the test binary as tcpincd itself (kardianos
// installs os.Executable()).
func TestMain(m *testing.M) {
	if os.Getenv("TCPINCD_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestParseRun(t *testing.T) {
	o, err := parseRun([]string{"--mode", "divert", "--control", "/tmp/x.sock", "--queue", "7", "--queues", "2",
		"--exclude-port", "22", "--exclude-port", "53,443", "--exclude-addr", "10.0.0.0/8", "--exclude-addr", "fd00::1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.mode != "divert" || o.control != "/tmp/x.sock" || o.queue != 7 || o.queues != 2 {
		t.Errorf("options %+v", o)
	}
	if !slices.Equal(o.excludePorts, []uint16{22, 53, 443}) {
		t.Errorf("exclude ports %v", o.excludePorts)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::1/128")}
	if !slices.Equal(o.excludeAddrs, want) {
		t.Errorf("exclude addrs %v", o.excludeAddrs)
	}
}

func TestFlagsOverrideConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.toml")
	os.WriteFile(file, []byte("mode = \"redirect\"\nexclude_ports = [22]\n[control]\nsocket = \"/tmp/from-file.sock\"\n[queue]\nfirst = 5\n"), 0o644)

	o, err := parseRun([]string{"--config", file, "--exclude-port", "53"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, found, err := effectiveConfig(o)
	if err != nil || !found {
		t.Fatal(err, found)
	}
	// Flags not given leave the file's values.
	if cfg.Mode != "redirect" || cfg.Control.Socket != "/tmp/from-file.sock" || cfg.Queue != 5 || !slices.Equal(cfg.ExcludePorts, []uint16{22, 53}) {
		t.Errorf("config %+v", cfg)
	}
	o, _ = parseRun([]string{"--config", file, "--mode", "divert", "--control", "/tmp/flag.sock", "--queue", "9"}, nil)
	cfg, _, _ = effectiveConfig(o)
	if cfg.Mode != "divert" || cfg.Control.Socket != "/tmp/flag.sock" || cfg.Queue != 9 {
		t.Errorf("flags did not override: %+v", cfg)
	}
	o, _ = parseRun([]string{"--config", file, "--queue", "65535", "--queues", "1"}, nil)
	if _, _, err := effectiveConfig(o); err != nil {
		t.Errorf("queue 65535: %v", err)
	}
}

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("mode = \"fast\"\n"), 0o644)
	for _, tc := range []struct {
		args []string
		rc   int
		msg  string
	}{
		{[]string{"--help"}, 0, "Usage: tcpincd"},
		{[]string{"run", "--help"}, 0, "--exclude-port"},
		{[]string{"install", "--help"}, 0, "--config"},
		{[]string{"status", "--help"}, 0, "3 installed but not running"},
		{[]string{"version"}, 0, "tcpincd "},
		{[]string{"--print-default-config"}, 0, "[control]"},
		{[]string{"--print-default-config", "x"}, 2, "no arguments"},
		{[]string{}, 2, "Usage"},
		{[]string{"begin"}, 2, `unknown command "begin"`},
		{[]string{"start", "now"}, 2, "no arguments"},
		{[]string{"run", "--mode", "magic"}, 2, "invalid --mode"},
		{[]string{"run", "--queues", "0"}, 2, "invalid --queues"},
		{[]string{"run", "--exclude-port", "0"}, 2, "not a port number"},
		{[]string{"run", "--exclude-addr", "nope"}, 2, "not an address"},
		{[]string{"run", "--queue", "70000"}, 2, "queue number"},
		{[]string{"run", "extra"}, 2, "no arguments"},
		{[]string{"run", "--config", bad}, exitConfig, `mode: "fast" is not allowed; use one of: auto, divert, redirect`},
		{[]string{"run", "--config", filepath.Join(dir, "missing.toml")}, exitConfig, "missing.toml"},
		{[]string{"install", "--config", bad}, exitConfig, `mode: "fast" is not allowed`},
	} {
		var out, errb bytes.Buffer
		rc := run(tc.args, &out, &errb)
		if rc != tc.rc || !strings.Contains(out.String()+errb.String(), tc.msg) {
			t.Errorf("%q: rc %d (want %d), stdout %q, stderr %q", tc.args, rc, tc.rc, out.String(), errb.String())
		}
	}
}

func TestPrintDefaultConfig(t *testing.T) {
	var out bytes.Buffer
	run([]string{"--print-default-config"}, &out, &out)
	c, err := config.Parse(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if d := config.Default(); c.Mode != d.Mode || c.Control != d.Control {
		t.Errorf("printed config parses to %+v", c)
	}
}

// TestDocsShowDefaultConfig keeps the configuration reference in
// docs/service.md equal to what --print-default-config prints.
func TestDocsShowDefaultConfig(t *testing.T) {
	doc, err := os.ReadFile("../../docs/service.md")
	if err != nil {
		t.Skip("docs/service.md not found")
	}
	if !strings.Contains(string(doc), "```toml\n"+config.DefaultFile()+"```") {
		t.Error("docs/service.md does not show the current default configuration; paste 'tcpincd --print-default-config' into it")
	}
}

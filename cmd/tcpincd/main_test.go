package main

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

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

func TestRunExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		rc   int
		msg  string
	}{
		{[]string{"--help"}, 0, "Usage: tcpincd"},
		{[]string{"run", "--help"}, 0, "--exclude-port"},
		{[]string{"version"}, 0, "tcpincd "},
		{[]string{}, 2, "Usage"},
		{[]string{"start"}, 2, `unknown command "start"`},
		{[]string{"run", "--mode", "magic"}, 2, "invalid --mode"},
		{[]string{"run", "--queues", "0"}, 2, "invalid --queues"},
		{[]string{"run", "--exclude-port", "0"}, 2, "not a port number"},
		{[]string{"run", "--exclude-addr", "nope"}, 2, "not an address"},
		{[]string{"run", "--queue", "70000"}, 2, "queue number"},
		{[]string{"run", "extra"}, 2, "no arguments"},
		{[]string{"run", "--mode", "redirect"}, 1, "redirect is not implemented yet"},
	} {
		var out, errb bytes.Buffer
		rc := run(tc.args, &out, &errb)
		if rc != tc.rc || !strings.Contains(out.String()+errb.String(), tc.msg) {
			t.Errorf("%q: rc %d (want %d), stdout %q, stderr %q", tc.args, rc, tc.rc, out.String(), errb.String())
		}
	}
}

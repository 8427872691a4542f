package config

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

func TestDefaultFileParsesToDefault(t *testing.T) {
	got, err := Parse([]byte(DefaultFile()))
	if err != nil {
		t.Fatalf("default file: %v", err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("default file parses to\n%+v\nwant\n%+v", got, want)
	}
	if !strings.Contains(DefaultFile(), DefaultPath) {
		t.Error("default file does not name the default path")
	}
}

func TestEmptyIsDefault(t *testing.T) {
	got, err := Parse(nil)
	if err != nil || !reflect.DeepEqual(got, Default()) {
		t.Errorf("empty file: %+v, %v", got, err)
	}
}

func TestParseAll(t *testing.T) {
	src := `
enabled = false
mode = "divert"
exclude_ports = [22, 53, 22]
exclude_addrs = ["10.0.0.0/8", "192.0.2.7", "fd00::1:2/64", "::ffff:198.51.100.1"]
teps = ["p256", "TCPCRYPT_ECDHE_Curve25519"]
aeads = ["chacha20poly1305", "AEAD_AES_128_GCM"]
resumption = false
aa_mandatory = true
[control]
socket = "/tmp/x.sock"
group = "wheel"
private = true
[log]
level = "debug"
[queue]
first = 100
count = 4
[metrics]
listen = "[::1]:9712"
`
	c, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Enabled: false, Mode: "divert",
		ExcludePorts: []uint16{22, 53},
		ExcludeAddrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
			netip.MustParsePrefix("fd00::/64"), netip.MustParsePrefix("198.51.100.1/32")},
		TEPs:       []eno.TEP{eno.TEPTcpcryptP256, eno.TEPTcpcryptCurve25519},
		AEADs:      []tcpcrypt.AEADID{tcpcrypt.ChaCha20Poly1305, tcpcrypt.AES128GCM},
		Resumption: false, AAMandatory: true,
		Control:  ControlConfig{Socket: "/tmp/x.sock", Group: "wheel", Private: true},
		LogLevel: slog.LevelDebug, Queue: 100, Queues: 4, MetricsListen: "[::1]:9712",
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got\n%+v\nwant\n%+v", c, want)
	}
	p := c.Policy()
	// The policy lists TEPs in increasing preference.
	if !slices.Equal(p.TEPs, []eno.TEP{eno.TEPTcpcryptCurve25519, eno.TEPTcpcryptP256}) || p.Enabled || !p.AAMandatory || p.Resumption {
		t.Errorf("policy %+v", p)
	}
	if !slices.Equal(c.TEPs, want.TEPs) {
		t.Error("Policy changed the config's TEP list")
	}
	// Encode round-trips.
	back, err := Parse([]byte(c.Encode()))
	if err != nil || !reflect.DeepEqual(back, c) {
		t.Errorf("Encode round trip: %v\n%s", err, c.Encode())
	}
}

func TestErrorsNameKeyAndAllowed(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`mode = "magic"`, `mode: "magic" is not allowed; use one of: auto, divert, redirect`},
		{`mode = 3`, `mode: want a string, got an integer`},
		{`enabled = "yes"`, `enabled: want true or false, got a string`},
		{`exclude_ports = [0]`, `exclude_ports[0]: want a port number 1-65535, got 0`},
		{`exclude_ports = [70000]`, `exclude_ports[0]: want a port number 1-65535, got 70000`},
		{`exclude_ports = 22`, `exclude_ports: want a list of port numbers 1-65535, like [22, 53], got an integer`},
		{`exclude_addrs = ["10.0.0.0/33"]`, `exclude_addrs[0]: "10.0.0.0/33" is not an IPv4 or IPv6 address or prefix`},
		{`exclude_addrs = [10]`, `exclude_addrs[0]: want an address or prefix in quotes`},
		{`teps = ["rsa"]`, `teps[0]: "rsa" is not a TEP; use one of: curve25519, curve448, p256, p521`},
		{`aeads = ["des"]`, `aeads[0]: "des" is not an AEAD; use one of: aes128gcm, aes256gcm, chacha20poly1305`},
		{`aeads = ["aes256gcm"]`, `aeads: must include aes128gcm`},
		{`colour = "blue"`, `colour: unknown key at the top level; allowed keys: enabled, mode,`},
		{"[control]\nsokcet = \"/x\"", `control.sokcet: unknown key in [control]; allowed keys: socket, group, private`},
		{"[control]\nsocket = \"relative.sock\"", `control.socket: want an absolute path, got "relative.sock"`},
		{"[control]\nsocket = \"/" + strings.Repeat("a", 200) + "\"", `control.socket: path is 201 bytes`},
		{"[control]\ngroup = \"a b\"", `control.group: "a b" is not a group name`},
		{`control = 1`, `control: want a table [control], got an integer`},
		{"[log]\nlevel = \"loud\"", `log.level: "loud" is not allowed; use one of: debug, info, warn, error`},
		{"[queue]\nfirst = -1", `queue.first: want a queue number 0-65535, got -1`},
		{"[queue]\ncount = 0", `queue.count: want a number of queues 1-64, got 0`},
		{"[queue]\nfirst = 65535\ncount = 2", `queue.count: queues 65535 to 65536 do not fit`},
		{"[metrics]\nlisten = \"0.0.0.0:9712\"", `metrics.listen: want a loopback address and port`},
		{"mode = ", `line 1:`},
		{"[control]\n[control]", `line 2:`},
	} {
		_, err := Parse([]byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.src, err, tc.want)
		}
	}
	// Every mistake is reported at once.
	_, err := Parse([]byte("mode = 1\nenabled = 2\n"))
	if err == nil || !strings.Contains(err.Error(), "mode:") || !strings.Contains(err.Error(), "enabled:") {
		t.Errorf("two mistakes: %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	// An explicit path must exist.
	if _, _, err := Load(filepath.Join(dir, "none.toml")); err == nil {
		t.Error("Load of a missing explicit file: no error")
	}
	p := filepath.Join(dir, "c.toml")
	os.WriteFile(p, []byte("enabled = false\n"), 0o644)
	c, found, err := Load(p)
	if err != nil || !found || c.Enabled {
		t.Errorf("Load: %+v %v %v", c, found, err)
	}
	os.WriteFile(p, []byte("enabled = 1\n"), 0o644)
	if _, _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "enabled:") {
		t.Errorf("Load error %v should name the file and key", err)
	}
	os.WriteFile(p, make([]byte, maxFileSize+1), 0o644)
	if _, _, err := Load(p); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v", err)
	}
}

func TestDiff(t *testing.T) {
	a := Default()
	b := a
	b.Enabled = false
	b.ExcludePorts = []uint16{22}
	b.Mode = "divert"
	b.Control.Socket = "/x"
	live, restart := Diff(a, b)
	if !slices.Equal(live, []string{"enabled", "exclude_ports"}) || !slices.Equal(restart, []string{"mode", "control.socket"}) {
		t.Errorf("Diff: live %v, restart %v", live, restart)
	}
	if l, r := Diff(a, a); l != nil || r != nil {
		t.Errorf("Diff of equal configs: %v %v", l, r)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(DefaultFile()))
	f.Add([]byte("exclude_addrs = [\"::1/128\"]\nteps = [\"curve448\"]\n[queue]\nfirst = 65000\ncount = 64\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if c.Mode != "" {
				t.Fatal("failed Parse returned a config")
			}
			return
		}
		// A config that parses is valid: it encodes and parses back to
		// itself.
		back, err := Parse([]byte(c.Encode()))
		if err != nil {
			t.Fatalf("re-parse of\n%s\nfailed: %v", c.Encode(), err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip:\n%+v\n%+v", c, back)
		}
		_ = c.Policy()
	})
}

package main

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var updateUnit = flag.Bool("update-unit", false, "rewrite installer/linux/tcpincd.service from what tcpincd install writes")

// debUnit is the unit the Debian package installs.
const debUnit = "../../installer/linux/tcpincd.service"

// TestInstallSystemd runs the real 'tcpincd install', 'status' and
// 'uninstall' (kardianos/service's systemd code) in a private mount
// namespace where /etc/systemd/system and /run are empty tmpfs mounts
// and systemctl is a script that only records its arguments. Nothing is
// installed on, or started on, the machine running the test. The unit
// written is checked with systemd-analyze verify and compared with the
// Debian package's unit.
func TestInstallSystemd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test makes a private mount namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	if _, err := os.Stat("/etc/systemd/system"); err != nil {
		t.Skip("needs the directory /etc/systemd/system to mount over")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	log := filepath.Join(dir, "systemctl.log")
	fake := `#!/bin/sh
echo "$*" >> ` + log + `
case "$1" in
--version) echo "systemd 252 (252)";;
is-active) if [ -e /etc/systemd/system/tcpincd.service ]; then echo inactive; exit 3; fi; echo inactive; exit 3;;
list-unit-files) if [ -e /etc/systemd/system/tcpincd.service ]; then echo "tcpincd.service disabled enabled"; fi;;
esac
exit 0
`
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	script := `set -e
mount -t tmpfs tcis-units /etc/systemd/system
mount -t tmpfs tcis-run /run
mkdir -p /run/systemd/system
"$SELF" install
cp /etc/systemd/system/tcpincd.service "$OUT/"
set +e
"$SELF" status; echo "status=$?" > "$OUT/status-installed"
set -e
"$SELF" uninstall
set +e
"$SELF" status; echo "status=$?" > "$OUT/status-removed"
ls /etc/systemd/system > "$OUT/left"
`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "TCPINCD_TEST_MAIN=1", "SELF="+self, "OUT="+out, "PATH="+bin+":"+os.Getenv("PATH"))
	b, err := cmd.CombinedOutput()
	t.Logf("install/status/uninstall output:\n%s", b)
	if err != nil {
		t.Fatalf("install/uninstall in a mount namespace: %v", err)
	}
	calls, _ := os.ReadFile(log)
	t.Logf("systemctl calls:\n%s", calls)
	for _, want := range []string{"enable tcpincd.service", "daemon-reload", "disable tcpincd.service"} {
		if !strings.Contains(string(calls), want+"\n") {
			t.Errorf("systemctl was not called with %q", want)
		}
	}
	if strings.Contains(string(calls), "start ") {
		t.Error("install started the unit; it must only enable it")
	}
	for file, want := range map[string]string{"status-installed": "status=3", "status-removed": "status=4"} {
		got, _ := os.ReadFile(filepath.Join(out, file))
		if strings.TrimSpace(string(got)) != want {
			t.Errorf("%s: %q, want %q", file, got, want)
		}
	}
	if left, _ := os.ReadFile(filepath.Join(out, "left")); len(strings.TrimSpace(string(left))) != 0 {
		t.Errorf("uninstall left %q", left)
	}

	unit, err := os.ReadFile(filepath.Join(out, "tcpincd.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`ExecStart=` + self + ` "run"`, "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID",
		"RuntimeDirectory=tcpinc", "ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_CHOWN",
		"Description=" + serviceDescription} {
		if !strings.Contains(string(unit), want+"\n") {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	verifyUnit(t, filepath.Join(out, "tcpincd.service"))

	// The Debian package's unit is the same with the packaged path.
	deb := strings.ReplaceAll(string(unit), self, "/usr/sbin/tcpincd")
	if *updateUnit {
		if err := os.WriteFile(debUnit, []byte(deb), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(debUnit)
	if err != nil || string(got) != deb {
		t.Errorf("%s differs from what tcpincd install writes (err %v); run: go test ./cmd/tcpincd -run TestInstallSystemd -update-unit", debUnit, err)
	}
}

// verifyUnit runs systemd-analyze verify on a unit file, when systemd's
// tools are there.
func verifyUnit(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze not installed: unit not verified (Debian package systemd)")
		return
	}
	b, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(b))) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", path, err, b)
	}
}

package service

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPostinst runs the Debian package's postinst with stand-ins for
// getent, addgroup, deb-systemd-helper, deb-systemd-invoke and systemctl
// that only record their arguments: a fresh install creates the group,
// enables the unit, starts nothing and says how to start; an upgrade
// says nothing more.
func TestPostinst(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	for _, name := range []string{"getent", "addgroup", "deb-systemd-helper", "deb-systemd-invoke", "systemctl"} {
		script := "#!/bin/sh\necho \"" + name + " $*\" >> " + log + "\n"
		if name == "getent" {
			script += "exit 2\n" // no such group
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	postinst := "../../installer/linux/debian/postinst"
	run := func(args ...string) string {
		os.Remove(log)
		cmd := exec.Command("sh", append([]string{postinst}, args...)...)
		cmd.Env = []string{"PATH=" + dir + ":/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("postinst %v: %v\n%s", args, err, out)
		}
		calls, _ := os.ReadFile(log)
		return string(out) + "--\n" + string(calls)
	}
	fresh := run("configure")
	for _, want := range []string{"addgroup --system --quiet tcpinc", "deb-systemd-helper enable tcpincd.service",
		"enabled at boot, but not started", "sudo systemctl start tcpincd"} {
		if !strings.Contains(fresh, want) {
			t.Errorf("fresh install lacks %q:\n%s", want, fresh)
		}
	}
	_, calls, _ := strings.Cut(fresh, "--\n")
	for _, bad := range []string{"start", "restart"} {
		if strings.Contains(calls, bad) {
			t.Errorf("fresh install ran %q:\n%s", bad, fresh)
		}
	}
	if upgrade := run("configure", "0.0.1"); strings.Contains(upgrade, "not started") {
		t.Errorf("upgrade repeats the first-install message:\n%s", upgrade)
	}
	if other := run("abort-upgrade"); strings.Contains(other, "deb-systemd-helper") {
		t.Errorf("abort-upgrade enabled the unit:\n%s", other)
	}
}

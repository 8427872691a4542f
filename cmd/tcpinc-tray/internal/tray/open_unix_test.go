//go:build !windows && !darwin

package tray

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestStatusCommandPicksTerminal(t *testing.T) {
	only := func(name string) func(string) (string, error) {
		return func(n string) (string, error) {
			if n == name {
				return "/usr/bin/" + n, nil
			}
			return "", errors.New("not found")
		}
	}
	for _, tc := range []struct{ term, flag string }{
		{"x-terminal-emulator", "-e"}, {"gnome-terminal", "--"}, {"xterm", "-e"},
	} {
		cmd, err := StatusCommand("/opt/t inc/tcpinc", "/run/a'b.sock", only(tc.term))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"/usr/bin/" + tc.term, tc.flag, "sh", "-c", holdScript, "/opt/t inc/tcpinc", "/run/a'b.sock"}
		if !slices.Equal(cmd.Args, want) {
			t.Errorf("args %q, want %q", cmd.Args, want)
		}
	}
	if _, err := StatusCommand("tcpinc", "/s", only("none")); err == nil || !strings.Contains(err.Error(), "no terminal emulator") {
		t.Errorf("without a terminal: %v", err)
	}
}

func writeExec(path, content string) error { return os.WriteFile(path, []byte(content), 0o755) }

// TestHoldScriptRuns runs the script with sh and a stand-in tcpinc to
// check the paths arrive intact (spaces and quotes included).
func TestHoldScriptRuns(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "tc inc")
	if err := writeExec(fake, "#!/bin/sh\necho \"args: $*\"\n"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sh, "-c", holdScript, fake, "/run/a'b c.sock")
	cmd.Stdin = strings.NewReader("\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), "args: --control /run/a'b c.sock status") {
		t.Errorf("output %q", out)
	}
}

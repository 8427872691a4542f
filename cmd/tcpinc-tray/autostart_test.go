package main

import (
	"bufio"
	"encoding/xml"
	"io"
	"os"
	"strings"
	"testing"
)

// TestDesktopFile checks the XDG autostart entry's essentials (make test
// also runs desktop-file-validate on it where installed).
func TestDesktopFile(t *testing.T) {
	f, err := os.Open("tcpinc-tray.desktop")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			keys[k] = v
		}
	}
	for k, want := range map[string]string{"Type": "Application", "Exec": "tcpinc-tray", "Terminal": "false"} {
		if keys[k] != want {
			t.Errorf("%s=%q, want %q", k, keys[k], want)
		}
	}
}

// TestLaunchAgent checks the macOS LaunchAgent is well-formed XML that
// runs tcpinc-tray at login.
func TestLaunchAgent(t *testing.T) {
	data, err := os.ReadFile("dev.tcpinc.tray.plist")
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(strings.NewReader(string(data)))
	var texts []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("dev.tcpinc.tray.plist: %v", err)
		}
		if cd, ok := tok.(xml.CharData); ok {
			if s := strings.TrimSpace(string(cd)); s != "" {
				texts = append(texts, s)
			}
		}
	}
	joined := strings.Join(texts, " ")
	for _, want := range []string{"Label dev.tcpinc.tray", "ProgramArguments /usr/local/bin/tcpinc-tray", "RunAtLoad", "Aqua"} {
		if !strings.Contains(joined, want) {
			t.Errorf("plist lacks %q: %s", want, joined)
		}
	}
}

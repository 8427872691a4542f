package tray

import (
	"os/exec"
	"strings"
)

// StatusCommand returns the command that opens a Terminal.app window
// running tcpinc status.
func StatusCommand(tcpinc, control string, lookPath func(string) (string, error)) (*exec.Cmd, error) {
	script := "sh -c " + shQuote(holdScript) + " " + shQuote(tcpinc) + " " + shQuote(control)
	// AppleScript string literal: escape backslashes and double quotes.
	as := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(script)
	return exec.Command("/usr/bin/osascript",
		"-e", `tell application "Terminal" to activate`,
		"-e", `tell application "Terminal" to do script "`+as+`"`), nil
}

// shQuote quotes s for a POSIX shell.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

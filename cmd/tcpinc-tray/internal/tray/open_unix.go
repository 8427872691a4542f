//go:build !windows && !darwin

package tray

import (
	"errors"
	"os/exec"
)

// terminals are tried in order: Debian's alternative first (the user's
// choice), then common emulators, each with the flag after which it takes
// a command and its arguments.
var terminals = [][]string{
	{"x-terminal-emulator", "-e"},
	{"gnome-terminal", "--"},
	{"konsole", "-e"},
	{"xfce4-terminal", "-x"},
	{"lxterminal", "-e"},
	{"xterm", "-e"},
}

// StatusCommand returns the command that opens a terminal running tcpinc
// status.
func StatusCommand(tcpinc, control string, lookPath func(string) (string, error)) (*exec.Cmd, error) {
	for _, t := range terminals {
		p, err := lookPath(t[0])
		if err != nil {
			continue
		}
		return exec.Command(p, t[1], "sh", "-c", holdScript, tcpinc, control), nil
	}
	return nil, errors.New("no terminal emulator found (tried x-terminal-emulator, gnome-terminal, konsole, xfce4-terminal, lxterminal, xterm); run 'tcpinc status' yourself")
}

package tray

import (
	"os/exec"
	"syscall"

	"golang.org/x/sys/windows"
)

// StatusCommand returns the command that opens a console window running
// tcpinc status and staying open (cmd /k).
func StatusCommand(tcpinc, control string, lookPath func(string) (string, error)) (*exec.Cmd, error) {
	comspec, err := lookPath("cmd.exe")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(comspec)
	// cmd.exe strips the first and the last quote of what follows /k when
	// there are more than two, so the whole command is quoted once more.
	cmd.SysProcAttr = &syscall.SysProcAttr{
		CmdLine:       `cmd.exe /k "` + winQuote(tcpinc) + ` --control ` + winQuote(control) + ` status"`,
		CreationFlags: windows.CREATE_NEW_CONSOLE,
	}
	return cmd, nil
}

// winQuote quotes a path for cmd.exe. Paths cannot contain double quotes
// on Windows, so wrapping is enough.
func winQuote(s string) string { return `"` + s + `"` }

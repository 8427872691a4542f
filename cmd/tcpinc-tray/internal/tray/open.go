package tray

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// FindTcpinc returns the path of the tcpinc command: beside this
// executable first (the installers put both in one directory), then on
// PATH.
func FindTcpinc(lookPath func(string) (string, error)) (string, error) {
	name := "tcpinc"
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	if p, err := lookPath(name); err == nil {
		return p, nil
	}
	return "", errors.New("the tcpinc command is neither beside tcpinc-tray nor on PATH; install it, or run 'tcpinc status' yourself")
}

// OpenStatus starts a terminal window running `tcpinc --control PATH
// status` and returns without waiting for it.
func OpenStatus(control string) error {
	tcpinc, err := FindTcpinc(exec.LookPath)
	if err != nil {
		return err
	}
	cmd, err := StatusCommand(tcpinc, control, exec.LookPath)
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	// Reap the terminal when it closes; nobody waits for its result.
	go cmd.Wait()
	return nil
}

// holdScript runs tcpinc ($0) on the control socket ($1) and keeps the
// window open until the user presses Enter. The paths travel as
// arguments, never spliced into the script, so no quoting can break.
const holdScript = `"$0" --control "$1" status; printf '\nPress Enter to close this window.'; read -r _`

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/kardianos/service"

	"tcpinc.dev/tcpinc/service/cli"
	"tcpinc.dev/tcpinc/service/config"
)

// Exit codes of 'tcpincd status', as LSB init scripts and systemctl use
// them.
const (
	exitNotRunning   = 3
	exitNotInstalled = 4
)

// serviceDescription is what the service managers show.
const serviceDescription = "Encrypts TCP connections with TCP-ENO and tcpcrypt when the peer supports it (RFC 8547, RFC 8548)."

// serviceConfig describes tcpincd to kardianos/service. The per-OS
// options (unit template, recovery actions, plist) come from
// lifecycle_<os>.go.
func serviceConfig(configPath string) (*service.Config, error) {
	args := []string{"run"}
	if runtime.GOOS == "windows" {
		// Says it runs under the SCM rather than leaving it to detection
		// (which fails under wine): see runUnderSCM.
		args = append(args, "--service")
	}
	if configPath != "" {
		abs, err := filepath.Abs(configPath)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
		args = append(args, "--config", abs)
	}
	return &service.Config{
		Name:        serviceName,
		DisplayName: serviceDisplayName,
		Description: serviceDescription,
		Arguments:   args,
		Option:      serviceOptions(),
	}, nil
}

// program is the kardianos/service Interface for install, uninstall,
// start, stop and status, which never run it: under the Windows SCM,
// 'tcpincd run --service' runs the daemon itself (runUnderSCM), and the
// other service managers run 'tcpincd run' as a plain process.
type program struct{}

func (program) Start(service.Service) error { return nil }
func (program) Stop(service.Service) error  { return nil }

// runService runs the daemon in the foreground, or under the Windows
// service control manager when asked to (run --service) or when it
// started us (detection, for a service registered with a plain 'run').
func runService(asService bool, configPath string, cfg config.Config, found bool, level *slog.LevelVar, log *slog.Logger) error {
	if asService || isWindowsService() {
		return runUnderSCM(configPath, cfg, found, level, log)
	}
	ctx, reload, stop := signalContext()
	defer stop()
	return runDaemonLoop(ctx, configPath, cfg, found, false, level, log, reload)
}

const serviceUsage = `Usage: tcpincd %[1]s%[2]s

%[3]s

Flags:
`

var serviceHelp = map[string]string{
	"install":   "Installs tcpincd as a system service (" + serviceKind + ") that starts at boot\nand restarts after a failure. It does not start it now: run 'tcpincd start'.\nWith --config, the service reads that file instead of " + config.DefaultPath + ".",
	"uninstall": "Stops the system service and removes it. The configuration file stays.",
	"start":     "Starts the system service.",
	"stop":      "Stops the system service: encrypted connections are reset, capture rules removed.",
	"restart":   "Restarts the system service (needed for the keys 'tcpinc reload' cannot change).",
	"status":    "Says whether the system service is installed and running.\nExit status: 0 running, 3 installed but not running, 4 not installed.",
}

// cmdService runs install, uninstall, start, stop, restart and status.
func cmdService(action string, args []string, stdout io.Writer) (int, error) {
	fs := flag.NewFlagSet("tcpincd "+action, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var configPath string
	extra := ""
	if action == "install" {
		fs.StringVar(&configPath, "config", "", "configuration `file` the service reads")
		extra = " [--config FILE]"
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, serviceUsage, action, extra, serviceHelp[action])
			cli.PrintFlags(stdout, fs)
			return 0, err
		}
		return 0, cli.UsageError{Msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return 0, cli.UsageError{Msg: fmt.Sprintf("%s takes no arguments, got %q", action, fs.Arg(0))}
	}
	if configPath != "" {
		if _, _, err := config.Load(configPath); err != nil {
			return 0, configError{err}
		}
	}
	sc, err := serviceConfig(configPath)
	if err != nil {
		return 0, err
	}
	s, err := service.New(program{}, sc)
	if err != nil {
		return 0, fmt.Errorf("no supported service manager found (%w); run 'tcpincd run' under your own supervisor", err)
	}
	if action == "status" {
		st, err := s.Status()
		switch {
		case errors.Is(err, service.ErrNotInstalled):
			fmt.Fprintf(stdout, "%s: not installed (install it with: tcpincd install)\n", sc.Name)
			return exitNotInstalled, nil
		case err != nil:
			return 0, fmt.Errorf("asking %s: %w", s.Platform(), err)
		case st == service.StatusRunning:
			fmt.Fprintf(stdout, "%s: running (%s); see 'tcpinc status'\n", sc.Name, s.Platform())
			return 0, nil
		default:
			fmt.Fprintf(stdout, "%s: installed, not running (start it with: tcpincd start)\n", sc.Name)
			return exitNotRunning, nil
		}
	}
	if err := needAdmin(action); err != nil {
		return 0, err
	}
	if err := controlService(s, action); err != nil {
		return 0, explainServiceError(action, sc.Name, err)
	}
	switch action {
	case "install":
		fmt.Fprintf(stdout, "installed %s (%s), enabled at boot; start it now with: tcpincd start\n", sc.Name, s.Platform())
	case "uninstall":
		fmt.Fprintf(stdout, "uninstalled %s\n", sc.Name)
	default:
		fmt.Fprintf(stdout, "%s: %s done\n", sc.Name, action)
	}
	return 0, nil
}

func explainServiceError(action, name string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "already exists"):
		return fmt.Errorf("%s is already installed (%v); run 'tcpincd uninstall' first to reinstall", name, err)
	case errors.Is(err, service.ErrNotInstalled) || strings.Contains(msg, "not installed") || errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s: %s: not installed (install it with: tcpincd install): %v", name, action, err)
	}
	return fmt.Errorf("%s %s: %w", action, name, err)
}

// Command tcpincd is the tcpinc daemon: it makes the host's TCP
// connections encrypted (TCP-ENO, RFC 8547, with tcpcrypt, RFC 8548) when
// the peer supports it, and answers tcpinc's questions on a control
// socket.
//
// Usage:
//
//	tcpincd run [--config FILE] [--mode auto|divert|redirect] [--control PATH]
//	            [--queue N] [--queues N] [--exclude-port P]... [--exclude-addr PREFIX]...
//	            [--log-level LEVEL] [--service (Windows)]
//	tcpincd install [--config FILE] | uninstall | start | stop | restart | status
//	tcpincd --print-default-config
//	tcpincd version
//
// Exit status: 0 on success (including a clean stop on SIGINT or SIGTERM),
// 1 on a runtime error, 2 on a usage error, 78 when the configuration
// file cannot be used; 'tcpincd status' exits 3 when the service is
// installed but not running and 4 when it is not installed.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"

	"tcpinc.dev/tcpinc/service/cli"
	"tcpinc.dev/tcpinc/service/config"
	"tcpinc.dev/tcpinc/service/version"
)

var mainUsage = `Usage: tcpincd <command> [flags]

tcpincd encrypts this host's TCP connections with TCP-ENO and tcpcrypt
(RFC 8547, RFC 8548) when the peer supports them, and leaves them plain
otherwise. It runs as root (Administrator on Windows).

Commands:
  run          capture and encrypt in the foreground (what the service runs;
               stop with Ctrl-C or SIGTERM, reload with SIGHUP)
  install      install tcpincd as a system service (` + serviceKind + `), enabled at boot
  uninstall    stop and remove the system service
  start        start the system service
  stop         stop the system service (encrypted connections are reset)
  restart      restart the system service
  status       say whether the system service is installed and running
  version      print the version

Flags:
  --print-default-config   print the configuration file with every default
                           and its documentation, and exit

Configuration: ` + config.DefaultPath + ` (optional; see
--print-default-config). Query a running daemon with 'tcpinc status'.
Run 'tcpincd <command> --help' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage)
		return cli.ExitUsage
	}
	var err error
	switch cmd := args[0]; cmd {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, mainUsage)
		return cli.ExitOK
	case "--print-default-config", "-print-default-config":
		if len(args) > 1 {
			err = cli.UsageError{Msg: "--print-default-config takes no arguments"}
			break
		}
		fmt.Fprint(stdout, config.DefaultFile())
		return cli.ExitOK
	case "version", "--version", "-version":
		if len(args) > 1 && args[1] != "--help" && args[1] != "-h" {
			err = cli.UsageError{Msg: "version takes no arguments"}
			break
		}
		fmt.Fprintf(stdout, "tcpincd %s\n", version.String())
		return cli.ExitOK
	case "run":
		err = cmdRun(args[1:], stdout, stderr)
	case "install", "uninstall", "start", "stop", "restart", "status":
		var rc int
		rc, err = cmdService(cmd, args[1:], stdout)
		if err == nil {
			return rc
		}
	default:
		err = cli.UsageError{Msg: fmt.Sprintf("unknown command %q", cmd)}
	}
	return report(err, stderr)
}

// exitConfig is the exit status for a configuration file tcpincd cannot
// use (EX_CONFIG of sysexits.h). The systemd unit does not restart on
// it (RestartPreventExitStatus): restarting cannot fix the file.
const exitConfig = 78

// configError is a configuration file that cannot be read or used.
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

func report(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return cli.ExitOK
	}
	var ue cli.UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "tcpincd: %v\nRun 'tcpincd --help' for usage.\n", err)
		return cli.ExitUsage
	}
	var ce configError
	if errors.As(err, &ce) {
		fmt.Fprintf(stderr, "tcpincd: %v\n", err)
		return exitConfig
	}
	fmt.Fprintf(stderr, "tcpincd: %v\n", err)
	return cli.ExitFailure
}

// runOptions are the flags of 'tcpincd run'. Flags given override the
// configuration file; exclusions add to it.
type runOptions struct {
	config       string
	mode         string
	control      string
	queue        uint16
	queues       int
	excludePorts []uint16
	excludeAddrs []netip.Prefix
	logLevel     slog.Level
	service      bool            // run under the Windows SCM (--service)
	set          map[string]bool // flags given
}

const runUsage = `Usage: tcpincd run [flags]

Captures this host's TCP connections and encrypts those whose peer speaks
TCP-ENO, until interrupted (SIGINT or SIGTERM). On a clean stop the
encrypted connections are reset and the packet filter rules are removed.
SIGHUP (or 'tcpinc reload') reads the configuration again. Flags override
the configuration file.

Flags:
`

func parseRun(args []string, stdout io.Writer) (runOptions, error) {
	o := runOptions{mode: "auto", queues: 1, set: map[string]bool{}}
	fs := flag.NewFlagSet("tcpincd run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.config, "config", "", "configuration `file` (default "+config.DefaultPath+", optional)")
	fs.StringVar(&o.mode, "mode", o.mode, "capture `mode`: auto, divert, redirect")
	fs.StringVar(&o.control, "control", "", "control socket `path` (on Windows a named pipe: NAME or \\\\.\\pipe\\NAME; default from the configuration)")
	fs.Func("queue", "first NFQUEUE `number` (default 0)", func(s string) error {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return errors.New("want a queue number 0-65535")
		}
		o.queue = uint16(n)
		return nil
	})
	fs.IntVar(&o.queues, "queues", o.queues, "`number` of NFQUEUE queues and workers")
	fs.Func("exclude-port", "never capture connections with this `port` at either end (repeatable; or a comma-separated list)", func(s string) error {
		for f := range strings.SplitSeq(s, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
			if err != nil || n == 0 {
				return fmt.Errorf("%q is not a port number 1-65535", f)
			}
			o.excludePorts = append(o.excludePorts, uint16(n))
		}
		return nil
	})
	fs.Func("exclude-addr", "never capture connections with an address in this `prefix` at either end (repeatable; an address means /32 or /128)", func(s string) error {
		for f := range strings.SplitSeq(s, ",") {
			p, err := config.ParsePrefix(strings.TrimSpace(f))
			if err != nil {
				return fmt.Errorf("%q is not an address or prefix", f)
			}
			o.excludeAddrs = append(o.excludeAddrs, p)
		}
		return nil
	})
	fs.Func("log-level", "log `level`: debug, info, warn, error (default info)", func(s string) error {
		return o.logLevel.UnmarshalText([]byte(s))
	})
	if runtime.GOOS == "windows" {
		fs.BoolVar(&o.service, "service", false, "run under the service control manager (what the installed service runs; it keeps running without capture when WinDivert cannot start)")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, runUsage)
			cli.PrintFlags(stdout, fs)
			return o, err
		}
		return o, cli.UsageError{Msg: err.Error()}
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if fs.NArg() > 0 {
		return o, cli.UsageError{Msg: fmt.Sprintf("run takes no arguments, got %q", fs.Arg(0))}
	}
	switch o.mode {
	case "auto", "divert", "redirect":
	default:
		return o, cli.UsageError{Msg: fmt.Sprintf("invalid --mode %q: want auto, divert or redirect", o.mode)}
	}
	if o.queues < 1 || int(o.queue)+o.queues > 65536 {
		return o, cli.UsageError{Msg: fmt.Sprintf("invalid --queues %d: want 1 or more, with --queue + --queues <= 65536", o.queues)}
	}
	if o.set["control"] && o.control == "" {
		return o, cli.UsageError{Msg: "--control must not be empty"}
	}
	return o, nil
}

// effectiveConfig loads the configuration file and lays the flags over it.
func effectiveConfig(o runOptions) (config.Config, bool, error) {
	cfg, found, err := config.Load(o.config)
	if err != nil {
		return cfg, false, configError{err}
	}
	if o.set["mode"] {
		cfg.Mode = o.mode
	}
	if o.set["control"] {
		cfg.Control.Socket = o.control
	}
	if o.set["queue"] {
		cfg.Queue = o.queue
	}
	if o.set["queues"] {
		cfg.Queues = o.queues
	}
	if o.set["log-level"] {
		cfg.LogLevel = o.logLevel
	}
	cfg.ExcludePorts = append(cfg.ExcludePorts, o.excludePorts...)
	cfg.ExcludeAddrs = append(cfg.ExcludeAddrs, o.excludeAddrs...)
	if int(cfg.Queue)+cfg.Queues > 65536 {
		return cfg, false, cli.UsageError{Msg: fmt.Sprintf("queues %d to %d do not fit the queue numbers 0-65535", cfg.Queue, int(cfg.Queue)+cfg.Queues-1)}
	}
	return cfg, found, nil
}

func cmdRun(args []string, stdout, stderr io.Writer) error {
	o, err := parseRun(args, stdout)
	if err != nil {
		return err
	}
	cfg, found, err := effectiveConfig(o)
	if err != nil {
		return err
	}
	if err := needRunPrivilege(); err != nil {
		return err
	}
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return runService(o.service, o.config, cfg, found, level, log)
}

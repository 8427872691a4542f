// Command tcpincd is the tcpinc daemon: it makes the host's TCP
// connections encrypted (TCP-ENO, RFC 8547, with tcpcrypt, RFC 8548) by
// rewriting the kernel's packets, and answers tcpinc's questions on a
// control socket.
//
// Usage:
//
//	tcpincd run [--mode auto|divert] [--control PATH] [--queue N] [--queues N]
//	            [--exclude-port P]... [--exclude-addr PREFIX]... [--log-level LEVEL]
//	tcpincd version
//
// Exit status: 0 on success (including a clean stop on SIGINT or SIGTERM),
// 1 on a runtime error, 2 on a usage error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"tcpinc.dev/tcpinc/service/cli"

	"tcpinc.dev/tcpinc/service/control"
	"tcpinc.dev/tcpinc/service/version"
)

const mainUsage = `Usage: tcpincd <command> [flags]

tcpincd encrypts this host's TCP connections with TCP-ENO and tcpcrypt
(RFC 8547, RFC 8548) when the peer supports them, and leaves them plain
otherwise. It must run as root.

Commands:
  run        capture and encrypt TCP connections (foreground; stop with Ctrl-C or SIGTERM)
  version    print the version

Run 'tcpincd <command> --help' for a command's flags.
Query a running daemon with 'tcpinc status' and 'tcpinc conns'.
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
	case "version", "--version", "-version":
		if len(args) > 1 && args[1] != "--help" && args[1] != "-h" {
			err = cli.UsageError{Msg: "version takes no arguments"}
			break
		}
		fmt.Fprintf(stdout, "tcpincd %s\n", version.String())
		return cli.ExitOK
	case "run":
		err = cmdRun(args[1:], stdout, stderr)
	default:
		err = cli.UsageError{Msg: fmt.Sprintf("unknown command %q", cmd)}
	}
	return report(err, stderr)
}

func report(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return cli.ExitOK
	}
	var ue cli.UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "tcpincd: %v\nRun 'tcpincd --help' for usage.\n", err)
		return cli.ExitUsage
	}
	fmt.Fprintf(stderr, "tcpincd: %v\n", err)
	return cli.ExitFailure
}

// runOptions are the flags of 'tcpincd run'.
type runOptions struct {
	mode         string
	control      string
	queue        uint16
	queues       int
	excludePorts []uint16
	excludeAddrs []netip.Prefix
	logLevel     slog.Level
}

const runUsage = `Usage: tcpincd run [flags]

Captures this host's TCP connections and encrypts those whose peer speaks
TCP-ENO, until interrupted (SIGINT or SIGTERM). On a clean stop the
encrypted connections are reset and the packet filter rules are removed.

Flags:
`

func parseRun(args []string, stdout io.Writer) (runOptions, error) {
	o := runOptions{mode: "auto", control: control.DefaultPath, queues: 1}
	fs := flag.NewFlagSet("tcpincd run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.mode, "mode", o.mode, "capture `mode`: auto, divert (redirect is not implemented yet)")
	fs.StringVar(&o.control, "control", o.control, "control socket `path`")
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
			f = strings.TrimSpace(f)
			p, err := netip.ParsePrefix(f)
			if err != nil {
				a, aerr := netip.ParseAddr(f)
				if aerr != nil {
					return fmt.Errorf("%q is not an address or prefix", f)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			o.excludeAddrs = append(o.excludeAddrs, p.Masked())
		}
		return nil
	})
	fs.Func("log-level", "log `level`: debug, info, warn, error (default info)", func(s string) error {
		return o.logLevel.UnmarshalText([]byte(s))
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, runUsage)
			cli.PrintFlags(stdout, fs)
			return o, err
		}
		return o, cli.UsageError{Msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return o, cli.UsageError{Msg: fmt.Sprintf("run takes no arguments, got %q", fs.Arg(0))}
	}
	switch o.mode {
	case "auto", "divert":
	case "redirect":
		return o, errors.New("--mode redirect is not implemented yet; use --mode divert (or auto)")
	default:
		return o, cli.UsageError{Msg: fmt.Sprintf("invalid --mode %q: want auto or divert", o.mode)}
	}
	if o.queues < 1 || int(o.queue)+o.queues > 65536 {
		return o, cli.UsageError{Msg: fmt.Sprintf("invalid --queues %d: want 1 or more, with --queue + --queues <= 65536", o.queues)}
	}
	if o.control == "" {
		return o, cli.UsageError{Msg: "--control must not be empty"}
	}
	return o, nil
}

func cmdRun(args []string, stdout, stderr io.Writer) error {
	o, err := parseRun(args, stdout)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))
	return runDaemon(o, log)
}

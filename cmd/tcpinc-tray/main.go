// Command tcpinc-tray shows tcpincd's state as an icon in the system tray
// (the notification area on Windows, the menu bar on macOS, a
// StatusNotifierItem on Linux) and lets the user turn encryption on and
// off.
//
// Usage:
//
//	tcpinc-tray [--control PATH] [--interval DURATION]
//
// The icon is a shield: grey with an open padlock when encryption is off,
// blue with a closed padlock when it is on but no connection is encrypted,
// green when connections are encrypted, red when tcpincd cannot be asked
// or cannot capture packets.
// Its menu shows the counts of encrypted and plain connections, turns
// encryption on or off (administrators only: tcpincd refuses others, and
// the menu says so), and opens `tcpinc status` in a terminal.
//
// It talks to tcpincd only through the control socket, polls it every
// few seconds and reconnects by itself when tcpincd restarts.
//
// On macOS the tray needs cgo and the macOS SDK: build it on a Mac with
// CGO_ENABLED=1. See docs/tray.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"tcpinc.dev/tcpinc/cmd/tcpinc-tray/internal/tray"
	"tcpinc.dev/tcpinc/service/cli"
	"tcpinc.dev/tcpinc/service/control"
	"tcpinc.dev/tcpinc/service/version"
)

const usage = `Usage: tcpinc-tray [--control PATH] [--interval DURATION]

tcpinc-tray shows in the system tray whether tcpincd encrypts this host's
TCP connections (TCP-ENO and tcpcrypt, RFC 8547 and RFC 8548):

  grey shield, open padlock     encryption is off
  blue shield, closed padlock   on, no connection encrypted yet
  green shield, padlock         connections are encrypted
  red shield, exclamation mark  tcpincd is not running, cannot be asked,
                                or cannot capture packets (the menu says why)

Its menu shows the numbers of encrypted and plain connections, turns
encryption on or off (administrators only) and opens 'tcpinc status'.

Flags:
`

// options are the command-line settings.
type options struct {
	control  string
	interval time.Duration
}

// minInterval keeps a mistyped --interval from hammering tcpincd.
const minInterval = 500 * time.Millisecond

// parseArgs parses the command line. It returns flag.ErrHelp after
// printing the usage for --help, and a cli.UsageError for a mistake.
func parseArgs(args []string, stdout io.Writer) (options, error) {
	o := options{control: control.DefaultPath, interval: 3 * time.Second}
	if env := os.Getenv("TCPINC_CONTROL"); env != "" {
		o.control = env
	}
	fs := flag.NewFlagSet("tcpinc-tray", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.control, "control", o.control, "tcpincd's control socket `path` (or $TCPINC_CONTROL)")
	fs.DurationVar(&o.interval, "interval", o.interval, "how often to ask tcpincd for its status")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			cli.PrintFlags(stdout, fs)
			return o, err
		}
		return o, cli.UsageError{Msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return o, cli.UsageError{Msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if o.interval < minInterval {
		return o, cli.UsageError{Msg: fmt.Sprintf("--interval %v is too short; use at least %v", o.interval, minInterval)}
	}
	if *showVersion {
		fmt.Fprintf(stdout, "tcpinc-tray %s\n", version.String())
		return o, flag.ErrHelp
	}
	return o, nil
}

// exitCode reports a parseArgs error and returns the exit status, or -1
// to go on.
func exitCode(err error, stderr io.Writer) int {
	var ue cli.UsageError
	switch {
	case err == nil:
		return -1
	case errors.Is(err, flag.ErrHelp):
		return cli.ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "tcpinc-tray: %v\nRun 'tcpinc-tray --help' for usage.\n", err)
		return cli.ExitUsage
	}
	fmt.Fprintf(stderr, "tcpinc-tray: %v\n", err)
	return cli.ExitFailure
}

// daemon adapts control.Client to tray.Daemon.
type daemon struct{ cl *control.Client }

func dialer(path string) tray.Dialer {
	return func() (tray.Daemon, error) {
		cl, err := control.Dial(path)
		if err != nil {
			return nil, err
		}
		return daemon{cl}, nil
	}
}

func (d daemon) Status() (tray.Status, error) {
	r, err := d.cl.Status()
	if err != nil {
		return tray.Status{}, err
	}
	return tray.Status{
		Version:      r.Version,
		Mode:         r.Mode,
		Running:      r.Running,
		Enabled:      r.Enabled,
		Encrypted:    r.Encrypted,
		Plain:        r.Plain,
		Conns:        r.Conns,
		CaptureError: r.CaptureError,
	}, nil
}

func (d daemon) SetEnabled(on bool) error { return d.cl.SetEnabled(on) }
func (d daemon) Close() error             { return d.cl.Close() }

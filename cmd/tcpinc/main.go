// Command tcpinc shows and controls tcpincd, the tcpinc daemon.
//
// Usage:
//
//	tcpinc [--control PATH] status [--json]
//	tcpinc [--control PATH] conns [--json]
//	tcpinc [--control PATH] sessid [--json] LOCAL REMOTE
//	tcpinc [--control PATH] sessid [--json] --pid PID --fd FD   (Linux)
//	tcpinc [--control PATH] up | down | reload
//	tcpinc [--control PATH] metrics
//	tcpinc version
//
// Read-only commands work for every local user; up, down and reload need
// root or the admin group (see docs/service.md). Exit status: see the
// exit* constants and 'tcpinc --help'.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"tcpinc.dev/tcpinc/service/cli"
	"tcpinc.dev/tcpinc/service/config"
	"tcpinc.dev/tcpinc/service/control"
)

// Exit codes beyond cli's 0 (success), 1 (failure) and 2 (usage).
const (
	// exitNotRunning: tcpincd does not answer on its control socket.
	exitNotRunning = 3
	// exitPermission: the caller may not do this (up, down, reload as a
	// user outside the admin group).
	exitPermission = 4
	// exitNoSession: sessid: the connection has no session ID because
	// TCP-ENO is not in effect on it (the API draft's EINVAL).
	exitNoSession = 5
	// exitNotYet: sessid: TCP-ENO is still being negotiated (ENOTCONN).
	exitNotYet = 6
)

var mainUsage = `Usage: tcpinc [--control PATH] <command> [flags] [arguments]

tcpinc shows and controls tcpincd, which encrypts this host's TCP
connections with TCP-ENO and tcpcrypt (RFC 8547, RFC 8548) whenever the
peer supports them.

Commands:
  status     whether tcpincd runs and encrypts, connection counts, counters
  conns      connections tcpincd tracks, with their session IDs
  sessid     the session ID (and role, TEP, AEAD...) of one connection
  up         offer encryption to new connections (admin)
  down       stop offering encryption to new connections; encrypted
             connections keep working (admin)
  reload     read the configuration file again (admin)
  metrics    counters in the Prometheus text format
  version    tcpinc's and tcpincd's versions

Global flags:
  --control PATH   tcpincd's control socket (default: control.socket in
                   ` + config.DefaultPath + `, else ` + control.DefaultPath + `;
                   the environment variable TCPINC_CONTROL overrides both)

Exit status:
  0  success
  1  failure
  2  usage error
  3  tcpincd is not running (does not answer on its control socket)
  4  permission denied (up, down, reload need root or the admin group)
  5  sessid: no session ID, TCP-ENO is not in effect on the connection
  6  sessid: TCP-ENO is still being negotiated; ask again

Run 'tcpinc <command> --help' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func run(args []string, stdout, stderr io.Writer) int {
	err := dispatch(args, stdout)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return cli.ExitOK
	}
	var ue cli.UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "tcpinc: %v\nRun 'tcpinc --help' for usage.\n", err)
		return cli.ExitUsage
	}
	fmt.Fprintf(stderr, "tcpinc: %v\n", err)
	var ee *exitError
	var unreachable *control.UnreachableError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &unreachable):
		return exitNotRunning
	case control.IsPermission(err):
		return exitPermission
	}
	return cli.ExitFailure
}

// defaultControlPath is TCPINC_CONTROL, else the socket the default
// configuration file names, else control.DefaultPath.
func defaultControlPath() string {
	if env := os.Getenv("TCPINC_CONTROL"); env != "" {
		return env
	}
	if cfg, found, err := config.Load(""); err == nil && found {
		return cfg.Control.Socket
	}
	return control.DefaultPath
}

// command is one subcommand.
type command struct {
	usage string
	// json: the command takes --json.
	json bool
	// flags adds the command's own flags.
	flags func(fs *flag.FlagSet, o *opts)
	// args checks the positional arguments.
	nargs func(n int) bool
	run   func(o *opts, args []string, stdout io.Writer) error
}

// opts are the flags every command shares, and the command's own.
type opts struct {
	path   string
	asJSON bool
	pid    int
	fd     int
}

var commands map[string]*command

func init() {
	none := func(n int) bool { return n == 0 }
	commands = map[string]*command{
		"status":  {usage: statusUsage, json: true, nargs: none, run: cmdStatus},
		"conns":   {usage: connsUsage, json: true, nargs: none, run: cmdConns},
		"sessid":  {usage: sessidUsage, json: true, flags: sessidFlags, nargs: func(n int) bool { return n == 0 || n == 2 }, run: cmdSessid},
		"up":      {usage: upUsage, nargs: none, run: func(o *opts, _ []string, w io.Writer) error { return cmdSetEnabled(o, true, w) }},
		"down":    {usage: downUsage, nargs: none, run: func(o *opts, _ []string, w io.Writer) error { return cmdSetEnabled(o, false, w) }},
		"reload":  {usage: reloadUsage, json: true, nargs: none, run: cmdReload},
		"metrics": {usage: metricsUsage, nargs: none, run: cmdMetrics},
		"version": {usage: versionUsage, json: true, nargs: none, run: cmdVersion},
	}
}

func dispatch(args []string, stdout io.Writer) error {
	o := &opts{path: defaultControlPath()}
	global := flag.NewFlagSet("tcpinc", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	global.StringVar(&o.path, "control", o.path, "")
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, mainUsage)
			return err
		}
		return cli.UsageError{Msg: err.Error()}
	}
	args = global.Args()
	if len(args) == 0 {
		return cli.UsageError{Msg: "no command given (status, conns, sessid, up, down, reload, metrics, version)"}
	}
	name, args := args[0], args[1:]
	if name == "help" {
		fmt.Fprint(stdout, mainUsage)
		return nil
	}
	c, ok := commands[name]
	if !ok {
		return cli.UsageError{Msg: fmt.Sprintf("unknown command %q", name)}
	}
	fs := flag.NewFlagSet("tcpinc "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.json {
		fs.BoolVar(&o.asJSON, "json", false, "print JSON")
	}
	if c.flags != nil {
		c.flags(fs, o)
	}
	fs.StringVar(&o.path, "control", o.path, "tcpincd's control socket `path`")
	// Flags may come before or after the arguments.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, c.usage)
				cli.PrintFlags(stdout, fs)
				return err
			}
			return cli.UsageError{Msg: err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if !c.nargs(len(pos)) {
		if len(pos) == 0 {
			return cli.UsageError{Msg: fmt.Sprintf("%s needs arguments; see 'tcpinc %s --help'", name, name)}
		}
		return cli.UsageError{Msg: fmt.Sprintf("%s: unexpected arguments %q", name, strings.Join(pos, " "))}
	}
	return c.run(o, pos, stdout)
}

func dial(o *opts) (*control.Client, error) {
	return control.Dial(o.path)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Command tcpinc shows what tcpincd, the tcpinc daemon, is doing.
//
// Usage:
//
//	tcpinc [--control PATH] status [--json]
//	tcpinc [--control PATH] conns [--json]
//	tcpinc version
//
// Exit status: 0 on success, 1 on an error (including tcpincd not
// running), 2 on a usage error.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"tcpinc.dev/tcpinc/service/cli"
	"text/tabwriter"

	"tcpinc.dev/tcpinc/service/control"
	"tcpinc.dev/tcpinc/service/version"
)

var mainUsage = `Usage: tcpinc [--control PATH] <command> [flags]

tcpinc shows the state of tcpincd, which encrypts this host's TCP
connections with TCP-ENO and tcpcrypt (RFC 8547, RFC 8548).

Commands:
  status     daemon state and counters
  conns      connections tcpincd tracks, with their session IDs
  version    print the version

Global flags:
  --control PATH   tcpincd's control socket (default ` + control.DefaultPath + `)

Run 'tcpinc <command> --help' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

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
	return cli.ExitFailure
}

func dispatch(args []string, stdout io.Writer) error {
	path := control.DefaultPath
	if env := os.Getenv("TCPINC_CONTROL"); env != "" {
		path = env
	}
	global := flag.NewFlagSet("tcpinc", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	global.StringVar(&path, "control", path, "")
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, mainUsage)
			return err
		}
		return cli.UsageError{Msg: err.Error()}
	}
	args = global.Args()
	if len(args) == 0 {
		return cli.UsageError{Msg: "no command given (status, conns, version)"}
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "help":
		fmt.Fprint(stdout, mainUsage)
		return nil
	case "version":
		if _, err := parseSub("version", "Usage: tcpinc version\n\nPrints tcpinc's version, and tcpincd's if it is running.\n", args, &path, stdout, false); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "tcpinc %s\n", version.String())
		if cl, err := control.Dial(path); err == nil {
			defer cl.Close()
			if st, err := cl.Status(); err == nil {
				fmt.Fprintf(stdout, "tcpincd %s\n", st.Version)
			}
		}
		return nil
	case "status":
		asJSON, err := parseSub("status", statusUsage, args, &path, stdout, true)
		if err != nil {
			return err
		}
		return cmdStatus(path, asJSON, stdout)
	case "conns":
		asJSON, err := parseSub("conns", connsUsage, args, &path, stdout, true)
		if err != nil {
			return err
		}
		return cmdConns(path, asJSON, stdout)
	}
	return cli.UsageError{Msg: fmt.Sprintf("unknown command %q", cmd)}
}

const statusUsage = `Usage: tcpinc [--control PATH] status [--json]

Shows whether tcpincd is capturing, how many connections it tracks, and its
non-zero counters (--json: all of them).

Flags:
`

const connsUsage = `Usage: tcpinc [--control PATH] conns [--json]

Lists the connections tcpincd tracks. SESSION-ID is the tcpcrypt session ID
(shortened; --json prints it whole); both ends of an encrypted connection
show the same one, so compare it out of band to rule out a
man in the middle.

Flags:
`

// parseSub parses a subcommand's flags: --json (if withJSON) and
// --control, which is accepted after the command too.
func parseSub(name, usage string, args []string, path *string, stdout io.Writer, withJSON bool) (bool, error) {
	fs := flag.NewFlagSet("tcpinc "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var asJSON bool
	if withJSON {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	}
	fs.StringVar(path, "control", *path, "tcpincd's control socket `path`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			cli.PrintFlags(stdout, fs)
			return false, err
		}
		return false, cli.UsageError{Msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return false, cli.UsageError{Msg: fmt.Sprintf("%s takes no arguments, got %q", name, fs.Arg(0))}
	}
	return asJSON, nil
}

func cmdStatus(path string, asJSON bool, stdout io.Writer) error {
	cl, err := control.Dial(path)
	if err != nil {
		return err
	}
	defer cl.Close()
	st, err := cl.Status()
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, st)
	}
	state := "stopped (not capturing)"
	if st.Running {
		state = "running"
	}
	fmt.Fprintf(stdout, "tcpincd:     %s\n", st.Version)
	fmt.Fprintf(stdout, "mode:        %s\n", st.Mode)
	fmt.Fprintf(stdout, "state:       %s\n", state)
	fmt.Fprintf(stdout, "connections: %d tracked\n", st.Conns)
	names := slices.Sorted(maps.Keys(st.Counters))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	zero := 0
	fmt.Fprintln(stdout, "counters:")
	for _, n := range names {
		if st.Counters[n] == 0 {
			zero++
			continue
		}
		fmt.Fprintf(tw, "  %s\t%d\n", n, st.Counters[n])
	}
	tw.Flush()
	if zero > 0 {
		fmt.Fprintf(stdout, "  (%d counters at zero not shown; --json shows all)\n", zero)
	}
	return nil
}

func cmdConns(path string, asJSON bool, stdout io.Writer) error {
	cl, err := control.Dial(path)
	if err != nil {
		return err
	}
	defer cl.Close()
	cs, err := cl.Conns()
	if err != nil {
		return err
	}
	if asJSON {
		if cs == nil {
			cs = []control.ConnJSON{}
		}
		return writeJSON(stdout, cs)
	}
	writeConnsTable(stdout, cs)
	return nil
}

func writeConnsTable(w io.Writer, cs []control.ConnJSON) {
	slices.SortFunc(cs, func(a, b control.ConnJSON) int {
		return strings.Compare(a.Local+" "+a.Remote, b.Local+" "+b.Remote)
	})
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOCAL\tREMOTE\tSTATE\tROLE\tTEP\tAEAD\tSESSION-ID")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Local, c.Remote, c.State, c.Role,
			dash(c.TEP), dash(c.AEAD), dash(shortID(c.SessionID)))
	}
	tw.Flush()
}

// shortID shortens a hex session ID for the table.
func shortID(id string) string {
	if len(id) <= 16 {
		return id
	}
	return id[:16] + "…"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

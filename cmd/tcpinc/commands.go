package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"tcpinc.dev/tcpinc/service/cli"
	"tcpinc.dev/tcpinc/service/control"
	"tcpinc.dev/tcpinc/service/version"
)

const statusUsage = `Usage: tcpinc status [--json]

Shows whether tcpincd is capturing, whether new connections are offered
encryption, how many connections it tracks (encrypted, plain, other), and
its non-zero counters (--json: all of them). Exit status 3 if tcpincd is
not running.

Flags:
`

const connsUsage = `Usage: tcpinc conns [--json]

Lists the connections tcpincd tracks, like ss. SESSION-ID is the tcpcrypt
session ID (shortened; --json prints it whole, with the byte counts in
full); both ends of an encrypted connection show the same one, so compare
it out of band to rule out a man in the middle.

Flags:
`

const sessidUsage = `Usage: tcpinc sessid [--json] LOCAL REMOTE
       tcpinc sessid [--json] --pid PID --fd FD     (Linux)

Prints the session ID of the connection between LOCAL and REMOTE
(ADDR:PORT, IPv6 as [ADDR]:PORT, as this host sees them), or of the TCP
socket that process PID has open as file descriptor FD. --json prints
every answer of the tcpinc API draft: eno_enabled, session_id, role,
neg_tep, self_gopt, peer_gopt, self_name, peer_name, aead, and errno
(ENOTCONN or EINVAL) when there is no session ID. Exit status 5 when
TCP-ENO is not in effect on the connection, 6 while it is still
negotiated.

Flags:
`

const upUsage = `Usage: tcpinc up

Offers encryption to new connections again (after 'tcpinc down', or
enabled = false in the configuration). Needs root or the admin group.

Flags:
`

const downUsage = `Usage: tcpinc down

Stops offering encryption to new connections: from now on they stay plain
TCP. Connections already encrypted keep their keys and keep working until
they close. Lasts until 'tcpinc up', a restart of tcpincd, or a reload
that changes enabled in the configuration. Needs root or the admin group.

Flags:
`

const reloadUsage = `Usage: tcpinc reload [--json]

Makes tcpincd read its configuration file again and apply it to new
connections; established connections, encrypted or not, are not touched.
Keys that need a restart (mode, control, queue, metrics) are listed.
Needs root or the admin group. Same as SIGHUP to tcpincd.

Flags:
`

const metricsUsage = `Usage: tcpinc metrics

Prints tcpincd's state and counters in the Prometheus text format (also
served over HTTP when metrics.listen is set in the configuration).

Flags:
`

const versionUsage = `Usage: tcpinc version [--json]

Prints tcpinc's version, and tcpincd's if it is running.

Flags:
`

func cmdStatus(o *opts, _ []string, w io.Writer) error {
	cl, err := dial(o)
	if err != nil {
		return err
	}
	defer cl.Close()
	st, err := cl.Status()
	if err != nil {
		return err
	}
	if o.asJSON {
		return writeJSON(w, st)
	}
	writeStatus(w, st)
	return nil
}

func writeStatus(w io.Writer, st *control.StatusReply) {
	state := "stopped (not capturing)"
	if st.Running {
		state = "running"
		if st.Since != "" {
			state += " since " + st.Since
		}
	} else if st.CaptureError != "" {
		// tcpincd runs (as a service) but cannot capture.
		state = "capture unavailable: " + st.CaptureError
	}
	enc := "off: new connections stay plain (tcpinc up turns it on)"
	if st.Enabled {
		enc = "on: new connections are offered TCP-ENO"
	}
	cfg := st.Config
	if cfg == "" {
		cfg = "none (defaults)"
	}
	fmt.Fprintf(w, "tcpincd:     %s\n", st.Version)
	fmt.Fprintf(w, "state:       %s\n", state)
	fmt.Fprintf(w, "encryption:  %s\n", enc)
	fmt.Fprintf(w, "mode:        %s\n", st.Mode)
	fmt.Fprintf(w, "config:      %s\n", cfg)
	fmt.Fprintf(w, "connections: %d tracked: %d encrypted, %d plain, %d other\n", st.Conns, st.Encrypted, st.Plain, st.Conns-st.Encrypted-st.Plain)
	names := slices.Sorted(maps.Keys(st.Counters))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	zero := 0
	fmt.Fprintln(w, "counters:")
	for _, n := range names {
		if st.Counters[n] == 0 {
			zero++
			continue
		}
		fmt.Fprintf(tw, "  %s\t%d\n", n, st.Counters[n])
	}
	tw.Flush()
	if zero > 0 {
		plural := "s"
		if zero == 1 {
			plural = ""
		}
		fmt.Fprintf(w, "  (%d counter%s at zero not shown; --json shows all)\n", zero, plural)
	}
}

func cmdConns(o *opts, _ []string, w io.Writer) error {
	cl, err := dial(o)
	if err != nil {
		return err
	}
	defer cl.Close()
	cs, err := cl.Conns()
	if err != nil {
		return err
	}
	if cs == nil {
		cs = []control.ConnJSON{}
	}
	sortConns(cs)
	if o.asJSON {
		return writeJSON(w, cs)
	}
	writeConnsTable(w, cs)
	return nil
}

func sortConns(cs []control.ConnJSON) {
	slices.SortFunc(cs, func(a, b control.ConnJSON) int {
		if c := strings.Compare(a.Local, b.Local); c != 0 {
			return c
		}
		return strings.Compare(a.Remote, b.Remote)
	})
}

func writeConnsTable(w io.Writer, cs []control.ConnJSON) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tLOCAL\tREMOTE\tROLE\tTEP\tAEAD\tRESUMED\tSENT\tRCVD\tSESSION-ID")
	for _, c := range cs {
		state := c.State
		if c.PlainReason != "" {
			state += " (" + c.PlainReason + ")"
		}
		resumed := "-"
		if c.SessionID != "" {
			resumed = map[bool]string{true: "yes", false: "no"}[c.Resumed]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", state, c.Local, c.Remote, roleOf(c),
			dash(shortTEP(c.TEP)), dash(shortAEAD(c.AEAD)), resumed, size(c.BytesOut), size(c.BytesIn), dash(shortID(c.SessionID)))
	}
	tw.Flush()
	if len(cs) == 0 {
		fmt.Fprintln(w, "(no connections tracked)")
	}
}

// roleOf shows the TCP-ENO role only once it means something.
func roleOf(c control.ConnJSON) string {
	if c.SessionID == "" {
		return "-"
	}
	return c.Role
}

// shortTEP drops the registry prefix: TCPCRYPT_ECDHE_Curve25519 → Curve25519.
func shortTEP(s string) string { return strings.TrimPrefix(s, "TCPCRYPT_ECDHE_") }

// shortAEAD drops the registry prefix: AEAD_AES_128_GCM → AES_128_GCM.
func shortAEAD(s string) string { return strings.TrimPrefix(s, "AEAD_") }

// size prints a byte count the way ss and ls -h do.
func size(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%c", float64(n)/float64(div), "KMGTP"[exp])
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

func sessidFlags(fs *flag.FlagSet, o *opts) {
	o.pid, o.fd = -1, -1
	nonNeg := func(dst *int) func(string) error {
		return func(s string) error {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return fmt.Errorf("%q is not a number 0 or more", s)
			}
			*dst = n
			return nil
		}
	}
	fs.Func("pid", "process `id` whose socket to look up (with --fd; Linux)", nonNeg(&o.pid))
	fs.Func("fd", "file `descriptor` of that process's TCP socket (with --pid; Linux)", nonNeg(&o.fd))
}

func cmdSessid(o *opts, args []string, w io.Writer) error {
	var local, remote netip.AddrPort
	switch {
	case len(args) == 2 && (o.pid >= 0 || o.fd >= 0):
		return cli.UsageError{Msg: "sessid: give LOCAL REMOTE or --pid and --fd, not both"}
	case len(args) == 2:
		var err error
		if local, err = parseAddrPort(args[0]); err != nil {
			return err
		}
		if remote, err = parseAddrPort(args[1]); err != nil {
			return err
		}
	case o.pid >= 0 && o.fd >= 0:
		var err error
		local, remote, err = socketAddrs(o.pid, o.fd)
		if err != nil {
			return err
		}
	case o.pid >= 0 || o.fd >= 0:
		return cli.UsageError{Msg: "sessid: --pid and --fd go together"}
	default:
		return cli.UsageError{Msg: "sessid needs LOCAL REMOTE (ADDR:PORT ADDR:PORT) or --pid PID --fd FD"}
	}
	cl, err := dial(o)
	if err != nil {
		return err
	}
	defer cl.Close()
	r, err := cl.Lookup(local, remote)
	if err != nil {
		return err
	}
	if o.asJSON {
		if err := writeJSON(w, r); err != nil {
			return err
		}
	} else if r.Errno == "" {
		fmt.Fprintln(w, r.SessionID)
	}
	switch r.Errno {
	case "":
		return nil
	case control.ErrnoNotConn:
		return &exitError{exitNotYet, fmt.Errorf("%s %s: %s (%s)", local, remote, r.Reason, r.Errno)}
	default:
		return &exitError{exitNoSession, fmt.Errorf("%s %s: no session ID: %s (%s)", local, remote, r.Reason, r.Errno)}
	}
}

func parseAddrPort(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return ap, cli.UsageError{Msg: fmt.Sprintf("%q is not ADDR:PORT (IPv6 as [ADDR]:PORT)", s)}
	}
	return ap, nil
}

func cmdSetEnabled(o *opts, on bool, w io.Writer) error {
	cl, err := dial(o)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.SetEnabled(on); err != nil {
		return err
	}
	if on {
		fmt.Fprintln(w, "encryption on: new connections are offered TCP-ENO")
	} else {
		fmt.Fprintln(w, "encryption off: new connections stay plain; encrypted connections keep working until they close")
	}
	return nil
}

func cmdReload(o *opts, _ []string, w io.Writer) error {
	cl, err := dial(o)
	if err != nil {
		return err
	}
	defer cl.Close()
	r, err := cl.Reload()
	if err != nil {
		return err
	}
	if o.asJSON {
		return writeJSON(w, r)
	}
	cfg := r.Config
	if cfg == "" {
		cfg = "no configuration file: defaults"
	}
	fmt.Fprintf(w, "reloaded %s\n", cfg)
	if len(r.Applied) == 0 {
		fmt.Fprintln(w, "applied: nothing changed")
	} else {
		fmt.Fprintf(w, "applied: %s\n", strings.Join(r.Applied, ", "))
	}
	if len(r.NeedRestart) > 0 {
		fmt.Fprintf(w, "changed but not applied, restart tcpincd for them: %s\n", strings.Join(r.NeedRestart, ", "))
	}
	return nil
}

func cmdMetrics(o *opts, _ []string, w io.Writer) error {
	cl, err := dial(o)
	if err != nil {
		return err
	}
	defer cl.Close()
	text, err := cl.Metrics()
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, text)
	return err
}

func cmdVersion(o *opts, _ []string, w io.Writer) error {
	v := struct {
		Tcpinc  string                `json:"tcpinc"`
		Tcpincd *control.VersionReply `json:"tcpincd,omitempty"`
	}{Tcpinc: version.String()}
	var dialErr error
	if cl, err := dial(o); err == nil {
		defer cl.Close()
		v.Tcpincd, dialErr = cl.Version()
	} else {
		dialErr = err
	}
	if o.asJSON {
		return writeJSON(w, v)
	}
	fmt.Fprintf(w, "tcpinc %s\n", v.Tcpinc)
	if v.Tcpincd != nil {
		fmt.Fprintf(w, "tcpincd %s (control protocol %d, %s/%s)\n", v.Tcpincd.Version, v.Tcpincd.Protocol, v.Tcpincd.OS, v.Tcpincd.Arch)
	} else {
		var ue *control.UnreachableError
		if errors.As(dialErr, &ue) {
			fmt.Fprintln(w, "tcpincd not running")
		} else {
			fmt.Fprintf(w, "tcpincd: %v\n", dialErr)
		}
	}
	return nil
}

// Package cli holds what the tcpinc commands (tcpincd, tcpinc) share:
// exit codes, usage errors and GNU-style flag listings.
package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit codes, as systemctl and wg use them.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// UsageError is a mistake in the command line: exit status ExitUsage.
type UsageError struct{ Msg string }

func (e UsageError) Error() string { return e.Msg }

// PrintFlags lists fs's flags in GNU style (--name value), the way the
// usage texts and examples spell them.
func PrintFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		left := "  --" + f.Name
		if name != "" {
			left += " " + name
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" && !strings.Contains(usage, "(default") {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "%-28s %s%s\n", left, usage, def)
	})
}

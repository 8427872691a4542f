//go:build darwin && !cgo

package main

import (
	"fmt"
	"os"

	"tcpinc.dev/tcpinc/service/cli"
)

// On macOS, fyne.io/systray drives AppKit through cgo. A binary built
// without cgo (a cross-build from Linux, say) has no tray: it says how to
// get one instead of failing obscurely.
func main() {
	_, err := parseArgs(os.Args[1:], os.Stdout)
	if code := exitCode(err, os.Stderr); code >= 0 {
		os.Exit(code)
	}
	fmt.Fprintln(os.Stderr, "tcpinc-tray: this binary was built without cgo, and on macOS the tray icon needs it.\n"+
		"Build it on a Mac with the Xcode command line tools: CGO_ENABLED=1 go build ./cmd/tcpinc-tray\n"+
		"Meanwhile 'tcpinc status' shows the same information.")
	os.Exit(cli.ExitFailure)
}

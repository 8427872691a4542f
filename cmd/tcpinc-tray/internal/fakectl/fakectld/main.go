// Command fakectld serves a fake tcpincd control socket in a fixed state,
// for the tray's screenshots (scripts/tray-screenshot.sh). It captures
// nothing.
//
//	fakectld --control PATH --state off|on|encrypted|stopped|unavailable [--encrypted N] [--plain N] [--deny-toggle]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"tcpinc.dev/tcpinc/cmd/tcpinc-tray/internal/fakectl"
	"tcpinc.dev/tcpinc/service/control"
)

func main() {
	path := flag.String("control", "", "control socket `path` to create")
	state := flag.String("state", "on", "off, on, encrypted, stopped or unavailable")
	enc := flag.Int("encrypted", 3, "encrypted connections (state encrypted)")
	plain := flag.Int("plain", 2, "plain connections")
	deny := flag.Bool("deny-toggle", false, "refuse enable/disable as for a non-administrator")
	flag.Parse()
	if *path == "" {
		fmt.Fprintln(os.Stderr, "fakectld: --control PATH is required")
		os.Exit(2)
	}
	d, err := fakectl.New(*state, *enc, *plain)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fakectld: %v\n", err)
		os.Exit(2)
	}
	if *deny {
		d.DenyToggle()
	}
	ln, err := control.Listen(*path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fakectld: %v\n", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := control.Serve(ctx, ln, d); err != nil {
		fmt.Fprintf(os.Stderr, "fakectld: %v\n", err)
		os.Exit(1)
	}
}

package main

import (
	"fmt"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/platform_windows"
)

// newBackend builds the Windows backend on WinDivert: divert mode for
// auto and divert, redirect mode (outbound SYNs reflected to a local
// proxy) for redirect. Queues sets the number of WinDivert handles and
// workers; Queue has no meaning on Windows. The errors say what to do
// (driver file missing, not elevated, another product's driver loaded,
// no arm64 driver; see docs/windows.md).
func newBackend(o backendOptions) (core.Backend, error) {
	cfg := platform_windows.Config{
		Workers: min(max(o.Queues, 1), platform_windows.MaxWorkers),
		Policy:  o.Policy,
		Log:     o.Log,
	}
	switch o.Mode {
	case "auto", "divert", "":
		d, err := platform_windows.NewDivert(cfg)
		if err != nil {
			return nil, fmt.Errorf("divert mode: %w", err)
		}
		return d, nil
	case "redirect":
		r, err := platform_windows.NewRedirect(cfg)
		if err != nil {
			return nil, fmt.Errorf("redirect mode: %w", err)
		}
		return r, nil
	}
	return nil, fmt.Errorf("unknown capture mode %q: want auto, divert or redirect", o.Mode)
}

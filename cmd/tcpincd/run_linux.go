package main

import (
	"fmt"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/platform_linux"
)

// newBackend builds the Linux backend: divert mode (NFQUEUE packet
// rewriting) for auto and divert, redirect mode (transparent proxy with a
// SYN hook) for redirect. The backend installs its nftables rules when
// the daemon calls Run.
func newBackend(o backendOptions) (core.Backend, error) {
	cfg := platform_linux.Config{
		Queue:  o.Queue,
		Queues: o.Queues,
		Policy: o.Policy,
		Log:    o.Log,
	}
	switch o.Mode {
	case "auto", "divert", "":
		// Engine.Cache nil: the backend makes one resumption cache
		// shared by its queues.
		d, err := platform_linux.NewDivert(cfg)
		if err != nil {
			return nil, fmt.Errorf("divert mode: %w", err)
		}
		return d, nil
	case "redirect":
		r, err := platform_linux.NewRedirect(cfg)
		if err != nil {
			return nil, fmt.Errorf("redirect mode: %w", err)
		}
		return r, nil
	}
	return nil, fmt.Errorf("unknown capture mode %q: want auto, divert or redirect", o.Mode)
}

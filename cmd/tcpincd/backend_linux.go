package main

import (
	"errors"
	"fmt"
	"os"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/platform_linux"
)

// newBackend builds the Linux backend: divert mode (NFQUEUE) for auto and
// divert, or redirect mode (transparent proxy).
func newBackend(o backendOptions) (core.Backend, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("tcpincd must run as root (it installs nftables rules and reads NFQUEUE); try: sudo tcpincd run, or install the service with: sudo tcpincd install")
	}
	cfg := platform_linux.Config{
		Queue:  o.Queue,
		Queues: o.Queues,
		Policy: o.Policy,
		Log:    o.Log,
	}
	switch o.Mode {
	case "auto", "divert", "":
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

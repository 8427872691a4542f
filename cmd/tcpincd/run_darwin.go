package main

import (
	"fmt"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/platform_darwin"
)

// newBackend builds the macOS backend: redirect mode through pf, the only
// mode macOS can offer (it has no divert; see docs/macos.md).
func newBackend(o backendOptions) (core.Backend, error) {
	switch o.Mode {
	case "", "auto", "redirect":
	case "divert":
		return nil, fmt.Errorf("--mode divert is not available on macOS (pf has no divert-to and ipfw is gone); use --mode redirect or auto")
	default:
		return nil, fmt.Errorf("unknown capture mode %q: want auto or redirect on macOS", o.Mode)
	}
	return platform_darwin.New(platform_darwin.Config{Policy: o.Policy, Log: o.Log})
}

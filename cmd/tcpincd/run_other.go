//go:build !linux && !windows && !darwin

package main

import (
	"fmt"
	"runtime"

	"tcpinc.dev/tcpinc/core"
)

// newBackend: tcpincd has capture backends for Linux, Windows and macOS
// only.
func newBackend(o backendOptions) (core.Backend, error) {
	return nil, fmt.Errorf("tcpincd has no capture backend for %s", runtime.GOOS)
}

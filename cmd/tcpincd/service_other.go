//go:build !windows

package main

import (
	"errors"
	"log/slog"

	"tcpinc.dev/tcpinc/service/config"
)

// isWindowsService: only Windows has a service control manager that
// must be answered; elsewhere the service manager runs 'tcpincd run' as
// a plain process.
func isWindowsService() bool { return false }

// runUnderSCM is not reached: --service exists only on Windows.
func runUnderSCM(string, config.Config, bool, *slog.LevelVar, *slog.Logger) error {
	return errors.New("--service runs tcpincd under the Windows service control manager; use 'tcpincd run' here")
}

// captureUnsupported: capture is supported wherever the backend builds.
func captureUnsupported() error { return nil }

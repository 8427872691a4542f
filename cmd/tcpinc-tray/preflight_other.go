//go:build !linux && (!darwin || cgo)

package main

import "log/slog"

// preflight has nothing to check outside Linux: Windows and macOS always
// have a notification area.
func preflight(*slog.Logger) error { return nil }

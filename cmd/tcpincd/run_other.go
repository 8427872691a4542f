//go:build !linux

package main

import (
	"fmt"
	"log/slog"
	"runtime"
)

func runDaemon(o runOptions, log *slog.Logger) error {
	return fmt.Errorf("divert mode on this OS (%s) is not built yet; tcpincd runs on Linux only for now", runtime.GOOS)
}

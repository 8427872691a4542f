//go:build !linux

package main

import (
	"log/slog"
)

// runDaemon is temporary: the OS-neutral daemon loop replaces it.
func runDaemon(o runOptions, log *slog.Logger) error {
	_, err := newBackend(backendOptions{Mode: o.mode, Queue: o.queue, Queues: o.queues, Log: log})
	return err
}

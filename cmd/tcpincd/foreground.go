package main

import (
	"context"
	"log/slog"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/service/config"
	"tcpinc.dev/tcpinc/service/daemon"
)

// runDaemonLoop runs the daemon until ctx ends. reload delivers SIGHUP
// (nil where there is none). stayUp keeps it running without capture
// when capture cannot start or fails (daemon.Options.StayUp): what the
// Windows service does; the foreground tcpincd exits instead.
func runDaemonLoop(ctx context.Context, configPath string, cfg config.Config, found, stayUp bool, level *slog.LevelVar, log *slog.Logger, reload <-chan struct{}) error {
	d, err := daemon.New(daemon.Options{
		ConfigPath: configPath,
		Config:     cfg,
		Found:      found,
		Log:        log,
		Level:      level,
		StayUp:     stayUp,
		NewBackend: func(c *config.Config, p core.Policy, log *slog.Logger) (core.Backend, error) {
			if err := captureUnsupported(); err != nil {
				return nil, err
			}
			return newBackend(backendOptions{Mode: c.Mode, Policy: p, Queue: c.Queue, Queues: c.Queues, Log: log})
		},
	})
	if err != nil {
		return err
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-reload:
				// Errors are logged by Reload; the daemon keeps running.
				d.Reload()
			}
		}
	}()
	return d.Run(ctx)
}

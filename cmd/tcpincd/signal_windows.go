package main

import (
	"context"
	"os"
	"os/signal"
)

// signalContext ends on Ctrl-C. Windows has no SIGHUP: reload with
// 'tcpinc reload'.
func signalContext() (ctx context.Context, reload <-chan struct{}, stop func()) {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	return ctx, nil, cancel
}

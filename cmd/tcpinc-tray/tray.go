//go:build !darwin || cgo

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"fyne.io/systray"

	"tcpinc.dev/tcpinc/cmd/tcpinc-tray/internal/tray"
	"tcpinc.dev/tcpinc/service/cli"
)

func main() {
	o, err := parseArgs(os.Args[1:], os.Stdout)
	if code := exitCode(err, os.Stderr); code >= 0 {
		os.Exit(code)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := preflight(log); err != nil {
		fmt.Fprintf(os.Stderr, "tcpinc-tray: %v\n", err)
		os.Exit(cli.ExitFailure)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	onReady := func() {
		ui := newTrayUI()
		c := tray.NewController(dialer(o.control), ui, o.control, log)
		c.OpenStatus = func() error { return tray.OpenStatus(o.control) }
		go func() {
			<-ui.quit.ClickedCh
			systray.Quit()
		}()
		go func() {
			defer close(done)
			c.Run(ctx, o.interval, tray.Actions{Toggle: tray.Latch(ui.toggle.ClickedCh), Open: tray.Latch(ui.open.ClickedCh)})
		}()
		log.Info("tcpinc-tray started", "control", o.control, "interval", o.interval)
	}
	// A session that ends sends SIGTERM: leave through systray.Quit so
	// the item is withdrawn from the panel and the controller stops.
	sig, stopSig := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSig()
	go func() {
		<-sig.Done()
		systray.Quit()
	}()
	onExit := func() {
		cancel()
		<-done
	}
	systray.Run(onReady, onExit)
}

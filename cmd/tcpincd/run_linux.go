package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/divert"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
	"tcpinc.dev/tcpinc/platform_linux"
	"tcpinc.dev/tcpinc/service/control"
	"tcpinc.dev/tcpinc/service/version"
)

// resumeCacheSize is how many session secrets are kept for resumption.
const resumeCacheSize = 1024

func runDaemon(o runOptions, log *slog.Logger) error {
	if os.Geteuid() != 0 {
		return errors.New("tcpincd must run as root (it installs nftables rules and reads NFQUEUE); try: sudo tcpincd run")
	}
	// auto: divert is the only mode built on Linux so far.
	mode := "divert"

	d, err := platform_linux.NewDivert(platform_linux.Config{
		Queue:  o.queue,
		Queues: o.queues,
		Policy: core.Policy{Enabled: true, Resumption: true, ExcludePorts: o.excludePorts, ExcludeAddrs: o.excludeAddrs},
		Engine: divert.Config{Cache: tcpcrypt.NewCache(resumeCacheSize)},
		Log:    log,
	})
	if err != nil {
		return fmt.Errorf("starting divert mode: %w", err)
	}
	defer d.Close()

	ln, err := control.Listen(o.control)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Run until a signal or a failure; a control socket failure stops it too.
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()

	h := &handler{d: d, mode: mode}
	srvCtx, stopSrv := context.WithCancel(context.Background())
	defer stopSrv()
	srvDone := make(chan error, 1)
	go func() {
		err := control.Serve(srvCtx, ln, h)
		if err != nil {
			log.Error("control socket failed; stopping", "err", err)
			cancelRun()
		}
		srvDone <- err
	}()

	log.Info("tcpincd starting", "version", version.String(), "mode", mode, "queue_kind", d.QueueKind(),
		"queue", o.queue, "queues", o.queues, "control", o.control)

	h.running.Store(true)
	runErr := d.Run(runCtx)
	h.running.Store(false)
	if ctx.Err() != nil {
		log.Info("tcpincd stopping on signal")
	}

	stopSrv()
	srvErr := <-srvDone
	closeErr := d.Close()
	if err := errors.Join(runErr, srvErr, closeErr); err != nil {
		return err
	}
	log.Info("tcpincd stopped; rules removed")
	return nil
}

// handler answers control requests from the divert backend.
type handler struct {
	d       *platform_linux.Divert
	mode    string
	running atomic.Bool
}

func (h *handler) Status() (control.StatusReply, error) {
	return control.StatusReply{
		Version:  version.String(),
		Mode:     h.mode,
		Running:  h.running.Load(),
		Counters: h.d.Counters(),
		Conns:    len(h.d.Conns()),
	}, nil
}

func (h *handler) Conns() ([]control.ConnJSON, error) {
	cis := h.d.Conns()
	out := make([]control.ConnJSON, 0, len(cis))
	for _, ci := range cis {
		out = append(out, control.FromConnInfo(ci))
	}
	return out, nil
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"

	"tcpinc.dev/tcpinc/service/cli"
	"tcpinc.dev/tcpinc/service/config"
)

// isWindowsService reports whether the SCM started this process. The
// installed service says so itself (run --service), because this
// detection fails under wine and can fail on Windows; it remains for a
// service registered with a plain 'tcpincd run'.
func isWindowsService() bool {
	ok, err := svc.IsWindowsService()
	return err == nil && ok
}

// captureUnsupported: no signed WinDivert driver exists for this
// architecture, so do not even try (the reason is what status shows).
func captureUnsupported() error { return windowsCaptureUnsupported(runtime.GOARCH) }

// stopTimeout bounds how long a stop waits for the daemon: it resets the
// encrypted connections and closes WinDivert, which takes well under a
// second; the SCM is told to wait this long (the wait hint).
const stopTimeout = 25 * time.Second

// runUnderSCM runs the daemon as the Windows service: it answers the
// service control manager (svc.Run, without asking whether it should:
// see isWindowsService), logs to the event log under the source
// "tcpincd" (registered by the MSI and by 'tcpincd install'), and stays
// running when capture cannot start (daemon.Options.StayUp), so that a
// machine where WinDivert cannot load (arm64, driver missing or blocked,
// wine) still gets a service that says why in 'tcpinc status' and in the
// event log, rather than one restarted every 5 seconds by the recovery
// actions, or an install that Windows Installer rolls back.
func runUnderSCM(configPath string, cfg config.Config, found bool, level *slog.LevelVar, log *slog.Logger) error {
	if el, err := eventlog.Open(serviceName); err == nil {
		defer el.Close()
		log = slog.New(newServiceLogHandler(eventLogger{el}, level))
	} else {
		// stderr goes nowhere under the SCM; the status and the exit
		// code still tell.
		log.Warn("cannot open the event log; logging to stderr", "err", err)
	}
	h := &scmHandler{log: log, run: func(ctx context.Context) error {
		return runDaemonLoop(ctx, configPath, cfg, found, true, level, log, nil)
	}}
	if err := svc.Run(serviceName, h); err != nil {
		return fmt.Errorf("answering the service control manager (run --service is for the installed service; use plain 'tcpincd run' in a console): %w", err)
	}
	return h.err
}

// scmHandler is the svc.Handler of the tcpincd service.
type scmHandler struct {
	run func(ctx context.Context) error
	log *slog.Logger
	err error // what the daemon returned, for runUnderSCM
}

func (h *scmHandler) Execute(args []string, req <-chan svc.ChangeRequest, changes chan<- svc.Status) (svcSpecificEC bool, exitCode uint32) {
	changes <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.run(ctx) }()
	// RUNNING at once: the control pipe is up within milliseconds, and
	// capture starting or not does not decide whether the service runs.
	const accepts = svc.AcceptStop | svc.AcceptShutdown
	changes <- svc.Status{State: svc.Running, Accepts: accepts}
	for {
		select {
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				changes <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				changes <- svc.Status{State: svc.StopPending, WaitHint: uint32(stopTimeout / time.Millisecond)}
				cancel()
				select {
				case h.err = <-done:
				case <-time.After(stopTimeout):
					h.err = fmt.Errorf("tcpincd did not stop within %v", stopTimeout)
				}
				if h.err != nil {
					h.log.Error("tcpincd stopped with an error", "err", h.err)
					return true, cli.ExitFailure
				}
				return false, 0
			}
		case h.err = <-done:
			// The daemon ended by itself: with StayUp only for what a
			// restart may fix (the control pipe failed, or another
			// process holds its name). Exit without reporting STOPPED,
			// so that the SCM counts a failure and its recovery actions
			// restart the service.
			h.log.Error("tcpincd failed", "err", h.err)
			os.Exit(cli.ExitFailure)
		}
	}
}

// eventLogger gives the event log the kardianos/service Logger
// interface that serviceLogHandler writes to. The event ids are those
// of kardianos/service (1 info, 2 warning, 3 error), which the
// EventCreate.exe message file shows as the text itself.
type eventLogger struct{ l *eventlog.Log }

func (e eventLogger) Error(v ...any) error   { return e.l.Error(3, fmt.Sprint(v...)) }
func (e eventLogger) Warning(v ...any) error { return e.l.Warning(2, fmt.Sprint(v...)) }
func (e eventLogger) Info(v ...any) error    { return e.l.Info(1, fmt.Sprint(v...)) }
func (e eventLogger) Errorf(f string, a ...any) error {
	return e.l.Error(3, fmt.Sprintf(f, a...))
}
func (e eventLogger) Warningf(f string, a ...any) error {
	return e.l.Warning(2, fmt.Sprintf(f, a...))
}
func (e eventLogger) Infof(f string, a ...any) error {
	return e.l.Info(1, fmt.Sprintf(f, a...))
}

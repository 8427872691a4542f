package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"

	"github.com/kardianos/service"
)

// serviceLogHandler sends slog records to a service manager's logger
// (the Windows event log under the source "tcpincd"), formatted as
// slog's text handler formats them.
type serviceLogHandler struct {
	inner slog.Handler
	out   service.Logger
	state *logState
}

type logState struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func newServiceLogHandler(out service.Logger, level slog.Leveler) *serviceLogHandler {
	st := &logState{}
	// The event log stamps the time itself.
	noTime := func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	return &serviceLogHandler{inner: slog.NewTextHandler(&st.buf, &slog.HandlerOptions{Level: level, ReplaceAttr: noTime}), out: out, state: st}
}

func (h *serviceLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *serviceLogHandler) Handle(ctx context.Context, r slog.Record) error {
	h.state.mu.Lock()
	defer h.state.mu.Unlock()
	h.state.buf.Reset()
	if err := h.inner.Handle(ctx, r); err != nil {
		return err
	}
	msg := strings.TrimSuffix(h.state.buf.String(), "\n")
	switch {
	case r.Level >= slog.LevelError:
		return h.out.Error(msg)
	case r.Level >= slog.LevelWarn:
		return h.out.Warning(msg)
	}
	return h.out.Info(msg)
}

func (h *serviceLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &serviceLogHandler{inner: h.inner.WithAttrs(attrs), out: h.out, state: h.state}
}

func (h *serviceLogHandler) WithGroup(name string) slog.Handler {
	return &serviceLogHandler{inner: h.inner.WithGroup(name), out: h.out, state: h.state}
}

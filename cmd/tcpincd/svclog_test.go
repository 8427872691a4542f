package main

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

type recLogger struct{ lines []string }

func (r *recLogger) Error(v ...any) error {
	r.lines = append(r.lines, "E "+fmt.Sprint(v...))
	return nil
}
func (r *recLogger) Warning(v ...any) error {
	r.lines = append(r.lines, "W "+fmt.Sprint(v...))
	return nil
}
func (r *recLogger) Info(v ...any) error {
	r.lines = append(r.lines, "I "+fmt.Sprint(v...))
	return nil
}
func (r *recLogger) Errorf(f string, v ...any) error {
	return r.Error(fmt.Sprintf(f, v...))
}
func (r *recLogger) Warningf(f string, v ...any) error {
	return r.Warning(fmt.Sprintf(f, v...))
}
func (r *recLogger) Infof(f string, v ...any) error { return r.Info(fmt.Sprintf(f, v...)) }

func TestServiceLogHandler(t *testing.T) {
	rec := &recLogger{}
	level := new(slog.LevelVar)
	log := slog.New(newServiceLogHandler(rec, level)).With("mode", "divert")
	log.Debug("hidden")
	log.Info("starting", "n", 1)
	log.Warn("careful")
	log.Error("failed", "err", "boom")
	level.Set(slog.LevelDebug)
	log.Debug("shown")
	want := []string{"I ", "W ", "E ", "I "}
	if len(rec.lines) != 4 {
		t.Fatalf("lines %q", rec.lines)
	}
	for i, l := range rec.lines {
		if !strings.HasPrefix(l, want[i]) || !strings.Contains(l, "mode=divert") || strings.HasSuffix(l, "\n") {
			t.Errorf("line %d: %q", i, l)
		}
	}
	if !strings.HasPrefix(rec.lines[2], `E level=ERROR msg=failed`) || !strings.Contains(rec.lines[2], "err=boom") {
		t.Errorf("error line %q", rec.lines[2])
	}
}

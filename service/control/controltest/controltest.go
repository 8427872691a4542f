// Package controltest runs a control.Handler behind a real control
// listener for the tests of the control API's clients (tcpinc,
// tcpincapi, the tray), as net/http/httptest does for HTTP handlers.
package controltest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tcpinc.dev/tcpinc/service/control"
)

var pipeSeq atomic.Uint64

// SockPath returns a fresh control socket path for t: a named pipe
// unique to the process and call on Windows, elsewhere c.sock in a new
// directory under os.TempDir (sun_path holds about 100 bytes, and
// t.TempDir can be longer than that) that the test's cleanup removes.
func SockPath(t testing.TB) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		return fmt.Sprintf(`\\.\pipe\tcpinc-test-%d-%d`, os.Getpid(), pipeSeq.Add(1))
	}
	d, err := os.MkdirTemp("", "tcis")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return filepath.Join(d, "c.sock")
}

// Serve serves h on path until stop is called or the test ends. An
// error from control.Serve, or a Serve that does not return within 5 s
// of stop, fails t.
func Serve(t testing.TB, path string, h control.Handler) (stop func()) {
	t.Helper()
	ln, err := control.Listen(path)
	if err != nil {
		t.Fatalf("control.Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- control.Serve(ctx, ln, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("control.Serve: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("control.Serve did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

package simnet

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
)

// fakeT records failures instead of failing the real test, to test that
// the network reports errors.
type fakeT struct {
	testing.TB
	mu    sync.Mutex
	errs  []string
	fail  bool
	clean []func()
}

func (f *fakeT) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = true
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

func (f *fakeT) Failed() bool { return f.failed() }

func (f *fakeT) failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail
}

func (f *fakeT) msg() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprint(f.errs)
}

func (f *fakeT) Logf(string, ...any) {}
func (f *fakeT) Helper()             {}

func netipAddrPort(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

package platform_windows

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/windows"
)

// The tests here run against the stand-in WinDivert.dll of
// scripts/wine/windivert_mock.c, which scripts/wine/windivert-test.sh
// builds next to the test executable (the place tcpinc loads the real one
// from). On a machine without it (a real Windows with the real driver, or
// a plain `go test`), they skip.

// mock is the loaded stand-in with its test controls.
type mock struct {
	dll  *DLL
	path string
	mod  *windows.DLL

	queueRecv, takeSent, setOpenError, setVersion, failSendLength, setAsyncSend,
	maxConcurrentOpens, addressLayout, filter, param, pending, handles, reset *windows.Proc
}

func loadMock(t testing.TB) *mock {
	t.Helper()
	path, err := DefaultDLLPath()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no stand-in WinDivert.dll next to the test binary (%s); run make windivert-wine-test", path)
	}
	mod, err := windows.LoadDLL(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mod.FindProc("MockQueueRecv"); err != nil {
		t.Skipf("%s is not the stand-in WinDivert.dll; these tests need the mock", path)
	}
	dll, err := LoadDLL(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &mock{dll: dll, path: path, mod: mod}
	for _, p := range []struct {
		name string
		dst  **windows.Proc
	}{
		{"MockQueueRecv", &m.queueRecv}, {"MockTakeSent", &m.takeSent},
		{"MockSetOpenError", &m.setOpenError}, {"MockSetVersion", &m.setVersion},
		{"MockFailSendLength", &m.failSendLength}, {"MockSetAsyncSend", &m.setAsyncSend},
		{"MockMaxConcurrentOpens", &m.maxConcurrentOpens}, {"MockAddressLayout", &m.addressLayout},
		{"MockFilter", &m.filter}, {"MockParam", &m.param}, {"MockPending", &m.pending},
		{"MockHandles", &m.handles}, {"MockReset", &m.reset},
	} {
		*p.dst = mod.MustFindProc(p.name)
	}
	m.reset.Call()
	t.Cleanup(func() { m.reset.Call() })
	return m
}

func (m *mock) queue(t testing.TB, h windows.Handle, pkt []byte, a *Address) {
	t.Helper()
	r, _, _ := m.queueRecv.Call(uintptr(h), uintptr(unsafe.Pointer(&pkt[0])), uintptr(len(pkt)), uintptr(unsafe.Pointer(a)))
	if r == 0 {
		t.Fatalf("MockQueueRecv refused a %d-byte packet", len(pkt))
	}
}

// take returns the next packet injected on h, or nil after timeoutMs.
func (m *mock) take(h windows.Handle, timeoutMs uint32) ([]byte, Address) {
	buf := make([]byte, MTUMax)
	var a Address
	r, _, _ := m.takeSent.Call(uintptr(h), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(unsafe.Pointer(&a)), uintptr(timeoutMs))
	if int32(r) <= 0 {
		return nil, a
	}
	return buf[:int32(r)], a
}

func (m *mock) openError(code uint32)    { m.setOpenError.Call(uintptr(code)) }
func (m *mock) version(major, minor int) { m.setVersion.Call(uintptr(major), uintptr(minor)) }
func (m *mock) failLength(n int)         { m.failSendLength.Call(uintptr(n)) }
func (m *mock) asyncSend(on bool)        { m.setAsyncSend.Call(uintptr(b2i(on))) }
func (m *mock) pendingRecv(h windows.Handle) int {
	r, _, _ := m.pending.Call(uintptr(h))
	return int(int32(r))
}

func (m *mock) paramOf(h windows.Handle, p Param) uint64 {
	r, _, _ := m.param.Call(uintptr(h), uintptr(p))
	return uint64(r)
}

func (m *mock) filterOf(h windows.Handle) string {
	buf := make([]byte, 4096)
	r, _, _ := m.filter.Call(uintptr(h), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	if int32(r) < 0 {
		return ""
	}
	return string(buf[:r])
}

func (m *mock) openHandles() []windows.Handle {
	hs := make([]windows.Handle, 64)
	r, _, _ := m.handles.Call(uintptr(unsafe.Pointer(&hs[0])), uintptr(len(hs)))
	return hs[:r]
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sysDir is System32, for loading a DLL that is not WinDivert.
func sysDir(t testing.TB) string {
	d, err := windows.GetSystemDirectory()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// open opens a handle on the stand-in at the network layer, which the
// test's cleanup closes.
func (m *mock) open(t testing.TB, filter string) *Handle {
	t.Helper()
	h, err := m.dll.Open(filter, LayerNetwork, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// batch makes a batch buffer with newBatch (NewRecvBuffer or NewSendBuffer)
// that the test's cleanup frees.
func batch[B interface{ Close() }](t testing.TB, newBatch func(int) (B, error), dataSize int) B {
	t.Helper()
	b, err := newBatch(dataSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

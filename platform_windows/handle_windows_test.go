package platform_windows

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// TestMockAddressLayout: the C compiler's bit fields (the mock declares
// WINDIVERT_ADDRESS as documented) land where Address reads them.
func TestMockAddressLayout(t *testing.T) {
	m := loadMock(t)
	var a Address
	m.addressLayout.Call(uintptr(unsafe.Pointer(&a)))
	if a.Timestamp != 0x0102030405060708 || a.Layer() != LayerReflect || a.Event() != 9 {
		t.Errorf("timestamp %#x layer %d event %d", a.Timestamp, a.Layer(), a.Event())
	}
	if !a.Outbound() || !a.Impostor() || !a.IPv6() || !a.TCPChecksum() {
		t.Error("a flag the C side set reads as clear")
	}
	if a.Sniffed() || a.Loopback() || a.IPChecksum() || a.UDPChecksum() {
		t.Error("a flag the C side left clear reads as set")
	}
	if i, s := a.Interface(); i != 7 || s != 5 {
		t.Errorf("interface %d.%d", i, s)
	}
}

func TestLoadDLLErrors(t *testing.T) {
	loadMock(t)
	if _, err := LoadDLL("WinDivert.dll"); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("relative path: %v", err)
	}
	// A directory that does not exist (t.TempDir's cleanup fails under wine).
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("tcpinc-test-%d-nonexistent", os.Getpid()))
	_, err := LoadDLL(filepath.Join(dir, "WinDivert.dll"))
	var we *Error
	if !errors.As(err, &we) || !strings.Contains(err.Error(), "WinDivert.dll is not in "+dir) {
		t.Errorf("missing DLL: %v", err)
	}
	// A placeholder file (the test MSI's) is not a DLL at all.
	ph, err := os.MkdirTemp("", "tcpinc-placeholder")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(ph)
	os.WriteFile(filepath.Join(ph, DLLName), []byte("PLACEHOLDER - NOT WINDIVERT\n"), 0o644)
	_, err = LoadDLL(filepath.Join(ph, DLLName))
	if !errors.As(err, &we) || !strings.Contains(err.Error(), "not a loadable x64 DLL") {
		t.Errorf("placeholder DLL: %v", err)
	}
	// A DLL that is not WinDivert lacks the functions.
	_, err = LoadDLL(filepath.Join(sysDir(t), "version.dll"))
	if !errors.As(err, &we) || !strings.Contains(err.Error(), "WinDivertOpen") || !strings.Contains(err.Error(), "not version 2.x") {
		t.Errorf("not WinDivert: %v", err)
	}
}

// TestOpenErrors: WinDivertOpen's documented failures come back as
// *Error with the errno and advice.
func TestOpenErrors(t *testing.T) {
	m := loadMock(t)
	for code, want := range map[uint32]string{
		codeFileNotFound:            "WinDivert64.sys is not next to WinDivert.dll in " + filepath.Dir(m.path),
		codeAccessDenied:            "Administrator",
		codeInvalidImageHash:        "signature",
		codeDriverFailedPriorUnload: "another product",
		codeDriverBlocked:           "security software",
		codeEptNotRegistered:        "Base Filtering Engine",
	} {
		m.openError(code)
		_, err := m.dll.Open("true", LayerNetwork, 0, 0)
		var we *Error
		if !errors.As(err, &we) || we.Code != code || !errors.Is(err, syscall.Errno(code)) || !strings.Contains(err.Error(), want) {
			t.Errorf("error %d: %v", code, err)
		}
	}
	m.openError(0)
	// The mock checks arguments as the DLL documents.
	if _, err := m.dll.Open("true", LayerNetwork, 0, 1<<20); !errors.Is(err, syscall.Errno(codeInvalidParameter)) {
		t.Errorf("bad flags: %v", err)
	}
	h, err := m.dll.Open("tcp", LayerNetwork, -5, FlagFragments)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if got := m.filterOf(h.h); got != "tcp" {
		t.Errorf("filter %q", got)
	}
}

// TestOpenSerialised: concurrent opens never run inside WinDivertOpen at
// the same time (the DLL's first open installs the driver service).
func TestOpenSerialised(t *testing.T) {
	m := loadMock(t)
	var wg sync.WaitGroup
	hs := make([]*Handle, 8)
	for i := range hs {
		wg.Go(func() {
			h, err := m.dll.Open("false", LayerNetwork, int16(i), 0)
			if err != nil {
				t.Error(err)
				return
			}
			hs[i] = h
		})
	}
	wg.Wait()
	for _, h := range hs {
		if h != nil {
			h.Close()
		}
	}
	if r, _, _ := m.maxConcurrentOpens.Call(); r != 1 {
		t.Errorf("%d WinDivertOpen calls ran at once", r)
	}
}

func TestParams(t *testing.T) {
	m := loadMock(t)
	h := m.open(t, "false")
	for _, c := range []struct {
		p Param
		v uint64
	}{{ParamQueueLength, 8192}, {ParamQueueTime, 2000}, {ParamQueueSize, 8 << 20}} {
		if err := h.SetParam(c.p, c.v); err != nil {
			t.Fatal(err)
		}
		if got, err := h.Param(c.p); err != nil || got != c.v || m.paramOf(h.h, c.p) != c.v {
			t.Errorf("param %d: %d %v", c.p, got, err)
		}
	}
	if err := h.SetParam(ParamQueueLength, 20000); !errors.Is(err, syscall.Errno(codeInvalidParameter)) || !strings.Contains(err.Error(), "WinDivertSetParam") {
		t.Errorf("out of range: %v", err)
	}
	m.version(2, 1)
	h2 := m.open(t, "false")
	if major, minor, err := h2.Version(); err != nil || major != 2 || minor != 1 {
		t.Errorf("version %d.%d %v", major, minor, err)
	}
}

// testPackets makes n distinct IPv4 and IPv6 TCP packets of varied sizes.
func testPackets(n int) ([][]byte, []Address) {
	pkts := make([][]byte, n)
	addrs := make([]Address, n)
	for i := range n {
		size := 40 + (i*37)%1460
		var b []byte
		if i%3 == 2 {
			b = ipv6Packet(size)
			addrs[i].SetIPv6(true)
		} else {
			b = ipv4Packet(size + 20)
		}
		for j := 40; j < len(b); j++ {
			b[j] = byte(i + j)
		}
		pkts[i] = b
		addrs[i].Timestamp = int64(i)
		addrs[i].SetOutbound(i%2 == 0)
		addrs[i].SetTCPChecksum(i%4 == 0)
		addrs[i].SetInterface(uint32(i), uint32(i/2))
	}
	return pkts, addrs
}

// TestRecvSendBatches: 600 packets arrive in batches of at most 255 with
// their addresses, and go back out in order through batched sends, with
// and without overlapped completion.
func TestRecvSendBatches(t *testing.T) {
	m := loadMock(t)
	h := m.open(t, "tcp")
	pkts, addrs := testPackets(600)
	for i := range pkts {
		m.queue(t, h.h, pkts[i], &addrs[i])
	}
	rb := batch(t, NewRecvBuffer, 0) // MTUMax: about 60 packets per batch
	big := batch(t, NewRecvBuffer, 1<<20)
	sb := batch(t, NewSendBuffer, 1<<20)
	got, batches, maxBatch := 0, 0, 0
	for got < len(pkts) {
		b := rb
		if batches%2 == 1 {
			b = big
		}
		if err := h.Recv(b); err != nil {
			t.Fatal(err)
		}
		batches++
		maxBatch = max(maxBatch, b.Len())
		for i := range b.Len() {
			p, a := b.Packet(i)
			if !bytes.Equal(p, pkts[got]) || *a != addrs[got] {
				t.Fatalf("packet %d differs", got)
			}
			if cap(p) != len(p) {
				t.Fatal("packet slices must be capped")
			}
			if !sb.Add(p, a) {
				if _, err := h.Send(sb); err != nil {
					t.Fatal(err)
				}
				sb.Add(p, a)
			}
			got++
		}
	}
	m.asyncSend(true)
	if failed, err := h.Send(sb); failed != 0 || err != nil {
		t.Fatal(failed, err)
	}
	m.asyncSend(false)
	if maxBatch != BatchMax {
		t.Errorf("largest batch %d, want %d", maxBatch, BatchMax)
	}
	for i := range pkts {
		p, a := m.take(h.h, 1000)
		if !bytes.Equal(p, pkts[i]) || a != addrs[i] {
			t.Fatalf("sent packet %d differs", i)
		}
	}
	t.Logf("%d packets in %d batches", got, batches)
}

// TestRecvPending: an overlapped receive waits, completes when a packet
// arrives, and a second reader is refused meanwhile.
func TestRecvPending(t *testing.T) {
	m := loadMock(t)
	h := m.open(t, "tcp")
	rb := batch(t, NewRecvBuffer, 0)
	done, err := h.StartRecv(rb)
	if err != nil || done {
		t.Fatalf("StartRecv on an empty queue: done %v err %v", done, err)
	}
	if m.pendingRecv(h.h) != 1 {
		t.Fatal("no receive pending in the driver")
	}
	rb2 := batch(t, NewRecvBuffer, 0)
	if _, err := h.StartRecv(rb2); !errors.Is(err, errConcurrentRecv) {
		t.Errorf("second reader: %v", err)
	}
	if err := h.FinishRecv(rb, false); !errors.Is(err, windows.ERROR_IO_INCOMPLETE) {
		t.Errorf("FinishRecv before completion: %v", err)
	}
	pkts, addrs := testPackets(1)
	go func() {
		time.Sleep(20 * time.Millisecond)
		m.queue(t, h.h, pkts[0], &addrs[0])
	}()
	if ev, _ := windows.WaitForSingleObject(rb.Event(), 5000); ev != windows.WAIT_OBJECT_0 {
		t.Fatal("the receive's event was not signalled")
	}
	if err := h.FinishRecv(rb, false); err != nil || rb.Len() != 1 {
		t.Fatalf("FinishRecv: %v, %d packets", err, rb.Len())
	}
	if p, _ := rb.Packet(0); !bytes.Equal(p, pkts[0]) {
		t.Error("packet differs")
	}
}

// TestShutdownEndsRecv: shutting the receive side down completes a
// pending receive with ErrShutdown once the queue is empty, after the
// queued packets were still delivered.
func TestShutdownEndsRecv(t *testing.T) {
	m := loadMock(t)
	h := m.open(t, "tcp")
	rb := batch(t, NewRecvBuffer, 0)
	pkts, addrs := testPackets(3)
	for i := range pkts {
		m.queue(t, h.h, pkts[i], &addrs[i])
	}
	if err := h.Shutdown(ShutdownRecv); err != nil {
		t.Fatal(err)
	}
	if err := h.Recv(rb); err != nil || rb.Len() != 3 {
		t.Fatalf("queued packets after shutdown: %v, %d", err, rb.Len())
	}
	if err := h.Recv(rb); !errors.Is(err, ErrShutdown) {
		t.Fatalf("empty after shutdown: %v", err)
	}
	// And a receive pending at the time of the shutdown.
	h2 := m.open(t, "tcp")
	if done, err := h2.StartRecv(rb); done || err != nil {
		t.Fatal(done, err)
	}
	h2.Shutdown(ShutdownBoth)
	if err := h2.FinishRecv(rb, true); !errors.Is(err, ErrShutdown) {
		t.Fatalf("pending receive at shutdown: %v", err)
	}
}

// TestSendIsolatesBadPacket: when the driver refuses a batch, each packet
// is sent alone and only the bad one is lost.
func TestSendIsolatesBadPacket(t *testing.T) {
	m := loadMock(t)
	h := m.open(t, "tcp")
	sb := batch(t, NewSendBuffer, 0)
	var a Address
	for _, n := range []int{40, 60, 80} {
		sb.Add(ipv4Packet(n), &a)
	}
	m.failLength(60)
	failed, err := h.Send(sb)
	if failed != 1 || !errors.Is(err, syscall.Errno(codeInvalidParameter)) {
		t.Fatalf("failed %d err %v", failed, err)
	}
	for _, want := range []int{40, 80} {
		if p, _ := m.take(h.h, 1000); len(p) != want {
			t.Fatalf("sent %d bytes, want %d", len(p), want)
		}
	}
	if p, _ := m.take(h.h, 10); p != nil {
		t.Fatal("the bad packet was sent")
	}
	if sb.Len() != 0 {
		t.Error("Send did not empty the batch")
	}
	if sb.Add(make([]byte, MTUMax+1), &a) || sb.Add(nil, &a) {
		t.Error("Add took an impossible packet")
	}
}

// BenchmarkBatchRoundTrip: 255 packets of 1500 bytes through one
// receive and one send batch (the binding's own cost plus the stand-in's
// copies; the real driver's is not included).
func BenchmarkBatchRoundTrip(b *testing.B) {
	m := loadMock(b)
	h := m.open(b, "tcp")
	rb := batch(b, NewRecvBuffer, 512<<10)
	sb := batch(b, NewSendBuffer, 512<<10)
	pkt := ipv4Packet(1500)
	var a Address
	drain := make([]byte, MTUMax)
	b.SetBytes(BatchMax * 1500)
	for b.Loop() {
		b.StopTimer()
		for range BatchMax {
			m.queue(b, h.h, pkt, &a)
		}
		b.StartTimer()
		if err := h.Recv(rb); err != nil || rb.Len() != BatchMax {
			b.Fatal(err, rb.Len())
		}
		for i := range rb.Len() {
			p, pa := rb.Packet(i)
			sb.Add(p, pa)
		}
		if _, err := h.Send(sb); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		for range BatchMax {
			var x Address
			m.takeSent.Call(uintptr(h.h), uintptr(unsafe.Pointer(&drain[0])), uintptr(len(drain)), uintptr(unsafe.Pointer(&x)), 0)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*BatchMax), "ns/packet")
}

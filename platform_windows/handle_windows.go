package platform_windows

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// ErrShutdown is returned by receives on a handle whose receive side was
// shut down once its queue is empty (ERROR_NO_DATA).
var ErrShutdown = errors.New("windivert: handle shut down")

// errConcurrentRecv: WinDivert handles have one reader.
var errConcurrentRecv = errors.New("windivert: a receive is already pending on this handle (one reader per handle; open one handle per worker)")

// openMu serialises WinDivertOpen within the process: the first open
// installs and starts the driver service, and concurrent first opens race
// in the service manager (one of them fails spuriously).
var openMu sync.Mutex

// Handle is an open WinDivert handle. Send, Param and SetParam may be
// called from any goroutine; receives from one goroutine at a time.
type Handle struct {
	dll    *DLL
	h      windows.Handle
	filter string

	receiving atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Open opens a handle with WinDivertOpen. The first open in the system
// loads the driver (WinDivert64.sys next to the DLL), which needs
// Administrator rights.
func (d *DLL) Open(filter string, layer Layer, priority int16, flags uint64) (*Handle, error) {
	f, err := syscall.BytePtrFromString(filter)
	if err != nil {
		return nil, fmt.Errorf("windivert: filter %q: %w", filter, err)
	}
	openMu.Lock()
	r, _, e := syscall.SyscallN(d.open, uintptr(unsafe.Pointer(f)), uintptr(layer), uintptr(int64(priority)), uintptr(flags))
	openMu.Unlock()
	if windows.Handle(r) == windows.InvalidHandle {
		return nil, wrapErr(opOpen, errnoOr(e), filepath.Dir(d.path))
	}
	return &Handle{dll: d, h: windows.Handle(r), filter: filter}, nil
}

// errnoOr keeps a zero errno from hiding a failure.
func errnoOr(e syscall.Errno) error {
	if e == 0 {
		return syscall.Errno(windows.ERROR_GEN_FAILURE)
	}
	return e
}

// Filter is the filter the handle was opened with.
func (h *Handle) Filter() string { return h.filter }

// SetParam sets a queue parameter.
func (h *Handle) SetParam(p Param, v uint64) error {
	r, _, e := syscall.SyscallN(h.dll.setParam, uintptr(h.h), uintptr(p), uintptr(v))
	if r == 0 {
		return wrapErr(opParam, errnoOr(e), "")
	}
	return nil
}

// Param reads a parameter.
func (h *Handle) Param(p Param) (uint64, error) {
	var v uint64
	r, _, e := syscall.SyscallN(h.dll.getParam, uintptr(h.h), uintptr(p), uintptr(unsafe.Pointer(&v)))
	if r == 0 {
		return 0, wrapErr("WinDivertGetParam", errnoOr(e), "")
	}
	return v, nil
}

// Version is the loaded driver's version.
func (h *Handle) Version() (major, minor uint64, err error) {
	if major, err = h.Param(ParamVersionMajor); err != nil {
		return 0, 0, err
	}
	minor, err = h.Param(ParamVersionMinor)
	return major, minor, err
}

// Shutdown stops receiving (new packets pass the handle by; a pending or
// later receive fails with ErrShutdown once the queue is empty), sending,
// or both.
func (h *Handle) Shutdown(how int) error {
	r, _, e := syscall.SyscallN(h.dll.shutdown, uintptr(h.h), uintptr(how))
	if r == 0 {
		return wrapErr("WinDivertShutdown", errnoOr(e), "")
	}
	return nil
}

// Close closes the handle; packets queued on it and not yet received are
// lost (WinDivert drops them). No receive may be pending: shut the handle
// down and finish the receive first.
func (h *Handle) Close() error {
	h.closeOnce.Do(func() {
		r, _, e := syscall.SyscallN(h.dll.close, uintptr(h.h))
		if r == 0 {
			h.closeErr = wrapErr("WinDivertClose", errnoOr(e), "")
		}
	})
	return h.closeErr
}

// arena is memory outside the Go heap for what the driver writes after
// the call that gave it returned (overlapped I/O): OVERLAPPED, lengths,
// addresses and packets must stay put and alive until completion.
type arena struct {
	base uintptr
	b    []byte
}

func newArena(size int) (*arena, error) {
	p, err := windows.VirtualAlloc(0, uintptr(size), windows.MEM_COMMIT|windows.MEM_RESERVE, windows.PAGE_READWRITE)
	if err != nil {
		return nil, fmt.Errorf("windivert: allocating %d bytes for packet buffers: %w", size, err)
	}
	return &arena{base: p, b: unsafe.Slice((*byte)(*(*unsafe.Pointer)(unsafe.Pointer(&p))), size)}, nil
}

func (a *arena) free() {
	if a.base != 0 {
		windows.VirtualFree(a.base, 0, windows.MEM_RELEASE)
		a.base, a.b = 0, nil
	}
}

// arenaHeader is the start of an arena: the OVERLAPPED and the lengths.
type arenaHeader struct {
	ov      windows.Overlapped
	dataLen uint32 // pRecvLen / pSendLen
	addrLen uint32 // pAddrLen
}

const headerSize = (int(unsafe.Sizeof(arenaHeader{})) + 15) &^ 15

// batchMem lays out an arena as header, BatchMax addresses, packet bytes.
type batchMem struct {
	ar    *arena
	hdr   *arenaHeader
	addrs []Address // BatchMax
	data  []byte
	event windows.Handle // manual reset; the OVERLAPPED's hEvent
}

func newBatchMem(dataSize int) (batchMem, error) {
	if dataSize < MTUMax {
		dataSize = MTUMax
	}
	addrOff := headerSize
	dataOff := addrOff + BatchMax*AddressSize
	ar, err := newArena(dataOff + dataSize)
	if err != nil {
		return batchMem{}, err
	}
	ev, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		ar.free()
		return batchMem{}, fmt.Errorf("windivert: creating an event: %w", err)
	}
	m := batchMem{
		ar:    ar,
		hdr:   (*arenaHeader)(unsafe.Pointer(&ar.b[0])),
		addrs: unsafe.Slice((*Address)(unsafe.Pointer(&ar.b[addrOff])), BatchMax),
		data:  ar.b[dataOff:],
		event: ev,
	}
	m.hdr.ov.HEvent = ev
	return m, nil
}

func (m *batchMem) free() {
	if m.event != 0 {
		windows.CloseHandle(m.event)
		m.event = 0
	}
	m.ar.free()
}

// RecvBuffer receives batches of packets with overlapped I/O. Its memory
// lives outside the Go heap; Close frees it (not while a receive is
// pending).
type RecvBuffer struct {
	m       batchMem
	pending bool
	leaked  bool
	n       int   // packets in the completed batch
	offs    []int // their offsets in m.data, n+1 entries
	err     error // the batch could not be split into packets
}

// NewRecvBuffer allocates a receive buffer of dataSize packet bytes (at
// least MTUMax, so any single packet fits).
func NewRecvBuffer(dataSize int) (*RecvBuffer, error) {
	m, err := newBatchMem(dataSize)
	if err != nil {
		return nil, err
	}
	return &RecvBuffer{m: m, offs: make([]int, 0, BatchMax+1)}, nil
}

// Event is signalled when a started receive completes.
func (r *RecvBuffer) Event() windows.Handle { return r.m.event }

// Len is the number of packets of the last completed receive.
func (r *RecvBuffer) Len() int { return r.n }

// Packet returns packet i of the last completed receive and its address.
// Both alias the buffer until the next receive starts.
func (r *RecvBuffer) Packet(i int) ([]byte, *Address) {
	return r.m.data[r.offs[i]:r.offs[i+1]:r.offs[i+1]], &r.m.addrs[i]
}

// Close frees the buffer. If a receive is still pending the memory is
// leaked rather than freed under the driver's feet.
func (r *RecvBuffer) Close() {
	if r.pending {
		r.leaked = true
		return
	}
	r.m.free()
}

// StartRecv starts a batched overlapped WinDivertRecvEx into r. It
// reports whether the receive completed at once; otherwise r.Event() is
// signalled when it does, and FinishRecv collects it.
func (h *Handle) StartRecv(r *RecvBuffer) (done bool, err error) {
	if r.pending {
		return false, errConcurrentRecv
	}
	if !h.receiving.CompareAndSwap(false, true) {
		return false, errConcurrentRecv
	}
	r.n, r.offs, r.err = 0, r.offs[:0], nil
	hdr := r.m.hdr
	hdr.ov.Internal, hdr.ov.InternalHigh = 0, 0
	hdr.dataLen = 0
	hdr.addrLen = uint32(len(r.m.addrs) * AddressSize)
	windows.ResetEvent(r.m.event)
	ok, _, e := syscall.SyscallN(h.dll.recvEx, uintptr(h.h),
		uintptr(unsafe.Pointer(&r.m.data[0])), uintptr(len(r.m.data)),
		uintptr(unsafe.Pointer(&hdr.dataLen)), 0,
		uintptr(unsafe.Pointer(&r.m.addrs[0])), uintptr(unsafe.Pointer(&hdr.addrLen)),
		uintptr(unsafe.Pointer(&hdr.ov)))
	if ok != 0 {
		r.pending = true
		return true, h.FinishRecv(r, false)
	}
	if e == windows.ERROR_IO_PENDING {
		r.pending = true
		return false, nil
	}
	h.receiving.Store(false)
	return false, h.recvErr(e)
}

func (h *Handle) recvErr(e syscall.Errno) error {
	if e == windows.ERROR_NO_DATA {
		return ErrShutdown
	}
	return wrapErr(opRecv, errnoOr(e), "")
}

// FinishRecv collects a receive StartRecv started, waiting for it if wait
// is set. Without wait it must only be called once r.Event() is
// signalled. Afterwards r.Len and r.Packet describe the batch.
func (h *Handle) FinishRecv(r *RecvBuffer, wait bool) error {
	if !r.pending {
		return errors.New("windivert: no receive pending")
	}
	var n uint32
	err := windows.GetOverlappedResult(h.h, &r.m.hdr.ov, &n, wait)
	if errors.Is(err, windows.ERROR_IO_INCOMPLETE) {
		return err // still pending: the caller waits again
	}
	r.pending = false
	h.receiving.Store(false)
	if err != nil {
		var e syscall.Errno
		if errors.As(err, &e) {
			if e == windows.ERROR_INSUFFICIENT_BUFFER {
				// The first packet did not fit; it is truncated and
				// useless. Cannot happen with a buffer of MTUMax.
				return wrapErr(opRecv, e, "")
			}
			return h.recvErr(e)
		}
		return fmt.Errorf("windivert: %s: %w", opRecv, err)
	}
	count := int(r.m.hdr.addrLen) / AddressSize
	if count > BatchMax {
		count = BatchMax
	}
	r.offs, r.err = splitBatch(r.m.data[:min(int(n), len(r.m.data))], count, r.offs[:0])
	if r.err != nil {
		r.n = 0
		return r.err
	}
	r.n = count
	return nil
}

// Recv receives one batch, blocking until it arrives.
func (h *Handle) Recv(r *RecvBuffer) error {
	done, err := h.StartRecv(r)
	if err != nil || done {
		return err
	}
	return h.FinishRecv(r, true)
}

// CancelRecv ends a pending receive: WinDivert completes it when the
// handle is shut down (ErrShutdown) or the I/O is cancelled. It waits up
// to timeout; a receive that still has not completed keeps its buffer
// forever (Close leaks it) so the driver never writes into freed memory.
func (h *Handle) CancelRecv(r *RecvBuffer, timeout time.Duration) {
	if !r.pending {
		return
	}
	windows.CancelIoEx(h.h, &r.m.hdr.ov)
	ev, _ := windows.WaitForSingleObject(r.m.event, uint32(timeout/time.Millisecond))
	if ev == windows.WAIT_OBJECT_0 {
		h.FinishRecv(r, false)
	}
}

// SendBuffer collects packets for one batched WinDivertSendEx.
type SendBuffer struct {
	m    batchMem
	n    int
	used int
	offs [BatchMax + 1]int
}

// NewSendBuffer allocates a send buffer of dataSize packet bytes (at
// least MTUMax).
func NewSendBuffer(dataSize int) (*SendBuffer, error) {
	m, err := newBatchMem(dataSize)
	if err != nil {
		return nil, err
	}
	return &SendBuffer{m: m}, nil
}

// Len is the number of packets waiting to be sent.
func (s *SendBuffer) Len() int { return s.n }

// Fits reports whether a packet of n bytes fits the batch.
func (s *SendBuffer) Fits(n int) bool { return s.n < BatchMax && s.used+n <= len(s.m.data) }

// Add appends a packet and its address (copied); false when the batch is
// full (send it first) or the packet is larger than MTUMax.
func (s *SendBuffer) Add(pkt []byte, addr *Address) bool {
	if len(pkt) == 0 || len(pkt) > MTUMax || !s.Fits(len(pkt)) {
		return false
	}
	copy(s.m.data[s.used:], pkt)
	s.m.addrs[s.n] = *addr
	s.offs[s.n] = s.used
	s.used += len(pkt)
	s.n++
	s.offs[s.n] = s.used
	return true
}

// Reset empties the batch.
func (s *SendBuffer) Reset() { s.n, s.used = 0, 0 }

// Close frees the buffer.
func (s *SendBuffer) Close() { s.m.free() }

// Send injects the batch and empties it. If WinDivert refuses the batch,
// each packet is sent on its own so one bad packet costs only itself;
// failed is how many were not injected and err the first reason.
func (h *Handle) Send(s *SendBuffer) (failed int, err error) {
	defer s.Reset()
	if s.n == 0 {
		return 0, nil
	}
	if err = h.sendRange(s, 0, s.n); err == nil || s.n == 1 {
		if err != nil {
			return 1, err
		}
		return 0, nil
	}
	err = nil
	for i := range s.n {
		if e := h.sendRange(s, i, i+1); e != nil {
			failed++
			if err == nil {
				err = e
			}
		}
	}
	return failed, err
}

// sendRange sends packets [i, j) of s and waits for completion.
func (h *Handle) sendRange(s *SendBuffer, i, j int) error {
	hdr := s.m.hdr
	hdr.ov.Internal, hdr.ov.InternalHigh = 0, 0
	hdr.dataLen = 0
	windows.ResetEvent(s.m.event)
	ok, _, e := syscall.SyscallN(h.dll.sendEx, uintptr(h.h),
		uintptr(unsafe.Pointer(&s.m.data[s.offs[i]])), uintptr(s.offs[j]-s.offs[i]),
		uintptr(unsafe.Pointer(&hdr.dataLen)), 0,
		uintptr(unsafe.Pointer(&s.m.addrs[i])), uintptr((j-i)*AddressSize),
		uintptr(unsafe.Pointer(&hdr.ov)))
	if ok == 0 {
		if e != windows.ERROR_IO_PENDING {
			return wrapErr(opSend, errnoOr(e), "")
		}
		var n uint32
		if err := windows.GetOverlappedResult(h.h, &hdr.ov, &n, true); err != nil {
			return wrapErr(opSend, err, "")
		}
	}
	return nil
}

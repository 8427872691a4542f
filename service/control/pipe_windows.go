package control

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// The control transport on Windows is a named pipe: AF_UNIX sockets need
// Windows 10 1803 and fail under wine (WSAEAFNOSUPPORT), and a pipe's
// security descriptor and client process id give what the Unix socket's
// file mode and SO_PEERCRED give elsewhere.
//
// Handles are opened for overlapped I/O. The listener waits for
// ConnectNamedPipe on an event of its own; once a client is connected the
// handle goes to os.NewFile, which associates it with the runtime's I/O
// completion port, so reads, writes, deadlines and Close (which cancels
// pending I/O) work as for a socket, without a thread per connection.

// pipeBufSize is the pipe's buffer size each way: a hint to the system,
// which grows it as needed; larger replies are written in pieces.
const pipeBufSize = 64 << 10

// pipeAddr is a pipe's name, as a net.Addr.
type pipeAddr string

func (a pipeAddr) Network() string { return "pipe" }
func (a pipeAddr) String() string  { return string(a) }

// pipeListener is a net.Listener on a named pipe. It always holds one
// instance waiting for a client, so that the name stays this process's
// between Accepts (a pipe name with no instance could be created anew
// by anyone).
type pipeListener struct {
	name   string
	name16 *uint16
	sa     *windows.SecurityAttributes

	closed windows.Handle // manual-reset event, set by Close

	mu        sync.Mutex
	next      windows.Handle // the instance the next Accept waits on; 0 when none
	isClose   bool
	accepting sync.WaitGroup // Accepts in progress, which wait on closed
}

// listenPipe creates the first instance of the pipe name with the
// security descriptor sddl. It fails if an instance of that name exists
// already, whoever made it: a second tcpincd, or a process squatting the
// name.
func listenPipe(name, sddl string) (*pipeListener, error) {
	name16, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return nil, err
	}
	sd, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		return nil, fmt.Errorf("control pipe security descriptor %q: %w", sddl, err)
	}
	sa := &windows.SecurityAttributes{Length: uint32(unsafe.Sizeof(windows.SecurityAttributes{})), SecurityDescriptor: sd}
	// FILE_FLAG_FIRST_PIPE_INSTANCE below refuses a name in use; wine
	// ignores that flag, so ask first too (without connecting).
	if err := waitNamedPipe(name16, 1); err == nil || errors.Is(err, windows.ERROR_SEM_TIMEOUT) {
		return nil, fmt.Errorf("%s is in use by another process (another tcpincd? stop it first, or set another control.socket)", name)
	}
	ev, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		return nil, fmt.Errorf("CreateEvent: %w", err)
	}
	l := &pipeListener{name: name, name16: name16, sa: sa, closed: ev}
	h, err := l.newInstance(true)
	if err != nil {
		windows.CloseHandle(ev)
		switch {
		case errors.Is(err, windows.ERROR_ACCESS_DENIED), errors.Is(err, windows.ERROR_PIPE_BUSY):
			return nil, fmt.Errorf("%s is in use by another process (another tcpincd? stop it first, or set another control.socket): %w", name, err)
		case errors.Is(err, windows.ERROR_INVALID_OWNER):
			return nil, fmt.Errorf("creating %s: %w (run tcpincd as LocalSystem or from an elevated prompt)", name, err)
		}
		return nil, fmt.Errorf("creating %s: %w", name, err)
	}
	l.next = h
	return l, nil
}

func (l *pipeListener) newInstance(first bool) (windows.Handle, error) {
	flags := uint32(windows.PIPE_ACCESS_DUPLEX | windows.FILE_FLAG_OVERLAPPED)
	if first {
		flags |= windows.FILE_FLAG_FIRST_PIPE_INSTANCE
	}
	mode := uint32(windows.PIPE_TYPE_BYTE | windows.PIPE_READMODE_BYTE | windows.PIPE_WAIT | windows.PIPE_REJECT_REMOTE_CLIENTS)
	return windows.CreateNamedPipe(l.name16, flags, mode, windows.PIPE_UNLIMITED_INSTANCES,
		pipeBufSize, pipeBufSize, 0, l.sa)
}

// Accept waits for a client and returns its connection.
func (l *pipeListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.isClose {
		l.mu.Unlock()
		return nil, net.ErrClosed
	}
	l.accepting.Add(1)
	l.mu.Unlock()
	defer l.accepting.Done()
	for {
		l.mu.Lock()
		if l.isClose {
			l.mu.Unlock()
			return nil, net.ErrClosed
		}
		h := l.next
		l.next = 0
		l.mu.Unlock()
		if h == 0 {
			var err error
			if h, err = l.newInstance(false); err != nil {
				return nil, &net.OpError{Op: "accept", Net: "pipe", Addr: pipeAddr(l.name), Err: err}
			}
		}
		// The next instance first: while this one is being connected
		// and handed out, another client finds one to connect to, and
		// the name never goes free. If that fails, the next Accept
		// tries again and says so.
		if nh, err := l.newInstance(false); err == nil {
			l.mu.Lock()
			if l.isClose {
				windows.CloseHandle(nh)
			} else {
				l.next = nh
			}
			l.mu.Unlock()
		}
		err := l.connect(h)
		if err == errClientGone {
			windows.CloseHandle(h)
			continue
		}
		if err != nil {
			windows.CloseHandle(h)
			return nil, err
		}
		c, err := newPipeConn(h, l.name)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// errClientGone: a client connected and closed before Accept saw it.
var errClientGone = errors.New("pipe client gone")

// connect waits for a client on instance h, or for Close.
func (l *pipeListener) connect(h windows.Handle) error {
	ev, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		return fmt.Errorf("CreateEvent: %w", err)
	}
	defer windows.CloseHandle(ev)
	ov := &windows.Overlapped{HEvent: ev}
	err = windows.ConnectNamedPipe(h, ov)
	switch {
	case err == nil, errors.Is(err, windows.ERROR_PIPE_CONNECTED):
		return nil
	case errors.Is(err, windows.ERROR_NO_DATA):
		return errClientGone
	case !errors.Is(err, windows.ERROR_IO_PENDING):
		return &net.OpError{Op: "accept", Net: "pipe", Addr: pipeAddr(l.name), Err: fmt.Errorf("ConnectNamedPipe: %w", err)}
	}
	which, err := windows.WaitForMultipleObjects([]windows.Handle{ev, l.closed}, false, windows.INFINITE)
	if err != nil || which != windows.WAIT_OBJECT_0 {
		// Closed (or the wait failed): cancel, and wait for the kernel
		// to be done with ov before it goes out of scope.
		windows.CancelIoEx(h, ov)
		var n uint32
		windows.GetOverlappedResult(h, ov, &n, true)
		if err != nil {
			return &net.OpError{Op: "accept", Net: "pipe", Addr: pipeAddr(l.name), Err: fmt.Errorf("waiting for a client: %w", err)}
		}
		return net.ErrClosed
	}
	var n uint32
	if err := windows.GetOverlappedResult(h, ov, &n, false); err != nil {
		if errors.Is(err, windows.ERROR_NO_DATA) || errors.Is(err, windows.ERROR_BROKEN_PIPE) {
			return errClientGone
		}
		return &net.OpError{Op: "accept", Net: "pipe", Addr: pipeAddr(l.name), Err: fmt.Errorf("ConnectNamedPipe: %w", err)}
	}
	return nil
}

// Close stops Accept and removes the waiting instance; connections
// already accepted stay open.
func (l *pipeListener) Close() error {
	l.mu.Lock()
	if l.isClose {
		l.mu.Unlock()
		return nil
	}
	l.isClose = true
	windows.SetEvent(l.closed)
	if l.next != 0 {
		windows.CloseHandle(l.next)
		l.next = 0
	}
	l.mu.Unlock()
	// A waiting Accept wakes on the event, cancels its connect and
	// returns at once; then nobody uses the event any more.
	l.accepting.Wait()
	windows.CloseHandle(l.closed)
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr(l.name) }

// pipeConn is one end of a connected pipe instance.
type pipeConn struct {
	f    *os.File
	name string
}

func newPipeConn(h windows.Handle, name string) (*pipeConn, error) {
	f := os.NewFile(uintptr(h), name)
	if f == nil {
		windows.CloseHandle(h)
		return nil, fmt.Errorf("%s: invalid handle", name)
	}
	return &pipeConn{f: f, name: name}, nil
}

// Read returns io.EOF once the other end closed its handle.
func (c *pipeConn) Read(b []byte) (int, error) {
	n, err := c.f.Read(b)
	if err != nil && (errors.Is(err, windows.ERROR_BROKEN_PIPE) || errors.Is(err, windows.ERROR_PIPE_NOT_CONNECTED)) {
		err = io.EOF
	}
	return n, err
}

func (c *pipeConn) Write(b []byte) (int, error)        { return c.f.Write(b) }
func (c *pipeConn) Close() error                       { return c.f.Close() }
func (c *pipeConn) LocalAddr() net.Addr                { return pipeAddr(c.name) }
func (c *pipeConn) RemoteAddr() net.Addr               { return pipeAddr(c.name) }
func (c *pipeConn) SetDeadline(t time.Time) error      { return c.f.SetDeadline(t) }
func (c *pipeConn) SetReadDeadline(t time.Time) error  { return c.f.SetReadDeadline(t) }
func (c *pipeConn) SetWriteDeadline(t time.Time) error { return c.f.SetWriteDeadline(t) }

// pipeClientAccess is what a client opens the pipe with: read, and write
// data, but not FILE_CREATE_PIPE_INSTANCE (FILE_APPEND_DATA, part of
// GENERIC_WRITE), which the pipe's ACL gives users no more than the
// client needs it.
const pipeClientAccess = windows.GENERIC_READ | windows.FILE_WRITE_DATA

// dialPipe opens the pipe name, waiting up to timeout while every
// instance is busy. A pipe whose owner is not LocalSystem or
// Administrators is refused: only tcpincd (run by either) may answer for
// it, not a process that took the name while tcpincd was not running.
func dialPipe(name string, timeout time.Duration) (*pipeConn, error) {
	name16, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		// SECURITY_IDENTIFICATION: the server may learn who we are, but
		// not act as us.
		h, err := windows.CreateFile(name16, pipeClientAccess, 0, nil, windows.OPEN_EXISTING,
			windows.FILE_FLAG_OVERLAPPED|windows.SECURITY_SQOS_PRESENT|windows.SECURITY_IDENTIFICATION, 0)
		if err == nil {
			if err := checkPipeOwner(h); err != nil {
				windows.CloseHandle(h)
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			return newPipeConn(h, name)
		}
		if !errors.Is(err, windows.ERROR_PIPE_BUSY) {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrDeadlineExceeded}
		}
		// Every instance busy: wait for one (or for the timeout).
		ms := uint32(min(left, 500*time.Millisecond) / time.Millisecond)
		if err := waitNamedPipe(name16, max(ms, 1)); err != nil &&
			!errors.Is(err, windows.ERROR_SEM_TIMEOUT) && !errors.Is(err, windows.ERROR_PIPE_BUSY) {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
	}
}

// pipeOwnerCheck is off only in tests that run the server without
// administrator rights (the pipe is then owned by the test's user).
var pipeOwnerCheck = true

// checkPipeOwner refuses a pipe not owned by LocalSystem or the
// Administrators group (which tcpincd sets as the owner).
func checkPipeOwner(h windows.Handle) error {
	if !pipeOwnerCheck {
		return nil
	}
	sd, err := windows.GetSecurityInfo(h, windows.SE_KERNEL_OBJECT, windows.OWNER_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("reading the pipe's owner: %w", err)
	}
	owner, _, err := sd.Owner()
	if err != nil {
		return fmt.Errorf("reading the pipe's owner: %w", err)
	}
	if owner.IsWellKnown(windows.WinLocalSystemSid) || owner.IsWellKnown(windows.WinBuiltinAdministratorsSid) {
		return nil
	}
	return fmt.Errorf("the pipe is owned by %s, not by LocalSystem or Administrators: it is not tcpincd's; refusing to talk to it", owner)
}

var procWaitNamedPipeW = windows.NewLazySystemDLL("kernel32.dll").NewProc("WaitNamedPipeW")

// waitNamedPipe waits up to ms milliseconds for an instance of the pipe
// to be free (x/sys/windows has no WaitNamedPipe).
func waitNamedPipe(name *uint16, ms uint32) error {
	r, _, err := procWaitNamedPipeW.Call(uintptr(unsafe.Pointer(name)), uintptr(ms))
	if r == 0 {
		return err
	}
	return nil
}

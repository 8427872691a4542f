package platform_linux

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"golang.org/x/sys/unix"

	"tcpinc.dev/tcpinc/core/divert"
)

// Helpers for queues read through go-nfqueue (the redirect backend's SYN
// hook). The divert workers use the in-tree reader (nfq_linux.go).

const (
	// headroom is the spare capacity each packet buffer gets, so an
	// engine can grow a packet in place (ENO option).
	headroom = 256
	// maxPacket is the copy range: whole packets.
	maxPacket = 0xffff
)

// queued is one packet the kernel holds until its verdict.
type queued struct {
	id   uint32
	mark uint32
	dir  divert.Direction
	buf  []byte
}

func setRcvBufForce(nf *nfqueue.Nfqueue) error {
	rc, err := nf.Con.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf)
	}); err != nil {
		return err
	}
	return serr
}

// Packet buffers: whole packets plus headroom.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func getBuf(n int) []byte {
	if n+headroom > 2048 {
		return make([]byte, n, n+headroom)
	}
	return (*bufPool.Get().(*[]byte))[:n]
}

func putBuf(b []byte) {
	if cap(b) == 2048 {
		b = b[:0]
		bufPool.Put(&b)
	}
}

// nfLogger routes go-nfqueue's logs to slog.
type nfLogger struct{ l *slog.Logger }

func (l nfLogger) Debugf(format string, args ...any) { l.l.Debug(fmt.Sprintf(format, args...)) }
func (l nfLogger) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.HasPrefix(msg, "Stop receiving") || strings.HasPrefix(msg, "Could not unbind") {
		// Shutdown: the reader's deadline also fails the explicit unbind;
		// closing the socket unbinds the queue all the same.
		l.l.Debug(msg)
		return
	}
	l.l.Warn(msg)
}

package redirect

import (
	"errors"
	"syscall"
)

// Winsock's error numbers: the syscall package's ECONNREFUSED and
// ECONNRESET are invented values on Windows that sockets never return.
const (
	wsaeconnaborted = syscall.Errno(10053)
	wsaeconnreset   = syscall.Errno(10054)
	wsaeconnrefused = syscall.Errno(10061)
)

// isRefused reports whether a dial failed because the destination
// answered with a reset.
func isRefused(err error) bool {
	return errors.Is(err, wsaeconnrefused) || errors.Is(err, syscall.ECONNREFUSED)
}

// isReset reports whether a socket error means the peer reset the
// connection.
func isReset(err error) bool {
	return errors.Is(err, wsaeconnreset) || errors.Is(err, wsaeconnaborted) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

//go:build !windows

package redirect

import (
	"errors"
	"syscall"
)

// isRefused reports whether a dial failed because the destination
// answered with a reset.
func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// isReset reports whether a socket error means the peer reset the
// connection.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}

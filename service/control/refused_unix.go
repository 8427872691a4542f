//go:build !windows

package control

import (
	"errors"
	"syscall"
)

// isRefused: nothing listens on the socket file.
func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

package control

import (
	"errors"
	"syscall"

	"golang.org/x/sys/windows"
)

// isRefused: nothing listens on the socket file (Winsock reports
// WSAECONNREFUSED, which syscall.ECONNREFUSED does not match).
func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, windows.WSAECONNREFUSED)
}

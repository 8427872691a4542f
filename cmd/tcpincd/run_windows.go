package main

import (
	"errors"

	"tcpinc.dev/tcpinc/core"
)

// newBackend: the Windows backend (WinDivert) replaces this file.
func newBackend(o backendOptions) (core.Backend, error) {
	return nil, errors.New("the Windows capture backend is not built yet")
}

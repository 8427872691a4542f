package main

import (
	"errors"

	"tcpinc.dev/tcpinc/core"
)

// newBackend: the macOS backend replaces this file.
func newBackend(o backendOptions) (core.Backend, error) {
	return nil, errors.New("the macOS capture backend is not built yet")
}

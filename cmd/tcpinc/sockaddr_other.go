//go:build !linux

package main

import (
	"errors"
	"net/netip"
)

// socketAddrs: finding a socket's addresses from a pid and fd needs
// Linux's /proc.
func socketAddrs(pid, fd int) (local, remote netip.AddrPort, err error) {
	return local, remote, errors.New("--pid and --fd work on Linux only; give LOCAL REMOTE instead (netstat -an shows them)")
}

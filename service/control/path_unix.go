//go:build !linux && !windows

package control

// DefaultPath is where tcpincd listens unless told otherwise.
const DefaultPath = "/var/run/tcpinc/tcpincd.sock"

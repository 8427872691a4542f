//go:build !windows

package control

import (
	"net"
	"time"
)

// dialConn connects to the Unix socket at path for Dial.
func dialConn(path string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("unix", path, timeout)
}

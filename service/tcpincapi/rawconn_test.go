package tcpincapi

import (
	"net"
	"testing"
)

// TestRawAddrs checks the per-OS socket address reads against what the
// net package says about both ends of a loopback connection.
func TestRawAddrs(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			host := "127.0.0.1:0"
			if network == "tcp6" {
				host = "[::1]:0"
			}
			ln, err := net.Listen(network, host)
			if err != nil {
				t.Skipf("no %s loopback: %v", network, err)
			}
			defer ln.Close()
			c, err := net.Dial(network, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			rc, err := c.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			local, remote, err := rawAddrs(rc)
			if err != nil {
				t.Fatal(err)
			}
			if want := c.LocalAddr().(*net.TCPAddr).AddrPort(); local != want {
				t.Errorf("local = %v, want %v", local, want)
			}
			if want := c.RemoteAddr().(*net.TCPAddr).AddrPort(); remote != want {
				t.Errorf("remote = %v, want %v", remote, want)
			}
		})
	}
}

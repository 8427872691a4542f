package main

import (
	"net"
	"net/netip"
	"os"
	"testing"
)

// TestSocketAddrs finds this process's own loopback connection by
// descriptor, over IPv4 and IPv6.
func TestSocketAddrs(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		addr := "127.0.0.1:0"
		if network == "tcp6" {
			addr = "[::1]:0"
		}
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Logf("%s: %v (skipped)", network, err)
			continue
		}
		defer ln.Close()
		c, err := net.Dial(network, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		f, err := c.(*net.TCPConn).File() // a dup of the socket's descriptor
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		local, remote, err := socketAddrs(os.Getpid(), int(f.Fd()))
		if err != nil {
			t.Fatalf("%s: %v", network, err)
		}
		if want := c.LocalAddr().(*net.TCPAddr).AddrPort(); local != want {
			t.Errorf("%s: local %v, want %v", network, local, want)
		}
		if want := c.RemoteAddr().(*net.TCPAddr).AddrPort(); remote != want {
			t.Errorf("%s: remote %v, want %v", network, remote, want)
		}
	}
	// Not a socket.
	f, _ := os.Open(os.DevNull)
	defer f.Close()
	if _, _, err := socketAddrs(os.Getpid(), int(f.Fd())); err == nil {
		t.Error("socketAddrs of /dev/null: no error")
	}
	if _, _, err := socketAddrs(os.Getpid(), 99999); err == nil {
		t.Error("socketAddrs of a closed descriptor: no error")
	}
}

func TestParseProcAddr(t *testing.T) {
	// Written the way a little-endian kernel prints them.
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"0101E70A:0050":                         "10.231.1.1:80",
		"00000000000000000000000001000000:0016": "[::1]:22",
	} {
		got, err := parseProcAddr(in)
		if err != nil || got != netip.MustParseAddrPort(want) {
			t.Errorf("parseProcAddr(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0100007F", "0100007G:0050", "0100007F:10000", "01:0050"} {
		if _, err := parseProcAddr(bad); err == nil {
			t.Errorf("parseProcAddr(%q): no error", bad)
		}
	}
}

func FuzzFindInode(f *testing.F) {
	f.Add([]byte("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 20 4 30 10 -1\n"), uint64(12345))
	f.Add([]byte("hdr\n 1: 00000000000000000000000001000000:0016 00000000000000000000000001000000:8000 01 0:0 0:0 0 0 0 7 1\n"), uint64(7))
	f.Fuzz(func(t *testing.T, data []byte, inode uint64) {
		l, r, found, err := findInode(data, inode)
		if !found && (l.IsValid() || r.IsValid()) && err == nil {
			t.Fatal("addresses without a match")
		}
	})
}

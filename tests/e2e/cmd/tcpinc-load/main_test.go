package main

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestAddAddr(t *testing.T) {
	for _, c := range []struct {
		a    string
		k    int
		want string
	}{
		{"10.232.0.1", 0, "10.232.0.1"},
		{"10.232.0.1", 254, "10.232.0.255"},
		{"10.232.0.255", 1, "10.232.1.0"},
		{"10.232.255.255", 1, "10.233.0.0"},
		{"fd00::ff", 1, "fd00::100"},
	} {
		if got := addAddr(netip.MustParseAddr(c.a), c.k); got.String() != c.want {
			t.Errorf("addAddr(%s, %d) = %s, want %s", c.a, c.k, got, c.want)
		}
	}
}

func TestFillDiffers(t *testing.T) {
	a, b := make([]byte, 256), make([]byte, 256)
	fill(a, 1)
	fill(b, 2)
	if !bytes.HasPrefix(a, []byte(Marker)) || bytes.Equal(a, b) {
		t.Fatalf("payloads must start with the marker and differ per connection")
	}
}

// TestOnceEcho runs one connection against the echo server on loopback,
// and against a server that corrupts one byte, which must be caught.
func TestOnceEcho(t *testing.T) {
	for _, corrupt := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !corrupt {
				echo(c.(*net.TCPConn), 5*time.Second)
				return
			}
			defer c.Close()
			buf := make([]byte, 1000)
			n, _ := c.Read(buf)
			buf[n/2] ^= 1
			c.Write(buf[:n])
			c.(*net.TCPConn).CloseWrite()
		}()
		send := make([]byte, 300)
		fill(send, 7)
		got, err := once(netip.MustParseAddrPort(ln.Addr().String()), send, nil, 5*time.Second, 10*time.Millisecond)
		ln.Close()
		if err != nil {
			t.Fatalf("corrupt=%v: %v", corrupt, err)
		}
		if bytes.Equal(got, send) == corrupt {
			t.Errorf("corrupt=%v: echo equal = %v", corrupt, !corrupt)
		}
	}
}

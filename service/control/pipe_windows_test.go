package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/windows"
)

func TestPipeName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`\\.\pipe\tcpinc`, `\\.\pipe\tcpinc`},
		{`\\.\PIPE\x`, `\\.\pipe\x`},
		{`//./pipe/a/b`, `\\.\pipe\a\b`},
		{`tcpinc-2`, `\\.\pipe\tcpinc-2`},
		{`C:\ProgramData\tcpinc\tcpincd.sock`, ""},
		{`\\.\pipe\`, ""},
		{`\\server\pipe\tcpinc`, ""},
		{"", ""},
		{"a\x00b", ""},
	} {
		got, err := PipeName(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("PipeName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), DefaultPath) {
			t.Errorf("PipeName(%q) error %q does not say what to use", tc.in, err)
		}
	}
}

// TestPipeRoundTripLarge serves a conns reply far larger than the pipe's
// buffers, on several connections at once, with the real peerCred.
func TestPipeRoundTripLarge(t *testing.T) {
	conns := make([]ConnJSON, 20000)
	for i := range conns {
		conns[i] = ConnJSON{Local: fmt.Sprintf("10.0.0.1:%d", i), Remote: "10.0.0.2:443", State: "encrypted", SessionID: strings.Repeat("ab", 32)}
	}
	path := sockPath(t)
	startServer(t, path, &fakeHandler{status: StatusReply{Version: "t", Mode: "divert"}, conns: conns})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			cl, err := Dial(path)
			if err != nil {
				errs <- err
				return
			}
			defer cl.Close()
			for range 3 {
				got, err := cl.Conns()
				if err != nil {
					errs <- err
					return
				}
				if len(got) != len(conns) || got[len(got)-1].Local != conns[len(conns)-1].Local {
					errs <- fmt.Errorf("got %d conns, want %d", len(got), len(conns))
					return
				}
			}
			st, err := cl.Status()
			if err == nil && st.Mode != "divert" {
				err = fmt.Errorf("status %+v", st)
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestPipePeerCred: the server finds the client's process and decides
// from its token as an independent check of the same token does.
func TestPipePeerCred(t *testing.T) {
	name := sockPath(t)
	ln, err := Listen(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		p   Peer
		err error
	}
	got := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- res{err: err}
			return
		}
		defer c.Close()
		p, err := ln.peer(c, &ln.access)
		got <- res{p, err}
	}()
	cl, err := Dial(name)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	r := <-got
	if r.err != nil {
		t.Fatalf("peerCred: %v", r.err)
	}
	if r.p.PID != os.Getpid() || r.p.UID != -1 {
		t.Errorf("peer %+v, want PID %d, UID -1", r.p, os.Getpid())
	}
	// CheckTokenMembership counts only enabled (not deny-only) groups:
	// the same rule, through another API.
	admins, err := windows.CreateWellKnownSid(windows.WinBuiltinAdministratorsSid)
	if err != nil {
		t.Fatal(err)
	}
	member, err := windows.Token(0).IsMember(admins)
	if err != nil {
		t.Fatal(err)
	}
	tok := windows.GetCurrentProcessToken()
	tu, err := tok.GetTokenUser()
	if err != nil {
		t.Fatal(err)
	}
	want := member || tu.User.Sid.IsWellKnown(windows.WinLocalSystemSid)
	if r.p.Admin != want {
		t.Errorf("peer Admin %v, want %v (the token's Administrators membership)", r.p.Admin, want)
	}
	t.Logf("peer %+v", r.p)
}

func TestPipeBusyAndClose(t *testing.T) {
	name := sockPath(t)
	ln, err := Listen(name)
	if err != nil {
		t.Fatal(err)
	}
	// A second listener on the same name is refused.
	if ln2, err := Listen(name); err == nil {
		ln2.Close()
		t.Error("a second Listen on the same pipe succeeded")
	} else if !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Listen: %v, want 'in use'", err)
	}
	// Close ends a pending Accept.
	done := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	ln.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
	// And the name is free again.
	var ue *UnreachableError
	if _, err := Dial(name); !errors.As(err, &ue) {
		t.Errorf("Dial after Close: %v, want *UnreachableError", err)
	}
	ln, err = Listen(name)
	if err != nil {
		t.Fatalf("Listen after Close: %v", err)
	}
	ln.Close()
}

// TestPipeConnIO: deadlines time out as net errors do, a closed client
// is EOF to the server, and a client that comes and goes before Accept
// does not stop the listener.
func TestPipeConnIO(t *testing.T) {
	name := sockPath(t)
	ln, err := Listen(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	// A client that comes and goes.
	c0, err := dialPipe(name, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c0.Close()
	c1, err := dialPipe(name, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var s1 net.Conn
	select {
	case s1 = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted")
	}
	// The first accepted may be c0's instance, which reads EOF at once.
	buf := make([]byte, 8)
	if _, err := c1.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	s1.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(s1).ReadString('\n')
	if errors.Is(err, io.EOF) {
		s1.Close()
		select {
		case s1 = <-accepted:
		case <-time.After(5 * time.Second):
			t.Fatal("second connection not accepted")
		}
		s1.SetReadDeadline(time.Now().Add(2 * time.Second))
		line, err = bufio.NewReader(s1).ReadString('\n')
	}
	if err != nil || line != "ping\n" {
		t.Fatalf("server read %q, %v", line, err)
	}
	defer s1.Close()
	// A read deadline expires as a timeout.
	c1.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err = c1.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("read past the deadline: %v, want a timeout", err)
	}
	// After the deadline is lifted the connection still works.
	c1.SetReadDeadline(time.Time{})
	if _, err := s1.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if n, err := io.ReadFull(c1, buf[:4]); err != nil || string(buf[:n]) != "pong" {
		t.Errorf("client read %q, %v", buf[:n], err)
	}
	// The client leaves: the server reads EOF.
	c1.Close()
	s1.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := s1.Read(buf); !errors.Is(err, io.EOF) {
		t.Errorf("server read after the client closed: %v, want EOF", err)
	}
}

// TestPipeOwnerRefused: a pipe of the right name that LocalSystem or
// Administrators do not own is not tcpincd's, and Dial says so.
func TestPipeOwnerRefused(t *testing.T) {
	tu, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		t.Fatal(err)
	}
	if tu.User.Sid.IsWellKnown(windows.WinLocalSystemSid) {
		t.Skip("running as LocalSystem: the test cannot make a pipe it owns as another user")
	}
	name := sockPath(t)
	ln, err := listenPipe(name, "O:"+tu.User.Sid.String()+"D:P(A;;GA;;;WD)")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, err = Dial(name)
	if err == nil || !strings.Contains(err.Error(), "not tcpincd's") {
		t.Errorf("Dial of a pipe owned by %s: %v, want a refusal", tu.User.Sid, err)
	}
}

// TestServeStopsOnCancel: Serve over a pipe returns when its context
// ends, closing its connections.
func TestServeStopsOnCancel(t *testing.T) {
	name := sockPath(t)
	ln, err := Listen(name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, &fakeHandler{}) }()
	cl, err := Dial(name)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Status(); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := cl.Status(); err == nil {
		t.Error("a connection survived Serve's end")
	}
}

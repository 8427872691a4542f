// Command tcpinc-load opens many short TCP connections and checks every
// byte that comes back. The end-to-end tests (tests/e2e) and make bench
// (scripts/bench.sh) run it inside network namespaces: "serve" is an echo
// server, "run" the client that measures connections per second.
//
// Usage:
//
//	tcpinc-load serve -listen ADDR:PORT [-listen ...]
//	tcpinc-load run -addr HOST:PORT -n N [-c C] [-size BYTES]
//	                [-spread none|worker|conn] [-timeout DUR] [-hold DUR] [-json]
//
// Each connection of "run" writes size bytes (a plaintext marker, the
// connection's number and a pattern), reads the echo, optionally holds
// the connection open (-hold), half-closes, reads to EOF and compares
// the echo byte for byte. -spread moves the destination address:
// "conn" gives every connection its own address (HOST, HOST+1, ...), so
// that no resumption secret is cached for it (a full key exchange every
// time); "worker" gives each of the C workers its own address (each worker
// resumes its own chain of sessions). The server side makes the range of
// addresses local with "ip route add local PREFIX dev lo".
//
// The run is bounded: it stops starting connections once -timeout has
// passed and reports what it did. Exit status 0 only if all N connections
// completed intact.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Marker is the plaintext each connection carries; a capture of an
// encrypted connection must not contain it.
const Marker = "TCPINC-E2E-LOAD-MARKER"

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "run":
		err = runLoad(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tcpinc-load:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: tcpinc-load serve -listen ADDR:PORT ... | run -addr HOST:PORT -n N [-c C] [-size BYTES] [-spread none|worker|conn] [-timeout DUR] [-json]")
	os.Exit(2)
}

type listFlag []string

func (l *listFlag) String() string     { return fmt.Sprint(*l) }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// serve echoes every connection until the peer half-closes, then
// half-closes too. It prints "LISTENING" once every listener is open and
// runs until SIGINT or SIGTERM.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	var listens listFlag
	fs.Var(&listens, "listen", "`address:port` to listen on (repeatable)")
	idle := fs.Duration("idle", 30*time.Second, "close a connection idle for this long")
	fs.Parse(args)
	if len(listens) == 0 {
		return errors.New("serve: give at least one -listen address")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var lns []net.Listener
	for _, a := range listens {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		lns = append(lns, ln)
	}
	fmt.Println("LISTENING")
	var wg sync.WaitGroup
	for _, ln := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					fmt.Fprintln(os.Stderr, "tcpinc-load: accept:", err)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				go echo(c.(*net.TCPConn), *idle)
			}
		}()
	}
	<-ctx.Done()
	for _, ln := range lns {
		ln.Close()
	}
	wg.Wait()
	return nil
}

func echo(c *net.TCPConn, idle time.Duration) {
	defer c.Close()
	buf := make([]byte, 32<<10)
	for {
		c.SetDeadline(time.Now().Add(idle))
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err == io.EOF {
				c.CloseWrite()
				// Wait for the peer's close so that our FIN is
				// acknowledged before the socket goes.
				c.SetDeadline(time.Now().Add(idle))
				io.Copy(io.Discard, c)
			}
			return
		}
	}
}

// Result is what "run -json" prints.
type Result struct {
	Requested   int      `json:"requested"`
	OK          int      `json:"ok"`
	Failed      int      `json:"failed"`
	Seconds     float64  `json:"seconds"`
	ConnsPerSec float64  `json:"conns_per_sec"`
	TimedOut    bool     `json:"timed_out"`
	Errors      []string `json:"errors,omitempty"` // the first few
}

func runLoad(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	addr := fs.String("addr", "", "server `host:port` (the first address with -spread)")
	n := fs.Int("n", 100, "number of connections")
	c := fs.Int("c", 1, "connections in parallel")
	size := fs.Int("size", 256, "bytes sent (and echoed) per connection")
	spread := fs.String("spread", "none", "destination addresses: none, worker (one per worker), conn (one per connection)")
	timeout := fs.Duration("timeout", 60*time.Second, "stop starting connections after this long")
	connTimeout := fs.Duration("conn-timeout", 20*time.Second, "bound on one connection")
	hold := fs.Duration("hold", 0, "keep each connection open this long after its echo (so that it can be observed)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	fs.Parse(args)
	ap, err := netip.ParseAddrPort(*addr)
	if err != nil {
		return fmt.Errorf("run: -addr: %w", err)
	}
	if *n < 1 || *c < 1 || *size < len(Marker)+16 {
		return fmt.Errorf("run: want -n >= 1, -c >= 1, -size >= %d", len(Marker)+16)
	}
	switch *spread {
	case "none", "worker", "conn":
	default:
		return fmt.Errorf("run: -spread %q: want none, worker or conn", *spread)
	}

	var (
		next   atomic.Int64
		ok     atomic.Int64
		failed atomic.Int64
		mu     sync.Mutex
		errs   []string
	)
	start := time.Now()
	deadline := start.Add(*timeout)
	var wg sync.WaitGroup
	for w := 0; w < *c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			send := make([]byte, *size)
			got := make([]byte, 0, *size)
			for {
				i := int(next.Add(1)) - 1
				if i >= *n || time.Now().After(deadline) {
					return
				}
				dst := ap
				switch *spread {
				case "worker":
					dst = netip.AddrPortFrom(addAddr(ap.Addr(), w), ap.Port())
				case "conn":
					dst = netip.AddrPortFrom(addAddr(ap.Addr(), i), ap.Port())
				}
				fill(send, i)
				var err error
				got, err = once(dst, send, got[:0], *connTimeout, *hold)
				if err == nil && !bytes.Equal(got, send) {
					err = fmt.Errorf("echo differs: sent %d bytes, got %d (first difference at %d)", len(send), len(got), firstDiff(send, got))
				}
				if err != nil {
					failed.Add(1)
					mu.Lock()
					if len(errs) < 5 {
						errs = append(errs, fmt.Sprintf("connection %d to %v: %v", i, dst, err))
					}
					mu.Unlock()
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	r := Result{Requested: *n, OK: int(ok.Load()), Failed: int(failed.Load()), Seconds: secs, Errors: errs}
	r.ConnsPerSec = float64(r.OK) / secs
	r.TimedOut = r.OK+r.Failed < r.Requested
	if *asJSON {
		out, _ := json.Marshal(r)
		fmt.Println(string(out))
	} else {
		fmt.Printf("%d/%d connections intact in %.2f s (%.1f per second), %d failed\n", r.OK, r.Requested, secs, r.ConnsPerSec, r.Failed)
		for _, e := range errs {
			fmt.Println("  ", e)
		}
	}
	if r.OK != r.Requested {
		return fmt.Errorf("%d of %d connections failed or were not started in time", r.Requested-r.OK, r.Requested)
	}
	return nil
}

// once opens one connection, sends send, reads the echo, waits hold
// with the connection still open both ways, then half-closes and reads
// to EOF.
func once(dst netip.AddrPort, send, got []byte, timeout, hold time.Duration) ([]byte, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial("tcp", dst.String())
	if err != nil {
		return got, err
	}
	defer c.Close()
	tc := c.(*net.TCPConn)
	tc.SetDeadline(time.Now().Add(timeout + hold))
	if _, err := tc.Write(send); err != nil {
		return got, fmt.Errorf("write: %w", err)
	}
	closed := false
	var buf [4096]byte
	for {
		if !closed && len(got) >= len(send) {
			time.Sleep(hold)
			if err := tc.CloseWrite(); err != nil {
				return got, fmt.Errorf("half-close: %w", err)
			}
			closed = true
		}
		n, err := tc.Read(buf[:])
		got = append(got, buf[:n]...)
		if err == io.EOF {
			if !closed {
				return got, fmt.Errorf("EOF after %d bytes, before the whole echo", len(got))
			}
			return got, nil
		}
		if err != nil {
			return got, fmt.Errorf("read after %d bytes: %w", len(got), err)
		}
		if len(got) > len(send) {
			return got, fmt.Errorf("echo longer than what was sent (%d > %d bytes)", len(got), len(send))
		}
	}
}

// fill writes connection i's payload: the marker, i, then a pattern
// that depends on i, so a mixed-up echo is caught.
func fill(b []byte, i int) {
	p := append(append([]byte(Marker), '#'), strconv.Itoa(i)...)
	p = append(p, '|')
	n := copy(b, p)
	x := uint32(i)*2654435761 + 1
	for j := n; j < len(b); j++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[j] = byte(x)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// addAddr returns a + k, carrying across bytes.
func addAddr(a netip.Addr, k int) netip.Addr {
	b := a.AsSlice()
	carry := k
	for i := len(b) - 1; i >= 0 && carry > 0; i-- {
		s := int(b[i]) + carry
		b[i] = byte(s)
		carry = s >> 8
	}
	out, _ := netip.AddrFromSlice(b)
	return out
}

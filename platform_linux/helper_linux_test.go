package platform_linux

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/divert"
	"tcpinc.dev/tcpinc/core/packet"
)

// marker is the plaintext the transfers repeat; it must never be seen on
// the wire of an encrypted connection.
const marker = "TCPINC-PLAINTEXT-MARKER"

// pattern returns n bytes of marker-laden data, different per seed.
func pattern(n int, seed byte) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%s-%c-%09d|", marker, 'a'+seed%26, i)
	}
	return b.Bytes()[:n]
}

// helperModes are the roles a helper process can play, by its first
// argument: the divert and redirect backends and the programs the tests
// run beside them.
var helperModes = map[string]func(args []string) error{
	"backend":   helperBackend,
	"rbackend":  helperRedirect,
	"server":    helperServer,
	"client":    helperClient,
	"inject":    helperInject,
	"sink":      helperSink,
	"source":    helperSource,
	"halfclose": helperHalfClose,
	"reset":     helperReset,
	"echo":      helperEcho,
	"many":      helperMany,
}

// TestHelperProcess is not a test: the tests run this binary with it as
// a child process inside a network namespace.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("TCPINC_TEST_HELPER") != "1" {
		t.Skip("helper process for the namespace tests")
	}
	args := flagArgs()
	err := fmt.Errorf("unknown helper mode %q", args[0])
	if run, ok := helperModes[args[0]]; ok {
		err = run(args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func flagArgs() []string {
	for i, a := range os.Args {
		if a == "--" {
			return os.Args[i+1:]
		}
	}
	return nil
}

// helperBackend runs the divert backend: "backend <queue> <queues>
// [exclude-port...]". It prints READY once the rules are in place and
// answers "conns", "counters" on stdin; EOF stops it.
func helperBackend(args []string) error {
	q, _ := strconv.Atoi(args[0])
	n, _ := strconv.Atoi(args[1])
	cfg := Config{Queue: uint16(q), Queues: n, Policy: core.DefaultPolicy(),
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	cfg.StrictConntrack = os.Getenv("TCPINC_TEST_STRICT_CT") == "1"
	cfg.QueueRcvBuf, _ = strconv.Atoi(os.Getenv("TCPINC_TEST_RCVBUF"))
	for _, a := range args[2:] {
		p, _ := strconv.Atoi(a)
		cfg.Policy.ExcludePorts = append(cfg.Policy.ExcludePorts, uint16(p))
	}
	d, err := NewDivert(cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(ctx) }()
	if err := waitTable(runErr); err != nil {
		return err
	}
	fmt.Println("READY", d.QueueKind())

	cmds := make(chan string)
	go func() {
		defer close(cmds)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- sc.Text()
		}
	}()
	for {
		select {
		case err := <-runErr:
			return fmt.Errorf("Run returned early: %v", err)
		case cmd, ok := <-cmds:
			if !ok {
				cancel()
				if err := <-runErr; err != nil {
					return err
				}
				if err := d.Close(); err != nil {
					return err
				}
				fmt.Println("BYE")
				return nil
			}
			if js, ok := strings.CutPrefix(cmd, "apply "); ok {
				var pol core.Policy
				err := json.Unmarshal([]byte(js), &pol)
				if err == nil {
					err = d.Apply(pol)
				}
				fmt.Println("APPLIED", err)
				continue
			}
			switch cmd {
			case "conns":
				out, _ := json.Marshal(connsJSON(d))
				fmt.Println("CONNS", string(out))
			case "counters":
				out, _ := json.Marshal(d.Snapshot())
				fmt.Println("COUNTERS", string(out))
			}
		}
	}
}

// connJSON is what the tests compare of a connection.
type connJSON struct {
	Queue                           uint16
	Local, Remote, State, SessionID string
	BytesIn, BytesOut               uint64
}

// connsJSON asks each queue's engine itself, to show which queue holds
// which connection.
func connsJSON(d *Divert) []connJSON {
	var out []connJSON
	for _, w := range d.ws {
		var cs []divert.ConnInfo
		w.do(func(e *divert.Engine) { cs = e.Conns(nil) })
		for _, c := range cs {
			out = append(out, connJSON{Queue: w.num, Local: c.Local.String(), Remote: c.Remote.String(), State: c.State,
				SessionID: hex.EncodeToString(c.SessionID), BytesIn: c.BytesIn, BytesOut: c.BytesOut})
		}
	}
	return out
}

func waitTable(runErr chan error) error {
	nft, err := nftables.New()
	if err != nil {
		return err
	}
	for range 200 {
		if _, err := nft.ListTableOfFamily(TableName, nftables.TableFamilyINet); err == nil {
			return nil
		}
		select {
		case err := <-runErr:
			return fmt.Errorf("Run: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return errors.New("rules did not appear within 2 s")
}

// The transfer: the client sends an 8-byte length n, an 8-byte reply
// length m, and n bytes; the server answers with the SHA-256 of what it
// received and m bytes of pattern(m, 1). The client then holds the
// connection open until its stdin closes, so the backends can be asked
// about it.

func helperServer(args []string) error {
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	fmt.Println("LISTENING", ln.Addr())
	go func() { io.Copy(io.Discard, os.Stdin); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil
		}
		go func() {
			defer c.Close()
			var hdr [16]byte
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				fmt.Println("SERVERERR", err)
				return
			}
			n, m := binary.BigEndian.Uint64(hdr[:8]), binary.BigEndian.Uint64(hdr[8:])
			h := sha256.New()
			if _, err := io.CopyN(h, c, int64(n)); err != nil {
				fmt.Println("SERVERERR", err)
				return
			}
			c.Write(h.Sum(nil))
			c.Write(pattern(int(m), 1))
			fmt.Println("SERVED", c.RemoteAddr(), n)
			io.Copy(io.Discard, c)
		}()
	}
}

// helperClient: "client <addr> <send bytes> <reply bytes>"; prints
// "DONE <local> <seconds of the transfer, after connecting>" or fails.
func helperClient(args []string) error {
	n, _ := strconv.Atoi(args[1])
	m, _ := strconv.Atoi(args[2])
	start := time.Now()
	c, err := net.DialTimeout("tcp", args[0], 5*time.Second)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "connected in %v\n", time.Since(start))
	start = time.Now()
	defer c.Close()
	// A bound on the whole transfer that only a stall reaches: under the
	// race detector on a busy 2-core machine, with queues made to
	// overflow, 10 MiB has taken 20 s.
	c.SetDeadline(time.Now().Add(90 * time.Second))
	data := pattern(n, 0)
	var hdr [16]byte
	binary.BigEndian.PutUint64(hdr[:8], uint64(n))
	binary.BigEndian.PutUint64(hdr[8:], uint64(m))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(append(hdr[:], data...))
		errc <- err
	}()
	got := make([]byte, 32+m)
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("reading the reply: %w", err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	want := sha256.Sum256(data)
	if !bytes.Equal(got[:32], want[:]) {
		return errors.New("the server received different bytes than were sent")
	}
	if !bytes.Equal(got[32:], pattern(m, 1)) {
		return errors.New("the reply differs from what the server sent")
	}
	fmt.Println("DONE", c.LocalAddr(), time.Since(start).Seconds())
	// "more" writes more marker data on the open connection; EOF ends.
	c.SetDeadline(time.Time{})
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "more" {
			c.Write(pattern(64<<10, 2))
			fmt.Println("WROTE")
		}
	}
	return nil
}

func splitDone(s string) (local string, secs float64) {
	f := strings.Fields(s)
	if len(f) == 2 {
		secs, _ = strconv.ParseFloat(f[1], 64)
		return f[0], secs
	}
	return s, 0
}

// helperInject: "inject <listen addr:port> <remote addr:port>". It
// listens, injects a SYN from remote as the backend injects inbound
// packets, and prints "SYNRECV" once the local stack holds a half-open
// connection from remote: the segment reached TCP with its original
// source address.
func helperInject(args []string) error {
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	defer ln.Close()
	local, remote := netip.MustParseAddrPort(args[0]), netip.MustParseAddrPort(args[1])
	syn, err := packet.AppendTCP(nil, packet.Segment{Src: remote, Dst: local, Seq: 1000, Flags: packet.SYN, Window: 65535,
		Options: packet.AppendMSS(nil, 1400)})
	if err != nil {
		return err
	}
	m, _ := newMarks(0)
	inj, err := newInjector(m.inject)
	if err != nil {
		return err
	}
	defer inj.close()
	if err := inj.send(syn); err != nil {
		return fmt.Errorf("injecting: %w", err)
	}
	for range 100 {
		out, err := exec.Command("ss", "-Htn", "state", "syn-recv").CombinedOutput()
		if err != nil {
			return fmt.Errorf("ss: %v: %s", err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) == 4 && f[2] == local.String() && f[3] == remote.String() {
				fmt.Println("SYNRECV", f[2], f[3])
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("the local stack did not take the injected SYN")
}

//go:build linux

package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// marker is the plaintext in every file the tests send; a capture of an
// encrypted connection must not contain it.
const marker = "TCPINC-E2E-PLAINTEXT-MARKER"

// loadMarker is the marker of tcpinc-load's payloads (cmd/tcpinc-load).
const loadMarker = "TCPINC-E2E-LOAD-MARKER"

// markerFile writes size bytes of numbered markers mixed with random
// bytes (so reordered or repeated data cannot compare equal) into dir.
func markerFile(t *testing.T, dir, name string, size int) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	rnd := make([]byte, 24)
	for i := 0; b.Len() < size; i++ {
		rand.Read(rnd)
		fmt.Fprintf(&b, "%s-%09d|%x\n", marker, i, rnd)
	}
	data := b.Bytes()[:size]
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

func urlFor(host string, port int, path string) string {
	return "http://" + hostPort(host, port) + "/" + path
}

// httpServer serves dir with python3's http.server on bind:port.
func httpServer(n *node, dir, bind string, port int) *proc {
	n.t.Helper()
	p := n.start("http", "python3", "-m", "http.server", strconv.Itoa(port), "--bind", bind, "--directory", dir)
	n.waitListening(p, port)
	return p
}

// curl fetches url into a file and returns its bytes.
func curl(n *node, url string, extra ...string) ([]byte, error) {
	out := filepath.Join(n.dir, fmt.Sprintf("curl-%d.out", time.Now().UnixNano()))
	args := append([]string{"curl", "-sS", "--fail", "--max-time", "60", "-o", out}, extra...)
	args = append(args, url)
	msg, err := n.run(args...)
	got, _ := os.ReadFile(out)
	os.Remove(out)
	if err != nil {
		return got, fmt.Errorf("curl %s: %v: %s", url, err, strings.TrimSpace(msg))
	}
	return got, nil
}

// sameBytes fails the test unless got equals want byte for byte.
func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Errorf("%s: received %d bytes, sent %d; first difference at byte %d", what, len(got), len(want), i)
}

// loadServer runs tcpinc-load's echo server on the given addresses.
func loadServer(n *node, port int, hosts ...string) *proc {
	n.t.Helper()
	args := []string{env.load, "serve"}
	for _, h := range hosts {
		args = append(args, "-listen", hostPort(h, port))
	}
	p := n.start("load-serve", args...)
	if !waitFor(10*time.Second, func() bool { return strings.Contains(p.output(), "LISTENING") || p.exited() }) || p.exited() {
		n.t.Fatalf("tcpinc-load serve did not start in %s:\n%s", n.name, p.output())
	}
	return p
}

// loadResult is tcpinc-load run's JSON.
type loadResult struct {
	Requested   int      `json:"requested"`
	OK          int      `json:"ok"`
	Failed      int      `json:"failed"`
	Seconds     float64  `json:"seconds"`
	ConnsPerSec float64  `json:"conns_per_sec"`
	Errors      []string `json:"errors"`
}

// load opens count connections, parallel at a time, each echoing size
// bytes checked byte for byte; the test fails unless all are intact.
func load(t *testing.T, n *node, host string, port, count, parallel, size int, extra ...string) loadResult {
	t.Helper()
	args := append([]string{env.load, "run", "-addr", hostPort(host, port), "-n", strconv.Itoa(count),
		"-c", strconv.Itoa(parallel), "-size", strconv.Itoa(size), "-timeout", "120s", "-json"}, extra...)
	out, _ := n.cmd(args...).Output()
	var r loadResult
	line := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("tcpinc-load run: %v: %q", err, out)
	}
	if r.OK != count {
		t.Errorf("%d of %d connections (%d in parallel) intact, %d failed; first errors: %v", r.OK, count, parallel, r.Failed, r.Errors)
	} else {
		t.Logf("%d connections (%d in parallel) intact in %.2f s, %.0f/s", count, parallel, r.Seconds, r.ConnsPerSec)
	}
	return r
}

// iperfResult is the part of iperf3 -J the tests read.
type iperfResult struct {
	End struct {
		SumSent struct {
			Bytes         float64 `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_sent"`
		SumReceived struct {
			Bytes         float64 `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// iperfMarker is in every payload of iperf3 --repeating-payload.
const iperfMarker = "0123456789012345678901234567890123456789"

func iperf(t *testing.T, n *node, host string, port int, size int64, reverse bool) iperfResult {
	t.Helper()
	args := []string{"iperf3", "-c", host, "-p", strconv.Itoa(port), "-n", strconv.FormatInt(size, 10),
		"--repeating-payload", "-J", "--connect-timeout", "5000"}
	if reverse {
		args = append(args, "-R", "--rcv-timeout", "30000")
	}
	c := n.cmd(args...)
	var out bytes.Buffer
	c.Stdout = &out
	done := make(chan error, 1)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- c.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(120 * time.Second):
		c.Process.Kill()
		<-done
		t.Fatalf("iperf3 (reverse %v) did not finish within 120 s", reverse)
	}
	var r iperfResult
	if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
		t.Fatalf("iperf3: %v (%v): %s", err, jerr, tail(out.String(), 2000))
	}
	if err != nil || r.Error != "" {
		t.Fatalf("iperf3 (reverse %v): %v %s", reverse, err, r.Error)
	}
	return r
}

//go:build linux

// Command perftool is the measuring helper of scripts/perf-divert.sh. It
// is not part of the product.
//
//	perftool backend [--queues N] [--resumption=false] [--cpuprofile FILE] [--stats FILE]
//	    runs the divert backend (platform_linux.Divert) until SIGINT/SIGTERM,
//	    in the network namespace it is started in, and writes its counters
//	    as JSON to --stats on exit. (The script waits for the nftables
//	    table to know it runs.)
//	perftool server ADDR
//	    accepts connections; each reads one byte, answers one byte, closes.
//	perftool connrate ADDR [--duration D] [--parallel P]
//	    opens connections for D with P workers (connect, one byte each way,
//	    close) and prints "CONNS n SECONDS s RATE r".
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/platform_linux"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: perftool backend|server|connrate ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "backend":
		err = backend(os.Args[2:])
	case "server":
		err = server(os.Args[2:])
	case "connrate":
		err = connrate(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "perftool:", err)
		os.Exit(1)
	}
}

func backend(args []string) error {
	fs := flag.NewFlagSet("backend", flag.ExitOnError)
	queues := fs.Int("queues", 1, "NFQUEUE queues")
	queue := fs.Int("queue", 0, "first queue number")
	resumption := fs.Bool("resumption", true, "allow session resumption")
	enabled := fs.Bool("enabled", true, "negotiate ENO on new connections")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run here")
	stats := fs.String("stats", "", "write the counters as JSON here on exit")
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	rcvbuf := fs.Int("rcvbuf", 0, "queue socket receive buffer in bytes (0: the backend's default)")
	fs.Parse(args)
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	d, err := platform_linux.NewDivert(platform_linux.Config{
		Queue:       uint16(*queue),
		Queues:      *queues,
		Policy:      core.Policy{Enabled: *enabled, Resumption: *resumption},
		QueueRcvBuf: *rcvbuf,
		Log:         log,
	})
	if err != nil {
		return err
	}
	defer d.Close()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runErr := d.Run(ctx)
	if *stats != "" {
		b, _ := json.MarshalIndent(d.Counters(), "", "  ")
		if err := os.WriteFile(*stats, b, 0o644); err != nil {
			return err
		}
	}
	return runErr
}

func server(args []string) error {
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	fmt.Println("LISTENING", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			var b [1]byte
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(c, b[:]); err != nil {
				return
			}
			c.Write(b[:])
		}()
	}
}

func connrate(args []string) error {
	fs := flag.NewFlagSet("connrate", flag.ExitOnError)
	dur := fs.Duration("duration", 5*time.Second, "how long to open connections")
	par := fs.Int("parallel", 1, "connections in flight")
	addr := args[0]
	fs.Parse(args[1:])
	var n, fails atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	end := start.Add(*dur)
	var wg sync.WaitGroup
	for range *par {
		wg.Go(func() {
			d := net.Dialer{Timeout: 5 * time.Second}
			var b [1]byte
			for time.Now().Before(end) {
				c, err := d.Dial("tcp", addr)
				if err != nil {
					fails.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				_, err = c.Write([]byte{'x'})
				if err == nil {
					_, err = io.ReadFull(c, b[:])
				}
				c.Close()
				if err != nil {
					fails.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	fmt.Printf("CONNS %d SECONDS %.3f RATE %.1f FAILS %d\n", n.Load(), secs, float64(n.Load())/secs, fails.Load())
	if e := firstErr.Load(); e != nil {
		fmt.Fprintln(os.Stderr, "first failure:", e)
	}
	return nil
}

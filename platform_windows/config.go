package platform_windows

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/divert"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

// resumeCacheSize is how many resumption secrets the backend keeps when
// the caller gives it no cache.
const resumeCacheSize = 1024

// Config configures the Windows backends.
type Config struct {
	// DLLPath is the absolute path of WinDivert.dll; empty means
	// WinDivert.dll next to the executable (DefaultDLLPath). The driver
	// WinDivert64.sys must be in the same directory.
	DLLPath string
	// Workers is the number of WinDivert handles, each with its own
	// goroutine and engine; 0 means 1. Connections are split between
	// them by their larger port (PortRange).
	Workers int
	// Priority is the WinDivert priority of the handles (higher sees
	// packets first; -30000–30000). 0 is WinDivert's middle.
	Priority int16
	// QueueLength, QueueTime and QueueSize set the driver's queue limits
	// per handle (WINDIVERT_PARAM_*); 0 means 8192 packets, 2 s and
	// 8 MiB. A packet that waits longer, or finds the queue full, is
	// dropped by the driver (never passed unprocessed).
	QueueLength uint64
	QueueTime   time.Duration
	QueueSize   uint64
	// BatchBytes is the size of each receive buffer; 0 means 512 KiB.
	BatchBytes int

	// Policy is what new connections get. Its exclusions are also
	// written into the WinDivert filter, so excluded traffic never
	// reaches the process. The zero value leaves every connection
	// plain; core.DefaultPolicy is the service's default.
	Policy core.Policy
	// Engine configures each worker's engine. Its TEPs and AEADs are
	// ignored (Policy decides); a nil Cache gets one shared by the
	// workers. Its OnEvent, if set, is called on the worker's goroutine.
	Engine divert.Config
	// Log receives the backend's logs; nil discards them.
	Log *slog.Logger
}

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if out.Workers == 0 {
		out.Workers = 1
	}
	if out.Workers < 0 || out.Workers > MaxWorkers {
		return out, fmt.Errorf("windivert: %d workers: want 1–%d", out.Workers, MaxWorkers)
	}
	if out.Priority < -30000 || out.Priority > 30000 {
		return out, fmt.Errorf("windivert: priority %d: want -30000–30000", out.Priority)
	}
	if out.QueueLength == 0 {
		out.QueueLength = 8192
	}
	if out.QueueTime == 0 {
		out.QueueTime = 2 * time.Second
	}
	if out.QueueSize == 0 {
		out.QueueSize = 8 << 20
	}
	if out.BatchBytes == 0 {
		out.BatchBytes = 512 << 10
	}
	if err := checkPolicy(&out.Policy); err != nil {
		return out, err
	}
	if out.Engine.Cache == nil {
		out.Engine.Cache = tcpcrypt.NewCache(resumeCacheSize)
	}
	if out.Log == nil {
		out.Log = slog.New(slog.DiscardHandler)
	}
	return out, nil
}

// checkPolicy rejects what the filter cannot express; the engines check
// the rest.
func checkPolicy(p *core.Policy) error {
	for _, pfx := range p.ExcludeAddrs {
		if !pfx.IsValid() {
			return errors.New("windivert: an excluded address prefix is invalid")
		}
	}
	_, err := DivertFilter(p, 0, 1)
	return err
}

// queueParams are the values SetParam gets, clamped to the driver's
// documented ranges.
func (c *Config) queueParams() [3]struct {
	p Param
	v uint64
} {
	clamp := func(v, lo, hi uint64) uint64 { return min(max(v, lo), hi) }
	return [3]struct {
		p Param
		v uint64
	}{
		{ParamQueueLength, clamp(c.QueueLength, 32, 16384)},
		{ParamQueueTime, clamp(uint64(c.QueueTime/time.Millisecond), 100, 16000)},
		{ParamQueueSize, clamp(c.QueueSize, 65535, 32<<20)},
	}
}

// widens reports whether next captures traffic that cur excludes: an
// excluded port or prefix of cur that next no longer excludes.
func widens(cur, next *core.Policy) bool {
	for _, p := range cur.ExcludePorts {
		if !slices.Contains(next.ExcludePorts, p) {
			return true
		}
	}
	for _, a := range cur.ExcludeAddrs {
		a = unmapPrefix(a).Masked()
		covered := false
		for _, b := range next.ExcludeAddrs {
			b = unmapPrefix(b).Masked()
			if b.Bits() <= a.Bits() && b.Contains(a.Addr()) {
				covered = true
				break
			}
		}
		if !covered {
			return true
		}
	}
	return false
}

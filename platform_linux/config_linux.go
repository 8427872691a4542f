package platform_linux

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/divert"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

// resumeCacheSize is how many resumption secrets the backend keeps when
// the caller gives it no cache.
const resumeCacheSize = 1024

// checkPolicy rejects what the rules cannot express; the engines check
// the rest.
func checkPolicy(p *core.Policy) error {
	for _, pfx := range p.ExcludeAddrs {
		if !pfx.IsValid() {
			return errors.New("tcpinc: an excluded address prefix is invalid")
		}
	}
	return nil
}

// Config configures the Linux divert backend.
type Config struct {
	// Queue is the first NFQUEUE number; Queues queues (0 means 1) are
	// used, Queue..Queue+Queues-1, one engine and goroutine each.
	Queue  uint16
	Queues int
	// Policy is what new connections get: whether they are negotiated at
	// all, which are excluded (never captured: the rules let them pass
	// before any queue), TEPs, AEADs, resumption, mandatory
	// application-aware mode. The zero value leaves every connection
	// plain; core.DefaultPolicy is the service's default. Apply changes it
	// while running.
	Policy core.Policy
	// MarkMask selects the two adjacent bits of the packet and conntrack
	// marks the backend uses; 0 means DefaultMarkMask. Choose other bits
	// if the host already uses these (policy routing, other firewalls).
	MarkMask uint32
	// StrictConntrack leaves nf_conntrack_tcp_be_liberal alone. Only
	// useful where conntrack does not track TCP windows anyway.
	StrictConntrack bool
	// QueueMaxLen is the kernel's per-queue packet limit; 0 means 4096.
	QueueMaxLen uint32
	// QueueRcvBuf is each divert queue socket's receive buffer in bytes;
	// 0 means 16 MiB. When it overflows the kernel drops what it cannot
	// queue (counted as RecvENOBUFS) and TCP retransmits.
	QueueRcvBuf int
	// Engine configures each queue's engine. Its OnEvent, if set, is
	// called from the queue's goroutine. Its TEPs and AEADs are ignored
	// (Policy decides); a nil Cache gets one shared by the queues, so
	// that Policy.Resumption works.
	Engine divert.Config
	// Log receives the backend's logs; nil discards them.
	Log *slog.Logger
}

// DefaultMarkMask is the default MarkMask.
const DefaultMarkMask = 0x0c000000

// The two mark bits hold one of these values (times the mask's lowest
// bit). As conntrack marks: markCapture, markPlain. As packet marks: the
// same in verdicts (the mark chains copy them to the connection), and
// markInject on the packets the backend injects.
const (
	markCapture = 1
	markPlain   = 2
	markInject  = 3
)

// marks are the concrete mark values for one MarkMask.
type marks struct {
	mask                   uint32
	capture, plain, inject uint32
}

func newMarks(mask uint32) (marks, error) {
	if mask == 0 {
		mask = DefaultMarkMask
	}
	unit := mask & -mask
	if bits.OnesCount32(mask) != 2 || mask != 3*unit {
		return marks{}, fmt.Errorf("tcpinc: MarkMask %#x must be two adjacent bits, like %#x", mask, uint32(DefaultMarkMask))
	}
	return marks{mask: mask, capture: markCapture * unit, plain: markPlain * unit, inject: markInject * unit}, nil
}

func (c *Config) withDefaults() (Config, marks, error) {
	out := *c
	if out.Queues == 0 {
		out.Queues = 1
	}
	if out.Queues < 0 || int(out.Queue)+out.Queues-1 > 0xffff {
		return out, marks{}, fmt.Errorf("tcpinc: %d queues from queue %d do not fit the queue numbers 0–65535", out.Queues, out.Queue)
	}
	if out.QueueMaxLen == 0 {
		out.QueueMaxLen = 4096
	}
	if out.QueueRcvBuf <= 0 {
		out.QueueRcvBuf = rcvBuf
	}
	if err := checkPolicy(&out.Policy); err != nil {
		return out, marks{}, err
	}
	if out.Engine.Cache == nil {
		out.Engine.Cache = tcpcrypt.NewCache(resumeCacheSize)
	}
	if out.Log == nil {
		out.Log = slog.New(slog.DiscardHandler)
	}
	m, err := newMarks(out.MarkMask)
	return out, m, err
}

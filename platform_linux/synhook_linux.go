package platform_linux

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"golang.org/x/sys/unix"

	"tcpinc.dev/tcpinc/core/divert"
	"tcpinc.dev/tcpinc/core/redirect"
)

// synQueue is one NFQUEUE of redirect mode: the gate (applications' and
// peers' SYNs, held while the proxy dials) or the SYN hook (the wire
// legs' handshake segments). Packets are handled on the netlink reader
// goroutine; the gate hands held SYNs to goroutines of their own, and
// their verdicts come later, in any order (the kernel matches them by
// packet ID).
type synQueue struct {
	num    uint16
	mask   uint32
	nf     *nfqueue.Nfqueue
	log    *slog.Logger
	handle func(q queued)
	st     *synStats
}

// synStats count what the redirect backend's queues see.
type synStats struct {
	GateQueued     atomic.Uint64 // SYNs the gate received
	GateDuplicates atomic.Uint64 // retransmitted SYNs dropped while the first was held
	GateRedirected atomic.Uint64 // SYNs released to the proxy
	GateReleased   atomic.Uint64 // SYNs released unredirected (refused, unreachable, plain, no listener)
	HookQueued     atomic.Uint64 // handshake segments the hook received
	HookDropped    atomic.Uint64 // segments the hook dropped
	Verdicts       atomic.Uint64
	VerdictErrors  atomic.Uint64
	RecvENOBUFS    atomic.Uint64
	NoOrigDst      atomic.Uint64 // accepted connections without an original destination (closed)
	Accepted       atomic.Uint64 // connections the listeners accepted
	SrcRemapped    atomic.Uint64 // accepted connections whose source port NAT changed (conntrack gave the original)
	CtFailed       atomic.Uint64 // conntrack lookups of accepted connections that failed (SO_ORIGINAL_DST used)
}

func openSynQueue(num uint16, maxLen uint32, log *slog.Logger, st *synStats, mask uint32, handle func(queued)) (*synQueue, error) {
	q := &synQueue{num: num, mask: mask, log: log.With("queue", num), handle: handle, st: st}
	var err error
	q.nf, err = nfqueue.Open(&nfqueue.Config{
		NfQueue:      num,
		MaxPacketLen: maxPacket,
		MaxQueueLen:  maxLen,
		Copymode:     nfqueue.NfQnlCopyPacket,
		AfFamily:     unix.AF_INET,
		WriteTimeout: time.Second,
		Logger:       nfLogger{q.log},
	})
	if err != nil {
		return nil, queueError(num, "opening the netfilter netlink socket", err)
	}
	if err := setRcvBufForce(q.nf); err != nil {
		q.log.Warn("tcpinc: could not enlarge the queue's netlink receive buffer", "err", err)
	}
	return q, nil
}

// start binds the queue.
func (q *synQueue) start(ctx context.Context, fatal func(error)) error {
	err := q.nf.RegisterWithErrorFunc(ctx, func(a nfqueue.Attribute) int {
		if a.PacketID == nil {
			return 0
		}
		p := queued{id: *a.PacketID, dir: divert.Inbound}
		if a.Hook != nil && (*a.Hook == unix.NF_INET_LOCAL_OUT || *a.Hook == unix.NF_INET_POST_ROUTING) {
			p.dir = divert.Outbound
		}
		if a.Mark != nil {
			p.mark = *a.Mark
		}
		if a.Payload != nil {
			p.buf = getBuf(len(*a.Payload))
			copy(p.buf, *a.Payload)
		}
		q.handle(p)
		return 0
	}, func(err error) int {
		if ctx.Err() != nil {
			return 1
		}
		if errors.Is(err, unix.ENOBUFS) {
			if n := q.st.RecvENOBUFS.Add(1); n&(n-1) == 0 {
				q.log.Warn("tcpinc: netlink receive buffer overflowed; the kernel dropped queued packets", "times", n)
			}
			return 0
		}
		fatal(fmt.Errorf("tcpinc: queue %d: receiving: %w", q.num, err))
		return 1
	})
	if err != nil {
		return queueError(q.num, "binding", err)
	}
	return nil
}

// verdict accepts (or drops) a queued packet, with the packet replaced
// by pkt if it is not nil and the mark bits set to mark if it is not 0.
func (q *synQueue) verdict(p *queued, drop bool, mark uint32, pkt []byte) {
	var err error
	switch {
	case drop:
		err = q.nf.SetVerdict(p.id, nfqueue.NfDrop)
	default:
		var opts []nfqueue.VerdictOption
		if mark != 0 {
			opts = append(opts, nfqueue.WithMark(p.mark&^q.mask|mark))
		}
		if pkt != nil {
			opts = append(opts, nfqueue.WithAlteredPacket(pkt))
		}
		if len(opts) == 0 {
			err = q.nf.SetVerdict(p.id, nfqueue.NfAccept)
		} else {
			err = q.nf.SetVerdictWithOption(p.id, nfqueue.NfAccept, opts...)
		}
	}
	putBuf(p.buf)
	p.buf = nil
	if err != nil {
		// The packet stays queued until the queue closes; TCP
		// retransmits it.
		if n := q.st.VerdictErrors.Add(1); n&(n-1) == 0 {
			q.log.Warn("tcpinc: setting a verdict failed", "err", err, "times", n)
		}
		return
	}
	q.st.Verdicts.Add(1)
}

func (q *synQueue) close() {
	if q != nil && q.nf != nil {
		q.nf.Close()
	}
}

// hookDir maps a queued packet's direction to the hook's.
func hookDir(p *queued) redirect.Direction {
	if p.dir == divert.Outbound {
		return redirect.Outbound
	}
	return redirect.Inbound
}

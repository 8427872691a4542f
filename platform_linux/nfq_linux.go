package platform_linux

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// An in-tree NFQUEUE client over x/sys/unix, built for throughput:
//
//   - receives in batches (recvmmsg) straight into one slot per packet,
//     each big enough for a GSO super-packet plus room to grow, so the
//     engine works on the kernel's bytes with no copy;
//   - answers in batches: the verdicts of a whole batch go to the kernel
//     in one sendmsg, several netlink messages back to back, the payload
//     of a rewritten packet sent from where it is (an iovec), not copied;
//   - binds with NFQA_CFG_F_GSO, so the kernel queues GSO and GRO
//     super-packets whole instead of segmenting them first, and leaves
//     partial checksums as they are (NFQA_SKB_CSUMNOTREADY tells which).
//
// The message formats are those of linux/netfilter/nfnetlink_queue.h.

// Netlink and nfnetlink_queue constants.
const (
	nfqnlMsgPacket  = 0
	nfqnlMsgVerdict = 1
	nfqnlMsgConfig  = 2

	nfqaPacketHdr  = 1
	nfqaVerdictHdr = 2
	nfqaMark       = 3
	nfqaPayload    = 10
	nfqaCapLen     = 13
	nfqaSkbInfo    = 14

	nfqaCfgCmd         = 1
	nfqaCfgParams      = 2
	nfqaCfgQueueMaxLen = 3
	nfqaCfgMask        = 4
	nfqaCfgFlags       = 5

	nfqnlCfgCmdBind = 1
	nfqnlCopyPacket = 2

	nfqaCfgFGSO = 4

	// NFQA_SKB_INFO bits.
	nfqaSkbCsumNotReady = 1
	nfqaSkbGSO          = 2

	nfDrop   = 0
	nfAccept = 1

	nlmsgHdrLen  = 16
	nfgenHdrLen  = 4
	nlaHdrLen    = 4
	nlaTypeMask  = 0x3fff // without NLA_F_NESTED, NLA_F_NET_BYTEORDER
	nlmsgError   = 2
	nlmFRequest  = 1
	nlmFAck      = 4
	msgTypeQueue = unix.NFNL_SUBSYS_QUEUE << 8
)

// slotSize holds the largest queued packet (the IP length field is 16
// bits) with its netlink headers and attributes, and room for the engine
// to grow a packet in place.
const slotSize = 0x10000 + 4096

// nfqPacket is one queued packet as the kernel described it.
type nfqPacket struct {
	id      uint32
	hook    uint8
	mark    uint32
	skbInfo uint32
	capLen  uint32 // the packet's length when the payload is truncated, else 0
	// payload is at msg[payStart:payEnd] of the message's bytes (after
	// the netlink header).
	payStart, payEnd int
	hasPayload       bool
}

// errNoID: a packet message without the header that holds its id, so
// no verdict can name it.
var errNoID = errors.New("nfqueue: packet message without a packet header")

// truncated reports whether the kernel copied only part of the packet
// (NFQA_CAP_LEN: longer than the 65531 bytes a netlink attribute holds).
func (p *nfqPacket) truncated() bool {
	return p.capLen != 0 && int(p.capLen) > p.payEnd-p.payStart
}

// parsePacketMsg parses an NFQNL_MSG_PACKET message without its netlink
// header: the nfgenmsg and the attributes. It never panics and does not
// allocate; a malformed message is an error.
func parsePacketMsg(b []byte) (p nfqPacket, err error) {
	haveHdr := false
	defer func() {
		if err != nil && !haveHdr {
			err = fmt.Errorf("%w (%w)", errNoID, err)
		}
	}()
	if len(b) < nfgenHdrLen {
		return p, errors.New("nfqueue: message shorter than its nfgenmsg header")
	}
	off := nfgenHdrLen
	for off < len(b) {
		if len(b)-off < nlaHdrLen {
			return p, errors.New("nfqueue: truncated attribute header")
		}
		alen := int(binary.NativeEndian.Uint16(b[off:]))
		atype := binary.NativeEndian.Uint16(b[off+2:]) & nlaTypeMask
		if alen < nlaHdrLen || alen > len(b)-off {
			return p, errors.New("nfqueue: attribute length out of range")
		}
		v := b[off+nlaHdrLen : off+alen]
		switch atype {
		case nfqaPacketHdr:
			// struct nfqnl_msg_packet_hdr: be32 id, be16 hw_protocol, u8 hook.
			if len(v) < 7 {
				return p, errors.New("nfqueue: short packet header attribute")
			}
			p.id = binary.BigEndian.Uint32(v)
			p.hook = v[6]
			haveHdr = true
		case nfqaMark:
			if len(v) < 4 {
				return p, errors.New("nfqueue: short mark attribute")
			}
			p.mark = binary.BigEndian.Uint32(v)
		case nfqaCapLen:
			if len(v) < 4 {
				return p, errors.New("nfqueue: short capture length attribute")
			}
			p.capLen = binary.BigEndian.Uint32(v)
		case nfqaSkbInfo:
			if len(v) < 4 {
				return p, errors.New("nfqueue: short skb info attribute")
			}
			p.skbInfo = binary.BigEndian.Uint32(v)
		case nfqaPayload:
			p.payStart, p.payEnd, p.hasPayload = off+nlaHdrLen, off+alen, true
		}
		off += (alen + 3) &^ 3 // attributes are 4-byte aligned
	}
	if !haveHdr {
		return p, errNoID
	}
	return p, nil
}

// nfq is one bound queue on its own netlink socket. The socket is
// blocking: the worker's thread sleeps in recvmmsg and the kernel wakes
// that very thread when a packet is queued, which is faster than the Go
// netpoller's hand-off from its epoll thread (two wake-ups per batch,
// measured at about a third of the time of a short connection's
// handshake on a busy 2-core VM). A receive timeout lets the worker see
// that it should stop.
type nfq struct {
	num uint16
	fd  int
	seq uint32

	// Receiving: one slot, iovec and mmsghdr per packet of a batch.
	slots [][]byte
	iovs  []unix.Iovec
	msgs  []unix.Mmsghdr

	// Verdicts being batched: headers in hdrs, the iovecs of the
	// sendmsg (headers, payloads, padding) in out.
	hdrs  []byte
	parts []vpart
	out   []unix.Iovec

	closeOnce sync.Once
}

// recvTimeout bounds how long a receive blocks, so that a stopping
// worker notices within that time.
const recvTimeout = 100 * time.Millisecond

// vpart is one piece of the batched verdicts: a range of hdrs, or a
// payload slice (and its padding).
type vpart struct {
	hs, he  int    // hdrs[hs:he], when payload is nil
	payload []byte // a packet's new contents
	pad     int
}

var zeroPad [4]byte

// openNFQ opens a netlink socket and binds queue num to it with copy
// mode packet, the given queue length, GSO on, and a large receive
// buffer. batch is the most packets one receive returns.
func openNFQ(num uint16, maxLen uint32, batch int, rcvBuf int) (*nfq, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	// Past rmem_max with SO_RCVBUFFORCE (CAP_NET_ADMIN): bursts while
	// the engine works must not overflow the socket.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
	tv := unix.NsecToTimeval(recvTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("receive timeout: %w", err)
	}
	q := &nfq{num: num, fd: fd}
	if err := q.config(nlattr{nfqaCfgCmd, []byte{nfqnlCfgCmdBind, 0, 0, unix.AF_INET}}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding: %w", err)
	}
	params := make([]byte, 5) // struct nfqnl_msg_config_params: be32 copy_range, u8 copy_mode
	binary.BigEndian.PutUint32(params, 0xffff)
	params[4] = nfqnlCopyPacket
	var ml, fl [4]byte
	binary.BigEndian.PutUint32(ml[:], maxLen)
	binary.BigEndian.PutUint32(fl[:], nfqaCfgFGSO)
	if err := q.config(nlattr{nfqaCfgParams, params}, nlattr{nfqaCfgQueueMaxLen, ml[:]},
		nlattr{nfqaCfgFlags, fl[:]}, nlattr{nfqaCfgMask, fl[:]}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("configuring: %w", err)
	}
	q.slots = make([][]byte, batch)
	q.iovs = make([]unix.Iovec, batch)
	q.msgs = make([]unix.Mmsghdr, batch)
	for i := range q.slots {
		q.slots[i] = make([]byte, slotSize)
		q.iovs[i].Base = &q.slots[i][0]
		q.iovs[i].SetLen(slotSize)
		q.msgs[i].Hdr.Iov = &q.iovs[i]
		q.msgs[i].Hdr.SetIovlen(1)
	}
	q.hdrs = make([]byte, 0, batch*64)
	return q, nil
}

// nlattr is a netlink attribute to send.
type nlattr struct {
	typ uint16
	val []byte
}

// config sends an NFQNL_MSG_CONFIG message with the given attributes
// and waits for the kernel's acknowledgment.
func (q *nfq) config(attrs ...nlattr) error {
	b := make([]byte, nlmsgHdrLen+nfgenHdrLen, 128)
	b[nlmsgHdrLen] = unix.AF_UNSPEC
	binary.BigEndian.PutUint16(b[nlmsgHdrLen+2:], q.num)
	for _, a := range attrs {
		b = appendAttr(b, a.typ, a.val)
	}
	q.seq++
	putNlmsghdr(b, len(b), msgTypeQueue|nfqnlMsgConfig, nlmFRequest|nlmFAck, q.seq)
	if err := unix.Sendto(q.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 8192)
	for range 50 { // the receive timeout bounds each wait
		n, _, err := unix.Recvfrom(q.fd, buf, 0)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for m := buf[:n]; len(m) >= nlmsgHdrLen; {
			l := int(binary.NativeEndian.Uint32(m))
			if l < nlmsgHdrLen || l > len(m) {
				break
			}
			typ := binary.NativeEndian.Uint16(m[4:])
			seq := binary.NativeEndian.Uint32(m[8:])
			if typ == nlmsgError && seq == q.seq && l >= nlmsgHdrLen+4 {
				if e := int32(binary.NativeEndian.Uint32(m[nlmsgHdrLen:])); e != 0 {
					return unix.Errno(-e)
				}
				return nil
			}
			m = m[min((l+3)&^3, len(m)):]
		}
	}
	return errors.New("no answer from the kernel")
}

func appendAttr(b []byte, typ uint16, v []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(nlaHdrLen+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func putNlmsghdr(b []byte, length int, typ, flags uint16, seq uint32) {
	binary.NativeEndian.PutUint32(b[0:], uint32(length))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	binary.NativeEndian.PutUint32(b[12:], 0)
}

// recv waits (up to recvTimeout) for queued packets and receives up to
// len(q.slots) of them: message i is q.slots[i][:lens[i]]. It returns the
// count; 0 with EAGAIN after the timeout. ENOBUFS (the kernel dropped
// packets for lack of socket buffer) is returned as is; the socket stays
// usable.
func (q *nfq) recv(lens []int) (int, error) {
	r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(q.fd), uintptr(unsafe.Pointer(&q.msgs[0])), uintptr(len(q.msgs)),
		unix.MSG_WAITFORONE, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	n := int(r)
	for i := range n {
		lens[i] = int(q.msgs[i].Len)
	}
	return n, nil
}

// verdict adds a verdict to the batch: accept or drop packet id, with a
// new packet mark if mark is set, and new contents if payload is not nil
// (payload must stay unchanged until flush).
func (q *nfq) verdict(id uint32, accept bool, mark uint32, setMark bool, payload []byte) {
	hs := len(q.hdrs)
	h := q.hdrs
	total := nlmsgHdrLen + nfgenHdrLen + nlaHdrLen + 8
	if setMark {
		total += nlaHdrLen + 4
	}
	if payload != nil {
		total += nlaHdrLen + len(payload)
	}
	h = append(h, make([]byte, nlmsgHdrLen)...)
	putNlmsghdr(h[hs:], total, msgTypeQueue|nfqnlMsgVerdict, nlmFRequest, 0)
	h = append(h, unix.AF_UNSPEC, unix.NFNETLINK_V0, byte(q.num>>8), byte(q.num))
	var v [8]byte
	binary.BigEndian.PutUint32(v[:], nfDrop)
	if accept {
		binary.BigEndian.PutUint32(v[:], nfAccept)
	}
	binary.BigEndian.PutUint32(v[4:], id)
	h = appendAttr(h, nfqaVerdictHdr, v[:])
	if setMark {
		h = appendAttr(h, nfqaMark, binary.BigEndian.AppendUint32(v[:0], mark))
	}
	if payload != nil {
		h = binary.NativeEndian.AppendUint16(h, uint16(nlaHdrLen+len(payload)))
		h = binary.NativeEndian.AppendUint16(h, nfqaPayload)
	}
	q.hdrs = h
	if n := len(q.parts); n > 0 && q.parts[n-1].payload == nil && q.parts[n-1].he == hs {
		q.parts[n-1].he = len(h) // headers back to back: one iovec
	} else {
		q.parts = append(q.parts, vpart{hs: hs, he: len(h)})
	}
	if payload != nil {
		q.parts = append(q.parts, vpart{payload: payload, pad: (4 - len(payload)%4) % 4})
	}
}

// pending is the number of bytes of verdicts not yet sent.
func (q *nfq) pending() int { return len(q.hdrs) }

// flush sends the batched verdicts in one sendmsg. The kernel handles
// the messages in order; it reports a failed one (an unknown packet id)
// as an error message on the socket, which recv's caller counts.
func (q *nfq) flush() error {
	if len(q.parts) == 0 {
		return nil
	}
	q.out = q.out[:0]
	for _, p := range q.parts {
		var iov unix.Iovec
		if p.payload == nil {
			iov.Base = &q.hdrs[p.hs]
			iov.SetLen(p.he - p.hs)
			q.out = append(q.out, iov)
			continue
		}
		if len(p.payload) > 0 {
			iov.Base = &p.payload[0]
			iov.SetLen(len(p.payload))
			q.out = append(q.out, iov)
		}
		if p.pad > 0 {
			iov.Base = &zeroPad[0]
			iov.SetLen(p.pad)
			q.out = append(q.out, iov)
		}
	}
	var sa unix.RawSockaddrNetlink
	sa.Family = unix.AF_NETLINK
	var msg unix.Msghdr
	msg.Name = (*byte)(unsafe.Pointer(&sa))
	msg.Namelen = unix.SizeofSockaddrNetlink
	msg.Iov = &q.out[0]
	msg.SetIovlen(len(q.out))
	var err error
	for {
		_, _, errno := unix.Syscall(unix.SYS_SENDMSG, uintptr(q.fd), uintptr(unsafe.Pointer(&msg)), 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			err = errno
		}
		break
	}
	clear(q.parts) // drop references to payloads
	q.parts = q.parts[:0]
	q.hdrs = q.hdrs[:0]
	return err
}

// close closes the socket, which unbinds the queue (the kernel drops
// what is still queued). No recv may be running or start later. It is
// idempotent.
func (q *nfq) close() {
	q.closeOnce.Do(func() { unix.Close(q.fd) })
}

// netlinkError returns the errno of a netlink error message (an
// NLMSG_ERROR with a nonzero error), or 0.
func netlinkError(m []byte) unix.Errno {
	if len(m) < nlmsgHdrLen+4 || binary.NativeEndian.Uint16(m[4:]) != nlmsgError {
		return 0
	}
	return unix.Errno(-int32(binary.NativeEndian.Uint32(m[nlmsgHdrLen:])))
}

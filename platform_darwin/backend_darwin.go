package platform_darwin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/packet"
	"tcpinc.dev/tcpinc/core/redirect"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

// Config configures the macOS backend.
type Config struct {
	// Policy is the initial policy (Apply changes it).
	Policy core.Policy
	// Group is the exemption group of the service's sockets; 0 means
	// DefaultGroup.
	Group uint32
	// Mark is the reflection mark (TOS / traffic class); 0 means
	// DefaultMark.
	Mark uint8
	// StateDir keeps the pf reference token across a crash; "" means
	// /var/run/tcpinc (cleared at boot, like the token itself).
	StateDir string
	// ResumeCache is the number of resumption secrets kept; 0 means 1024.
	ResumeCache int
	// Log receives the backend's logs; nil discards.
	Log *slog.Logger
}

// Counters are the backend's own counters, beside the hook's and the
// proxy's.
type Counters struct {
	Hook    redirect.HookCounters
	Proxy   redirect.Counters
	Backend BackendCounters
}

// BackendCounters count what the macOS glue does.
type BackendCounters struct {
	Accepted      uint64 // connections the proxy listener accepted
	NatlookFailed uint64 // accepted connections pf had no state for (closed)
	Loops         uint64 // accepted connections whose destination is the proxy itself (closed)
	Reflected     uint64 // marked handshake segments read from lo0
	Duplicates    uint64 // second copies of a reflected segment (dropped)
	Injected      uint64 // reflected segments sent on with the mark cleared
	InjectErrors  uint64 // raw socket send failures
	HookDrops     uint64 // reflected segments the hook dropped
	Snooped       uint64 // SYN-ACKs read from the real interfaces
	BadRecords    uint64 // BPF buffers or packets that did not parse
	Unmarked      uint64 // wire legs whose mark was cleared after the handshake
	UnmarkLate    uint64 // wire legs unmarked by the safety timer
	AnchorReloads uint64 // anchor reloads (policy or address changes)
	Interfaces    uint64 // interfaces currently snooped
}

// Backend is the macOS redirect backend; see the package documentation.
type Backend struct {
	cfg   Config
	log   *slog.Logger
	hook  *redirect.Hook
	proxy *redirect.Proxy
	pf    *pf
	pfd   *pfDev
	inj   *injector
	lns   []net.Listener
	port  uint16

	restoreGroup func()

	mu        sync.Mutex
	policy    core.Policy
	localAddr []netip.Addr // the host's addresses the anchor was loaded with
	snoops    map[string]*bpfDev
	reflect   *bpfDev
	marked    map[markKey]*markedLeg
	closed    bool
	cancel    context.CancelFunc // stops Run's goroutines

	ctr struct {
		accepted, natlookFailed, loops, reflected, duplicates  atomic.Uint64
		injected, injectErrors, hookDrops, snooped, badRecords atomic.Uint64
		unmarked, unmarkLate, anchorReloads                    atomic.Uint64
	}
	wg sync.WaitGroup
}

// markKey names a wire leg before its local address is known: its bound
// port and its destination.
type markKey struct {
	port   uint16
	remote netip.AddrPort
}

// markedLeg is a wire leg whose socket still marks its segments.
type markedLeg struct {
	raw   syscall.RawConn
	v6    bool
	done  bool // the hook needs no more segments: unmark once raw is known
	timer *time.Timer
}

// unmarkAfter clears a wire leg's mark even if the hook never said Done,
// so that a leg cannot send its whole stream through user space.
const unmarkAfter = 10 * time.Second

// New sets the backend up: devices, the proxy listeners, and the pf
// rules, so that permission and pf problems surface here. Capturing
// begins with Run.
func New(cfg Config) (_ *Backend, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("tcpinc: tcpincd must run as root on macOS (it changes pf rules and reads /dev/pf and /dev/bpf); try: sudo tcpincd run")
	}
	if cfg.Group == 0 {
		cfg.Group = DefaultGroup
	}
	if cfg.Mark == 0 {
		cfg.Mark = DefaultMark
	}
	cfg.Mark &^= ecnMask
	if cfg.StateDir == "" {
		cfg.StateDir = "/var/run/tcpinc"
	}
	if cfg.ResumeCache == 0 {
		cfg.ResumeCache = 1024
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Backend{cfg: cfg, log: log, policy: clonePolicy(cfg.Policy),
		snoops: map[string]*bpfDev{}, marked: map[markKey]*markedLeg{}}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()

	cache := tcpcrypt.NewCache(cfg.ResumeCache)
	if b.hook, err = redirect.NewHook(redirect.HookConfig{Policy: b.policy, Cache: cache, Log: log}); err != nil {
		return nil, fmt.Errorf("tcpinc: %w", err)
	}
	if b.proxy, err = redirect.NewProxy(redirect.Config{Hook: b.hook, Dialer: (*dialer)(b), AEADs: b.policy.AEADs, Cache: cache, Log: log}); err != nil {
		return nil, fmt.Errorf("tcpinc: %w", err)
	}
	if b.pfd, err = openPFDev(); err != nil {
		return nil, err
	}
	if b.inj, err = newInjector(); err != nil {
		return nil, err
	}
	if err = b.listen(); err != nil {
		return nil, err
	}
	if b.restoreGroup, err = setGroup(cfg.Group); err != nil {
		return nil, err
	}
	if b.reflect, err = openBPF("lo0", true, func(dlt int) ([]Insn, error) { return ReflectFilter(dlt, cfg.Mark) }); err != nil {
		return nil, err
	}
	b.updateSnoops()

	b.pf = &pf{log: log, tokenPath: filepath.Join(cfg.StateDir, "pf.token")}
	b.pf.recoverStale()
	if err = b.pf.enable(); err != nil {
		return nil, err
	}
	if err = b.reloadAnchor(); err != nil {
		return nil, err
	}
	if err = b.pf.hook(); err != nil {
		return nil, err
	}
	log.Info("pf rules loaded", "anchor", AnchorName, "proxy_port", b.port, "group", cfg.Group, "mark", fmt.Sprintf("%#02x", cfg.Mark))
	return b, nil
}

// listen opens the proxy listeners on 127.0.0.1 and ::1 with one port.
func (b *Backend) listen() error {
	var lc net.ListenConfig
	for try := 0; try < 8; try++ {
		ln4, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("tcpinc: proxy listener on 127.0.0.1: %w", err)
		}
		port := uint16(ln4.Addr().(*net.TCPAddr).Port)
		ln6, err := lc.Listen(context.Background(), "tcp6", fmt.Sprintf("[::1]:%d", port))
		if err != nil {
			ln4.Close()
			continue // the port is taken on ::1: another one
		}
		b.lns, b.port = []net.Listener{ln4, ln6}, port
		return nil
	}
	return errors.New("tcpinc: no port free on both 127.0.0.1 and ::1 for the proxy listener")
}

// rules is the anchor for the current policy.
func (b *Backend) rules() Rules {
	return Rules{ProxyPort: b.port, Group: b.cfg.Group, Mark: b.cfg.Mark, Policy: b.policy}
}

// reloadAnchor loads the anchor for the current policy; pf resolves the
// "self" table to the host's addresses at this moment.
func (b *Backend) reloadAnchor() error {
	b.mu.Lock()
	text := b.rules().AnchorText()
	b.localAddr = hostAddrs()
	b.mu.Unlock()
	b.ctr.anchorReloads.Add(1)
	return b.pf.loadAnchor(text)
}

func (b *Backend) Mode() core.Mode { return core.ModeRedirect }

// Run accepts redirected connections and runs the packet paths until ctx
// ends or a fatal error occurs.
func (b *Backend) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errors.New("tcpinc: Run after Close")
	}
	b.cancel = cancel
	b.mu.Unlock()
	errc := make(chan error, len(b.lns)+1)
	for _, ln := range b.lns {
		b.wg.Go(func() { errc <- b.acceptLoop(ctx, ln) })
	}
	b.mu.Lock()
	b.reflect.started = true
	b.mu.Unlock()
	b.wg.Go(func() { errc <- b.reflectLoop(ctx) })
	b.wg.Go(func() { b.watch(ctx) })
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
}

func (b *Backend) acceptLoop(ctx context.Context, ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("tcpinc: proxy listener: %w", err)
		}
		b.ctr.accepted.Add(1)
		go b.serve(ctx, c)
	}
}

func (b *Backend) serve(ctx context.Context, c net.Conn) {
	src := addrPortOf(c.RemoteAddr())
	proxy := addrPortOf(c.LocalAddr())
	dst, err := b.pfd.origDst(src, proxy)
	if err != nil {
		b.ctr.natlookFailed.Add(1)
		b.log.Info("redirected connection without a pf state; closed", "src", src, "err", err)
		resetConn(c)
		return
	}
	if b.isWireLeg(src, dst) {
		// One of the proxy's own wire legs came back to it: pf's group
		// match did not exempt a re-injected SYN. Proxying it would
		// dial again and loop; refuse, loudly.
		b.ctr.loops.Add(1)
		b.log.Error("a wire leg of the proxy was redirected to the proxy; pf's group exemption does not hold on this macOS (see docs/macos.md, Not verified)", "src", src, "dst", dst)
		resetConn(c)
		return
	}
	if dst.Addr().IsLoopback() || dst.Port() == b.port && slices.Contains(b.hostAddrs(), dst.Addr()) {
		b.ctr.loops.Add(1)
		b.log.Warn("redirected connection points at the proxy itself; closed", "src", src, "dst", dst)
		resetConn(c)
		return
	}
	if err := b.proxy.Serve(ctx, c, redirect.Flow{Dir: redirect.Outbound, Src: src, Dst: dst}); err != nil {
		b.log.Debug("proxied connection ended", "src", src, "dst", dst, "err", err)
	}
}

// reflectLoop reads the wire legs' marked handshake segments from lo0,
// runs the hook on them and sends them on.
func (b *Backend) reflectLoop(ctx context.Context) error {
	r := &reflector{hook: b.hook, mark: b.cfg.Mark}
	work := make([]byte, 0, 65535+64)
	defer b.reflect.close()
	for ctx.Err() == nil && !b.reflect.stop.Load() {
		buf, err := b.reflect.read()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("tcpinc: reading lo0 (bpf): %w", err)
		}
		recs := NewBPFRecords(buf)
		for {
			frame, truncated, ok := recs.Next()
			if !ok {
				break
			}
			ip := StripLink(b.reflect.dlt, frame)
			if ip == nil || truncated {
				b.ctr.badRecords.Add(1)
				continue
			}
			// Room for the ENO option the hook may add.
			work = append(work[:0], ip...)
			b.reflectOne(r, work[:len(ip):cap(work)])
		}
		if recs.Err() != nil {
			b.ctr.badRecords.Add(1)
			b.log.Warn("bpf: malformed buffer from lo0", "err", recs.Err())
		}
	}
	return nil
}

func (b *Backend) reflectOne(r *reflector, buf []byte) {
	out, res, done, key := r.process(buf, time.Now())
	if done {
		b.legDone(key)
	}
	switch res {
	case reflectBad:
		b.ctr.badRecords.Add(1)
		return
	case reflectDuplicate:
		b.ctr.duplicates.Add(1)
		return
	case reflectDrop:
		b.ctr.reflected.Add(1)
		b.ctr.hookDrops.Add(1)
		return
	}
	b.ctr.reflected.Add(1)
	q, err := packet.Parse(out)
	if err == nil {
		err = b.inject(&q)
	}
	if err != nil {
		b.ctr.injectErrors.Add(1)
		b.log.Info("re-injecting a handshake segment failed", "src", key.local, "dst", key.remote, "err", err)
		if errors.Is(err, unix.EMSGSIZE) {
			// A full-sized segment has no room for the 4 bytes of
			// "45 02" within the path MTU (a resumed session sending
			// data at once). Stop reflecting the leg: the kernel's
			// retransmission goes out as it is. ENO already travelled
			// in the SYN and the ACK before it.
			b.hook.Forget(key.local, key.remote)
			b.legDone(key)
		}
		return
	}
	b.ctr.injected.Add(1)
}

func (b *Backend) inject(p *packet.Packet) error {
	if p.IPv4() != nil {
		return b.inj.send4(p.Bytes())
	}
	r, err := splitIPv6(p)
	if err != nil {
		return err
	}
	return b.inj.send6(r)
}

// snoopLoop feeds the SYN-ACKs one interface receives to the hook. The
// kernel has its own copy; the hook only reads the peer's ENO option.
func (b *Backend) snoopLoop(ctx context.Context, dev *bpfDev) {
	work := make([]byte, 0, synAckSnap+64)
	defer func() {
		dev.close()
		// Forget the device, so that the next interface scan opens a
		// new one if the interface is still there.
		b.mu.Lock()
		if b.snoops[dev.ifname] == dev {
			delete(b.snoops, dev.ifname)
		}
		b.mu.Unlock()
	}()
	for ctx.Err() == nil && !dev.stop.Load() {
		buf, err := dev.read()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, unix.EBADF) {
				b.log.Info("bpf: interface read failed; no longer snooped", "if", dev.ifname, "err", err)
			}
			return
		}
		recs := NewBPFRecords(buf)
		for {
			frame, _, ok := recs.Next()
			if !ok {
				break
			}
			ip := StripLink(dev.dlt, frame)
			if ip == nil {
				b.ctr.badRecords.Add(1)
				continue
			}
			b.ctr.snooped.Add(1)
			work = append(work[:0], ip...)
			// A segment cut by the snap length does not parse: only
			// SYN-ACKs pass the filter, and their headers fit.
			done, key, ok := snoop(b.hook, work, time.Now())
			if !ok {
				b.ctr.badRecords.Add(1)
				continue
			}
			if done {
				b.legDone(key)
			}
		}
	}
}

// watch keeps the snooped interfaces and the anchor's address table in
// line with the host's interfaces, and sweeps the hook.
func (b *Backend) watch(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	b.startSnoops(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.hook.Sweep(time.Now())
		b.updateSnoops()
		b.startSnoops(ctx)
		b.mu.Lock()
		changed := !slices.Equal(b.localAddr, hostAddrs())
		b.mu.Unlock()
		if changed {
			if err := b.reloadAnchor(); err != nil {
				b.log.Warn("pf: reloading the anchor after an address change failed", "err", err)
			}
		}
	}
}

// updateSnoops opens BPF on new usable interfaces and closes it on gone
// ones. A device is started by startSnoops.
func (b *Backend) updateSnoops() {
	ifs, err := net.Interfaces()
	if err != nil {
		b.log.Warn("listing interfaces", "err", err)
		return
	}
	want := map[string]bool{}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		if addrs, _ := ifc.Addrs(); len(addrs) == 0 {
			continue
		}
		want[ifc.Name] = true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, d := range b.snoops {
		if !want[name] {
			if d != nil {
				d.shutdown(d.started)
			}
			delete(b.snoops, name)
		}
	}
	for name := range want {
		if _, ok := b.snoops[name]; ok {
			continue
		}
		d, err := openBPF(name, false, SYNACKFilter)
		if err != nil {
			// Unsupported link types (e.g. some tunnels) are skipped:
			// connections through them stay plain.
			b.log.Info("interface not snooped; its connections stay plain", "if", name, "err", err)
			b.snoops[name] = nil
			continue
		}
		b.snoops[name] = d
	}
}

// startSnoops starts a reader for every device without one.
func (b *Backend) startSnoops(ctx context.Context) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, d := range b.snoops {
		if d == nil || d.buf == nil {
			continue
		}
		if d.started {
			continue
		}
		d.started = true
		b.wg.Go(func() { b.snoopLoop(ctx, d) })
		b.log.Debug("snooping SYN-ACKs", "if", name, "dlt", d.dlt)
	}
}

// isWireLeg reports whether src → dst is one of the proxy's own wire
// legs while it is being set up.
func (b *Backend) isWireLeg(src, dst netip.AddrPort) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.marked[markKey{src.Port(), dst}] != nil
}

// legDone clears the mark of a wire leg whose handshake the hook has
// finished with, so its stream no longer passes through user space. The
// hook says Done for many segments of connections that are not wire legs
// (every SYN-ACK the host receives); those find no entry here.
func (b *Backend) legDone(k legKey) {
	key := markKey{k.local.Port(), k.remote}
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.marked[key]
	if m == nil {
		return
	}
	if m.raw == nil {
		m.done = true // the dial has not returned yet: it unmarks
		return
	}
	b.unmarkLocked(key, m)
}

func (b *Backend) unmarkLocked(key markKey, m *markedLeg) {
	delete(b.marked, key)
	if m.timer != nil {
		m.timer.Stop()
	}
	if err := setMark(m.raw, m.v6, 0); err != nil {
		b.log.Debug("clearing a wire leg's mark", "port", key.port, "remote", key.remote, "err", err)
		return
	}
	b.ctr.unmarked.Add(1)
}

// dialer opens the wire legs: sockets that carry the mark from the start,
// so that their SYN is reflected. Each is bound to its port before
// connect and registered under (port, destination), so that the hook's
// verdicts can find it even before the dial returns.
type dialer Backend

func (d *dialer) DialContext(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	b := (*Backend)(d)
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	v6 := !dst.Addr().Is4()
	var key markKey
	m := &markedLeg{v6: v6}
	nd := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		port, err := bindMarked(c, v6, b.cfg.Mark)
		if err != nil {
			return err
		}
		key = markKey{port, dst}
		b.mu.Lock()
		b.marked[key] = m
		b.mu.Unlock()
		return nil
	}}
	network := "tcp4"
	if v6 {
		network = "tcp6"
	}
	c, err := nd.DialContext(ctx, network, dst.String())
	if err != nil {
		b.mu.Lock()
		if b.marked[key] == m {
			delete(b.marked, key)
		}
		b.mu.Unlock()
		return nil, err
	}
	tc := c.(*net.TCPConn)
	raw, err := tc.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	// Leave room for "45 02" (4 bytes with padding) in full-sized
	// segments sent while the leg is marked: a resumed session sends data
	// before the peer's first segment. The SYN-ACK's MSS, which Linux
	// lowers in flight, has already reached the kernel here; lowering
	// the socket's own segment size is the equivalent.
	if err := shrinkMSS(raw, 4); err != nil {
		b.log.Debug("lowering a wire leg's MSS", "dst", dst, "err", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.marked[key] != m {
		return c, nil // Close ran meanwhile
	}
	m.raw = raw
	if m.done {
		b.unmarkLocked(key, m)
		return c, nil
	}
	// On an encrypted leg the hook wants marked segments until the peer's
	// first non-SYN segment (RFC 8547 §4.6), which BPF does not show it
	// (the filter takes SYN-ACKs only). The first bytes the peer sends
	// (Init2, or data) prove that segment arrived: unmark then.
	k := legKey{addrPortOf(c.LocalAddr()), addrPortOf(c.RemoteAddr())}
	wc := &wireConn{TCPConn: tc, onRead: func() {
		b.hook.Forget(k.local, k.remote)
		b.legDone(k)
	}}
	m.timer = time.AfterFunc(unmarkAfter, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.marked[key] == m {
			b.ctr.unmarkLate.Add(1)
			b.unmarkLocked(key, m)
		}
	})
	return wc, nil
}

// wireConn is a wire leg that reports its first received bytes.
type wireConn struct {
	*net.TCPConn
	once   atomic.Bool
	onRead func()
}

func (c *wireConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	if n > 0 && c.once.CompareAndSwap(false, true) {
		c.onRead()
	}
	return n, err
}

// shrinkMSS lowers a connected socket's segment size by n bytes (TCP
// only lets it go down).
func shrinkMSS(c syscall.RawConn, n int) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		var mss int
		if mss, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG); serr != nil || mss <= n+64 {
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG, mss-n)
	})
	return errors.Join(err, serr)
}

// bindMarked marks a new socket and binds it to an ephemeral port (any
// address: connect still picks the source address by route).
func bindMarked(c syscall.RawConn, v6 bool, mark uint8) (uint16, error) {
	if err := setMark(c, v6, mark); err != nil {
		return 0, fmt.Errorf("marking the wire leg: %w", err)
	}
	var port uint16
	var serr error
	err := c.Control(func(fd uintptr) {
		var sa unix.Sockaddr = &unix.SockaddrInet4{}
		if v6 {
			sa = &unix.SockaddrInet6{}
		}
		if serr = unix.Bind(int(fd), sa); serr != nil {
			return
		}
		var got unix.Sockaddr
		if got, serr = unix.Getsockname(int(fd)); serr != nil {
			return
		}
		switch a := got.(type) {
		case *unix.SockaddrInet4:
			port = uint16(a.Port)
		case *unix.SockaddrInet6:
			port = uint16(a.Port)
		}
	})
	if err = errors.Join(err, serr); err != nil {
		return 0, fmt.Errorf("binding the wire leg: %w", err)
	}
	return port, nil
}

// setMark sets the socket's TOS (IPv4) or traffic class (IPv6).
func setMark(c syscall.RawConn, v6 bool, mark uint8) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_TCLASS, int(mark))
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TOS, int(mark))
		}
	})
	return errors.Join(err, serr)
}

// Close stops capturing: the pf rules go first (new connections stay
// plain), then every proxied connection is reset and every secret erased.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	cancel := b.cancel
	b.mu.Unlock()
	if cancel != nil {
		cancel()
	}

	var errs []error
	if b.pf != nil {
		b.pf.flushAnchor()
		if err := b.pf.unhook(); err != nil {
			errs = append(errs, fmt.Errorf("removing the anchor hooks from the main ruleset: %w", err))
		}
		if err := b.pf.release(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ln := range b.lns {
		ln.Close()
	}
	if b.proxy != nil {
		b.proxy.CloseAll()
	}
	if b.hook != nil {
		b.hook.Close()
	}
	b.mu.Lock()
	if b.reflect != nil {
		b.reflect.shutdown(b.reflect.started)
	}
	for _, d := range b.snoops {
		if d != nil {
			d.shutdown(d.started)
		}
	}
	for k, m := range b.marked {
		if m.timer != nil {
			m.timer.Stop()
		}
		delete(b.marked, k)
	}
	b.mu.Unlock()
	// The readers close their devices within their read timeout.
	b.wg.Wait()
	if b.inj != nil {
		b.inj.close()
	}
	if b.pfd != nil {
		b.pfd.close()
	}
	if b.restoreGroup != nil {
		b.restoreGroup()
	}
	return errors.Join(errs...)
}

func (b *Backend) Conns() []core.ConnInfo { return b.proxy.Conns() }

func (b *Backend) Lookup(local, remote netip.AddrPort) (core.ConnInfo, bool) {
	return b.proxy.Lookup(local, remote)
}

// Snapshot returns the counters.
func (b *Backend) Snapshot() Counters {
	c := Counters{Hook: b.hook.Counters(), Proxy: b.proxy.Counters()}
	s := &b.ctr
	c.Backend = BackendCounters{
		Accepted: s.accepted.Load(), NatlookFailed: s.natlookFailed.Load(), Loops: s.loops.Load(),
		Reflected: s.reflected.Load(), Duplicates: s.duplicates.Load(), Injected: s.injected.Load(),
		InjectErrors: s.injectErrors.Load(), HookDrops: s.hookDrops.Load(), Snooped: s.snooped.Load(),
		BadRecords: s.badRecords.Load(), Unmarked: s.unmarked.Load(), UnmarkLate: s.unmarkLate.Load(),
		AnchorReloads: s.anchorReloads.Load(),
	}
	b.mu.Lock()
	for _, d := range b.snoops {
		if d != nil {
			c.Backend.Interfaces++
		}
	}
	b.mu.Unlock()
	return c
}

func (b *Backend) Counters() map[string]uint64 { return core.Flatten(b.Snapshot(), CounterIndexName) }

// CounterIndexName names the elements of the counter arrays.
func CounterIndexName(path string, i int) string {
	if path == "hook_plain_reasons" {
		return eno.Reason(i).String()
	}
	return ""
}

// Apply changes the policy for new connections: the hook's, the proxy's
// AEADs and the anchor (exclusions, or no rules at all when disabled).
func (b *Backend) Apply(p core.Policy) error {
	p = clonePolicy(p)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errors.New("tcpinc: Apply after Close")
	}
	old := b.policy
	b.mu.Unlock()
	if err := b.hook.SetPolicy(p); err != nil {
		return fmt.Errorf("tcpinc: applying the policy: %w", err)
	}
	if err := b.proxy.SetAEADs(p.AEADs); err != nil {
		_ = b.hook.SetPolicy(old)
		return fmt.Errorf("tcpinc: applying the policy: %w", err)
	}
	b.mu.Lock()
	b.policy = p
	b.mu.Unlock()
	if err := b.reloadAnchor(); err != nil {
		b.mu.Lock()
		b.policy = old
		b.mu.Unlock()
		_ = b.hook.SetPolicy(old)
		_ = b.proxy.SetAEADs(old.AEADs)
		return fmt.Errorf("tcpinc: loading the pf anchor for the new policy: %w", err)
	}
	return nil
}

func clonePolicy(p core.Policy) core.Policy {
	p.ExcludePorts = slices.Clone(p.ExcludePorts)
	p.ExcludeAddrs = slices.Clone(p.ExcludeAddrs)
	p.TEPs = slices.Clone(p.TEPs)
	p.AEADs = slices.Clone(p.AEADs)
	return p
}

// hostAddrs lists the host's addresses, sorted, to notice changes that
// need the anchor's "self" table reloaded.
func hostAddrs() []netip.Addr {
	as, _ := net.InterfaceAddrs()
	var out []netip.Addr
	for _, a := range as {
		if pfx, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, pfx.Addr().Unmap().WithZone(""))
		}
	}
	slices.SortFunc(out, func(x, y netip.Addr) int { return x.Compare(y) })
	return slices.Compact(out)
}

func (b *Backend) hostAddrs() []netip.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.localAddr
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
	}
	return netip.AddrPort{}
}

// resetConn closes c with SO_LINGER 0, so the peer gets a RST.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

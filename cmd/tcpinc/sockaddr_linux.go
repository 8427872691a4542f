package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// socketAddrs finds the addresses of the TCP socket that process pid has
// open as descriptor fd: /proc/PID/fd/FD names the socket's inode, and
// /proc/PID/net/tcp and tcp6 (the process's network namespace) list
// the inode's addresses.
func socketAddrs(pid, fd int) (local, remote netip.AddrPort, err error) {
	link := fmt.Sprintf("/proc/%d/fd/%d", pid, fd)
	target, err := os.Readlink(link)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return local, remote, fmt.Errorf("reading %s: permission denied: run as the process's user or as root", link)
		}
		return local, remote, fmt.Errorf("reading %s: %w (is the process running and the descriptor open?)", link, err)
	}
	inode, ok := strings.CutPrefix(target, "socket:[")
	inode, ok2 := strings.CutSuffix(inode, "]")
	if !ok || !ok2 {
		return local, remote, fmt.Errorf("descriptor %d of process %d is %s, not a socket", fd, pid, target)
	}
	ino, err := strconv.ParseUint(inode, 10, 64)
	if err != nil {
		return local, remote, fmt.Errorf("descriptor %d of process %d: odd socket name %q", fd, pid, target)
	}
	for _, table := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue // no IPv6, say
		}
		l, r, found, err := findInode(data, ino)
		if err != nil {
			return local, remote, fmt.Errorf("/proc/%d/net/%s: %w", pid, table, err)
		}
		if found {
			return l, r, nil
		}
	}
	return local, remote, fmt.Errorf("descriptor %d of process %d is not a TCP socket (or not connected)", fd, pid)
}

// findInode looks up a socket by inode in the text of /proc/net/tcp or
// tcp6. Lines that do not parse are skipped: the file's columns are
// fixed, but a kernel could add some.
func findInode(data []byte, inode uint64) (local, remote netip.AddrPort, found bool, err error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 4096)
	first := true
	for sc.Scan() {
		if first { // header
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
		if len(f) < 10 {
			continue
		}
		ino, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil || ino != inode {
			continue
		}
		l, err := parseProcAddr(f[1])
		if err != nil {
			return local, remote, false, err
		}
		r, err := parseProcAddr(f[2])
		if err != nil {
			return local, remote, false, err
		}
		return l, r, true, nil
	}
	return local, remote, false, nil
}

// parseProcAddr parses "0100007F:1F90": the address as the kernel's
// 32-bit words printed in host byte order, and the port in hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok || (len(a) != 8 && len(a) != 32) {
		return netip.AddrPort{}, fmt.Errorf("malformed address %q", s)
	}
	raw, err := hex.DecodeString(a)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("malformed address %q", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("malformed port in %q", s)
	}
	// Each word was printed as a host-order integer; put its bytes back.
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}

package platform_linux

import (
	"fmt"
	"os"
	"strings"
)

// liberalPath is per network namespace.
const liberalPath = "/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal"

// setLiberal turns on conntrack's liberal TCP window tracking and returns
// a function restoring the previous value. The engine rewrites sequence
// numbers after conntrack has seen outbound packets, so a strict
// conntrack would judge the connection's inbound packets invalid.
func setLiberal() (restore func() error, err error) {
	old, err := os.ReadFile(liberalPath)
	if err != nil {
		return nil, fmt.Errorf("tcpinc: reading %s (conntrack, CONFIG_NF_CONNTRACK, not loaded?): %w", liberalPath, err)
	}
	prev := strings.TrimSpace(string(old))
	if prev == "1" {
		return func() error { return nil }, nil
	}
	if err := os.WriteFile(liberalPath, []byte("1\n"), 0o644); err != nil {
		return nil, fmt.Errorf("tcpinc: enabling liberal TCP tracking in conntrack: %w", err)
	}
	return func() error { return os.WriteFile(liberalPath, []byte(prev+"\n"), 0o644) }, nil
}

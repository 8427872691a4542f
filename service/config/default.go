package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// DefaultFile is the configuration file that spells out every default,
// with its documentation: what 'tcpincd --print-default-config' prints
// and what the packages install. Parsing it gives Default().
func DefaultFile() string {
	d := Default()
	return fmt.Sprintf(defaultFileText, DefaultPath, tomlQuote(d.Control.Socket), tomlQuote(d.Control.Group))
}

const defaultFileText = `# tcpincd configuration (TOML). Default path: %s
# Every key is optional: this file only spells out the defaults, and
# tcpincd runs the same without it. Apply changes with 'tcpinc reload'
# (or SIGHUP): encrypted connections keep working; the keys marked
# "restart" take effect only when tcpincd restarts.

# Offer encryption to new connections. 'tcpinc down' and 'tcpinc up'
# change this at run time, until tcpincd restarts or this value changes.
enabled = true

# Capture mode (restart): "auto" picks the best one this platform has,
# "divert" rewrites the kernel's packets, "redirect" proxies its streams.
mode = "auto"

# Connections with one of these ports, or an address in one of these
# prefixes, at either end are left plain. Loopback always is.
# Example: exclude_ports = [22, 53]
#          exclude_addrs = ["10.0.0.0/8", "fd00::/8", "192.0.2.7"]
exclude_ports = []
exclude_addrs = []

# Encryption protocols (TEPs), most preferred first; empty means all:
# "curve25519", "curve448", "p256", "p521" (X25519 preferred).
teps = []

# AEADs, most preferred first; empty means "aes128gcm",
# "chacha20poly1305", "aes256gcm". A list must include "aes128gcm".
aeads = []

# Session resumption (RFC 8548 section 3.5): reconnects to a peer skip
# the key exchange.
resumption = true

# Encrypt only with peers that set the application-aware bit
# (TCP_ENO_AA_MANDATORY for every connection).
aa_mandatory = false

[control]
# Control socket (restart). Every local user may read (tcpinc status,
# conns, sessid); root and members of group may also control (tcpinc
# up, down, reload). A group that does not exist means root only.
# On Windows the group is ignored: elevated Administrators control.
socket = %s
group = %s
# true: only root and group may connect at all (socket mode 0660).
private = false

[log]
# "debug", "info", "warn" or "error".
level = "info"

[queue]
# Linux divert mode (restart): NFQUEUE numbers first .. first+count-1,
# one worker each. Change first if another program uses queue 0.
first = 0
count = 1

[metrics]
# Serve Prometheus metrics over HTTP at http://LISTEN/metrics, e.g.
# "127.0.0.1:9712" (loopback only; restart). Empty: off ('tcpinc metrics'
# prints them anyway).
listen = ""
`

// Diff compares two configurations key by key and returns the keys
// whose values differ, split into those a running daemon applies at once
// and those that need a restart.
func Diff(old, new Config) (live, restart []string) {
	add := func(key string, changed, needRestart bool) {
		if !changed {
			return
		}
		if needRestart {
			restart = append(restart, key)
		} else {
			live = append(live, key)
		}
	}
	add("enabled", old.Enabled != new.Enabled, false)
	add("mode", old.Mode != new.Mode, true)
	add("exclude_ports", !slices.Equal(old.ExcludePorts, new.ExcludePorts), false)
	add("exclude_addrs", !slices.Equal(old.ExcludeAddrs, new.ExcludeAddrs), false)
	add("teps", !slices.Equal(old.TEPs, new.TEPs), false)
	add("aeads", !slices.Equal(old.AEADs, new.AEADs), false)
	add("resumption", old.Resumption != new.Resumption, false)
	add("aa_mandatory", old.AAMandatory != new.AAMandatory, false)
	add("control.socket", old.Control.Socket != new.Control.Socket, true)
	add("control.group", old.Control.Group != new.Control.Group, true)
	add("control.private", old.Control.Private != new.Control.Private, true)
	add("log.level", old.LogLevel != new.LogLevel, false)
	add("queue.first", old.Queue != new.Queue, true)
	add("queue.count", old.Queues != new.Queues, true)
	add("metrics.listen", old.MetricsListen != new.MetricsListen, true)
	return live, restart
}

// Encode writes c as a configuration file (without comments) that
// parses back to c.
func (c *Config) Encode() string {
	var b strings.Builder
	q := tomlQuote
	fmt.Fprintf(&b, "enabled = %t\nmode = %s\n", c.Enabled, q(c.Mode))
	list := func(n int, f func(int) string) string {
		s := make([]string, n)
		for i := range n {
			s[i] = f(i)
		}
		return "[" + strings.Join(s, ", ") + "]"
	}
	fmt.Fprintf(&b, "exclude_ports = %s\n", list(len(c.ExcludePorts), func(i int) string { return strconv.Itoa(int(c.ExcludePorts[i])) }))
	fmt.Fprintf(&b, "exclude_addrs = %s\n", list(len(c.ExcludeAddrs), func(i int) string { return q(c.ExcludeAddrs[i].String()) }))
	fmt.Fprintf(&b, "teps = %s\n", list(len(c.TEPs), func(i int) string { return q(TEPName(c.TEPs[i])) }))
	fmt.Fprintf(&b, "aeads = %s\n", list(len(c.AEADs), func(i int) string { return q(AEADName(c.AEADs[i])) }))
	fmt.Fprintf(&b, "resumption = %t\naa_mandatory = %t\n", c.Resumption, c.AAMandatory)
	fmt.Fprintf(&b, "[control]\nsocket = %s\ngroup = %s\nprivate = %t\n", q(c.Control.Socket), q(c.Control.Group), c.Control.Private)
	fmt.Fprintf(&b, "[log]\nlevel = %s\n", q(strings.ToLower(c.LogLevel.String())))
	fmt.Fprintf(&b, "[queue]\nfirst = %d\ncount = %d\n", c.Queue, c.Queues)
	fmt.Fprintf(&b, "[metrics]\nlisten = %s\n", q(c.MetricsListen))
	return b.String()
}

// tomlQuote writes s as a TOML basic string.
func tomlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

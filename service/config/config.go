// Package config reads tcpincd's configuration file (TOML).
//
// Nothing needs configuring: a missing file at the default path means the
// defaults (Default), which encrypt every TCP connection whose peer
// speaks TCP-ENO, except loopback. Every key is optional. Unknown keys,
// wrong types and out-of-range values are errors that name the key and
// say what is allowed, so a typo never silently changes what is
// encrypted.
//
// The file's reference is DefaultFile (what 'tcpincd
// --print-default-config' prints) and docs/service.md.
package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
	"tcpinc.dev/tcpinc/service/control"
)

// maxFileSize bounds the configuration file; a real one is a few
// hundred bytes.
const maxFileSize = 1 << 20

// Config is tcpincd's configuration.
type Config struct {
	// Enabled: offer encryption to new connections (tcpinc up/down
	// changes it at run time).
	Enabled bool
	// Mode is the capture mode: auto, divert or redirect.
	Mode string
	// ExcludePorts and ExcludeAddrs leave connections with one of these
	// ports, or an address in one of these prefixes, at either end plain.
	ExcludePorts []uint16
	ExcludeAddrs []netip.Prefix
	// TEPs and AEADs, most preferred first; empty means all supported.
	TEPs  []eno.TEP
	AEADs []tcpcrypt.AEADID
	// Resumption allows session resumption (RFC 8548 §3.5).
	Resumption bool
	// AAMandatory: ENO only with peers that set the application-aware
	// bit (TCP_ENO_AA_MANDATORY for every connection).
	AAMandatory bool

	Control ControlConfig
	// LogLevel is the minimum level logged.
	LogLevel slog.Level
	// Queue is the first packet queue number, Queues how many.
	Queue  uint16
	Queues int
	// MetricsListen is a loopback host:port where tcpincd serves
	// Prometheus metrics over HTTP at /metrics; empty means off.
	MetricsListen string
}

// ControlConfig configures the control socket.
type ControlConfig struct {
	// Socket is the control socket's path.
	Socket string
	// Group may control (up, down, reload) besides root.
	Group string
	// Private limits reading to root and Group too.
	Private bool
}

// Default returns the configuration used when there is no file.
func Default() Config {
	return Config{
		Enabled:    true,
		Mode:       "auto",
		Resumption: true,
		Control:    ControlConfig{Socket: control.DefaultPath, Group: control.DefaultAdminGroup},
		LogLevel:   slog.LevelInfo,
		Queues:     1,
	}
}

// Policy is the backend policy the configuration asks for.
func (c *Config) Policy() core.Policy {
	p := core.Policy{
		Enabled:      c.Enabled,
		ExcludePorts: slices.Clone(c.ExcludePorts),
		ExcludeAddrs: slices.Clone(c.ExcludeAddrs),
		AEADs:        slices.Clone(c.AEADs),
		Resumption:   c.Resumption,
		AAMandatory:  c.AAMandatory,
	}
	// core.Policy lists TEPs in increasing order of preference (as the
	// ENO option carries them); the file lists the favourite first.
	if len(c.TEPs) > 0 {
		p.TEPs = slices.Clone(c.TEPs)
		slices.Reverse(p.TEPs)
	}
	return p
}

// Load reads the file at path. If path is "" it reads DefaultPath, and a
// missing default file means Default() (with found false). A file named
// explicitly must exist.
func Load(path string) (cfg Config, found bool, err error) {
	explicit := path != ""
	if !explicit {
		path = DefaultPath
	}
	f, err := os.Open(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return Default(), false, nil
		}
		return Config{}, false, fmt.Errorf("reading the configuration: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return Config{}, false, fmt.Errorf("reading the configuration %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return Config{}, false, fmt.Errorf("configuration %s: larger than %d bytes; is it the right file?", path, maxFileSize)
	}
	cfg, err = Parse(data)
	if err != nil {
		return Config{}, false, fmt.Errorf("configuration %s: %w", path, err)
	}
	return cfg, true, nil
}

// KeyError is a configuration value that is not allowed.
type KeyError struct {
	Key     string // dotted key, e.g. "control.socket"
	Problem string // what is wrong and what is allowed
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Problem }

// Parse parses and checks a configuration file's contents. Keys left out
// keep their Default values.
func Parse(data []byte) (Config, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Config{}, fmt.Errorf("line %d: %s (TOML syntax; see 'tcpincd --print-default-config')", pe.Position.Line, pe.Message)
		}
		return Config{}, fmt.Errorf("TOML syntax: %w", err)
	}
	cfg := Default()
	p := parser{}
	p.table(raw, "", topKeys, &cfg)
	if int(cfg.Queue)+cfg.Queues > 65536 {
		p.fail("queue.count", "queues %d to %d do not fit the queue numbers 0-65535; lower queue.first or queue.count", cfg.Queue, int(cfg.Queue)+cfg.Queues-1)
	}
	if len(p.errs) > 0 {
		return Config{}, errors.Join(p.errs...)
	}
	return cfg, nil
}

// keySpec decodes one key.
type keySpec struct {
	name string
	set  func(p *parser, key string, v any, c *Config)
}

var topKeys = []keySpec{
	{"enabled", func(p *parser, k string, v any, c *Config) { p.boolean(k, v, &c.Enabled) }},
	{"mode", func(p *parser, k string, v any, c *Config) {
		p.enum(k, v, &c.Mode, "auto", "divert", "redirect")
	}},
	{"exclude_ports", func(p *parser, k string, v any, c *Config) { c.ExcludePorts = p.ports(k, v) }},
	{"exclude_addrs", func(p *parser, k string, v any, c *Config) { c.ExcludeAddrs = p.prefixes(k, v) }},
	{"teps", func(p *parser, k string, v any, c *Config) { c.TEPs = p.teps(k, v) }},
	{"aeads", func(p *parser, k string, v any, c *Config) { c.AEADs = p.aeads(k, v) }},
	{"resumption", func(p *parser, k string, v any, c *Config) { p.boolean(k, v, &c.Resumption) }},
	{"aa_mandatory", func(p *parser, k string, v any, c *Config) { p.boolean(k, v, &c.AAMandatory) }},
	{"control", func(p *parser, k string, v any, c *Config) { p.sub(k, v, controlKeys, c) }},
	{"log", func(p *parser, k string, v any, c *Config) { p.sub(k, v, logKeys, c) }},
	{"queue", func(p *parser, k string, v any, c *Config) { p.sub(k, v, queueKeys, c) }},
	{"metrics", func(p *parser, k string, v any, c *Config) { p.sub(k, v, metricsKeys, c) }},
}

var controlKeys = []keySpec{
	{"socket", func(p *parser, k string, v any, c *Config) { p.path(k, v, &c.Control.Socket) }},
	{"group", func(p *parser, k string, v any, c *Config) { p.group(k, v, &c.Control.Group) }},
	{"private", func(p *parser, k string, v any, c *Config) { p.boolean(k, v, &c.Control.Private) }},
}

var logKeys = []keySpec{
	{"level", func(p *parser, k string, v any, c *Config) {
		var s string
		if p.enum(k, v, &s, "debug", "info", "warn", "error") {
			c.LogLevel.UnmarshalText([]byte(s))
		}
	}},
}

var queueKeys = []keySpec{
	{"first", func(p *parser, k string, v any, c *Config) {
		if n, ok := p.integer(k, v, 0, 65535, "a queue number 0-65535"); ok {
			c.Queue = uint16(n)
		}
	}},
	{"count", func(p *parser, k string, v any, c *Config) {
		if n, ok := p.integer(k, v, 1, 64, "a number of queues 1-64"); ok {
			c.Queues = int(n)
		}
	}},
}

var metricsKeys = []keySpec{
	{"listen", func(p *parser, k string, v any, c *Config) { p.listen(k, v, &c.MetricsListen) }},
}

// parser collects every error instead of stopping at the first, so one
// run of tcpincd names every mistake in the file.
type parser struct {
	errs []error
}

func (p *parser) fail(key, format string, args ...any) {
	p.errs = append(p.errs, &KeyError{Key: key, Problem: fmt.Sprintf(format, args...)})
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func (p *parser) table(m map[string]any, prefix string, specs []keySpec, c *Config) {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		i := slices.IndexFunc(specs, func(s keySpec) bool { return s.name == name })
		if i < 0 {
			allowed := make([]string, len(specs))
			for j, s := range specs {
				allowed[j] = s.name
			}
			where := "at the top level"
			if prefix != "" {
				where = "in [" + prefix + "]"
			}
			p.fail(join(prefix, name), "unknown key %s; allowed keys: %s", where, strings.Join(allowed, ", "))
			continue
		}
		specs[i].set(p, join(prefix, name), m[name], c)
	}
}

func (p *parser) sub(key string, v any, specs []keySpec, c *Config) {
	m, ok := v.(map[string]any)
	if !ok {
		p.fail(key, "want a table [%s], got %s", key, typeName(v))
		return
	}
	p.table(m, key, specs, c)
}

func typeName(v any) string {
	switch v.(type) {
	case bool:
		return "a boolean"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case string:
		return "a string"
	case []any, []map[string]any:
		return "a list"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a %T", v)
}

func (p *parser) boolean(key string, v any, dst *bool) {
	b, ok := v.(bool)
	if !ok {
		p.fail(key, "want true or false, got %s", typeName(v))
		return
	}
	*dst = b
}

func (p *parser) str(key string, v any) (string, bool) {
	s, ok := v.(string)
	if !ok {
		p.fail(key, "want a string, got %s", typeName(v))
	}
	return s, ok
}

func (p *parser) enum(key string, v any, dst *string, allowed ...string) bool {
	s, ok := p.str(key, v)
	if !ok {
		return false
	}
	if !slices.Contains(allowed, s) {
		p.fail(key, "%q is not allowed; use one of: %s", s, strings.Join(allowed, ", "))
		return false
	}
	*dst = s
	return true
}

func (p *parser) integer(key string, v any, lo, hi int64, what string) (int64, bool) {
	n, ok := v.(int64)
	if !ok || n < lo || n > hi {
		p.fail(key, "want %s, got %s", what, describe(v))
		return 0, false
	}
	return n, true
}

func describe(v any) string {
	if n, ok := v.(int64); ok {
		return fmt.Sprint(n)
	}
	return typeName(v)
}

func (p *parser) list(key string, v any, what string) ([]any, bool) {
	l, ok := v.([]any)
	if !ok {
		p.fail(key, "want a list of %s, like [%s], got %s", what, exampleOf(what), typeName(v))
	}
	return l, ok
}

func exampleOf(what string) string {
	switch {
	case strings.HasPrefix(what, "port"):
		return "22, 53"
	case strings.HasPrefix(what, "address"):
		return `"10.0.0.0/8", "fd00::/8"`
	}
	return `"..."`
}

func (p *parser) ports(key string, v any) []uint16 {
	l, ok := p.list(key, v, "port numbers 1-65535")
	if !ok {
		return nil
	}
	var out []uint16
	for i, e := range l {
		n, ok := e.(int64)
		if !ok || n < 1 || n > 65535 {
			p.fail(fmt.Sprintf("%s[%d]", key, i), "want a port number 1-65535, got %s", describe(e))
			continue
		}
		if !slices.Contains(out, uint16(n)) {
			out = append(out, uint16(n))
		}
	}
	return out
}

func (p *parser) prefixes(key string, v any) []netip.Prefix {
	l, ok := p.list(key, v, "addresses or prefixes")
	if !ok {
		return nil
	}
	var out []netip.Prefix
	for i, e := range l {
		s, ok := e.(string)
		if !ok {
			p.fail(fmt.Sprintf("%s[%d]", key, i), "want an address or prefix in quotes, like \"10.0.0.0/8\", got %s", typeName(e))
			continue
		}
		pfx, err := ParsePrefix(s)
		if err != nil {
			p.fail(fmt.Sprintf("%s[%d]", key, i), "%q is not an IPv4 or IPv6 address or prefix (like \"192.0.2.0/24\", \"2001:db8::/32\", \"192.0.2.7\")", s)
			continue
		}
		out = append(out, pfx)
	}
	return out
}

// ParsePrefix parses a prefix, or an address as a /32 or /128, masked.
func ParsePrefix(s string) (netip.Prefix, error) {
	if pfx, err := netip.ParsePrefix(s); err == nil {
		if pfx.Addr().Zone() != "" {
			return netip.Prefix{}, errors.New("zones are not allowed")
		}
		return pfx.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// TEP and AEAD names in the file: short names and the registry names.
var tepNames = []struct {
	short string
	tep   eno.TEP
}{
	{"curve25519", eno.TEPTcpcryptCurve25519},
	{"curve448", eno.TEPTcpcryptCurve448},
	{"p256", eno.TEPTcpcryptP256},
	{"p521", eno.TEPTcpcryptP521},
}

var aeadNames = []struct {
	short string
	id    tcpcrypt.AEADID
}{
	{"aes128gcm", tcpcrypt.AES128GCM},
	{"aes256gcm", tcpcrypt.AES256GCM},
	{"chacha20poly1305", tcpcrypt.ChaCha20Poly1305},
}

// TEPName is the name the file uses for t.
func TEPName(t eno.TEP) string {
	for _, n := range tepNames {
		if n.tep == t {
			return n.short
		}
	}
	return t.String()
}

// AEADName is the name the file uses for id.
func AEADName(id tcpcrypt.AEADID) string {
	for _, n := range aeadNames {
		if n.id == id {
			return n.short
		}
	}
	return id.String()
}

func (p *parser) teps(key string, v any) []eno.TEP {
	allowed := make([]string, len(tepNames))
	for i, n := range tepNames {
		allowed[i] = n.short
	}
	l, ok := p.list(key, v, "TEP names ("+strings.Join(allowed, ", ")+")")
	if !ok {
		return nil
	}
	var out []eno.TEP
	for i, e := range l {
		s, _ := e.(string)
		j := slices.IndexFunc(tepNames, func(n struct {
			short string
			tep   eno.TEP
		}) bool {
			return strings.EqualFold(s, n.short) || strings.EqualFold(s, n.tep.String())
		})
		if j < 0 {
			p.fail(fmt.Sprintf("%s[%d]", key, i), "%s is not a TEP; use one of: %s", quoteOr(e), strings.Join(allowed, ", "))
			continue
		}
		if t := tepNames[j].tep; !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

func (p *parser) aeads(key string, v any) []tcpcrypt.AEADID {
	allowed := make([]string, len(aeadNames))
	for i, n := range aeadNames {
		allowed[i] = n.short
	}
	l, ok := p.list(key, v, "AEAD names ("+strings.Join(allowed, ", ")+")")
	if !ok {
		return nil
	}
	var out []tcpcrypt.AEADID
	for i, e := range l {
		s, _ := e.(string)
		j := slices.IndexFunc(aeadNames, func(n struct {
			short string
			id    tcpcrypt.AEADID
		}) bool {
			return strings.EqualFold(s, n.short) || strings.EqualFold(s, n.id.String())
		})
		if j < 0 {
			p.fail(fmt.Sprintf("%s[%d]", key, i), "%s is not an AEAD; use one of: %s", quoteOr(e), strings.Join(allowed, ", "))
			continue
		}
		if id := aeadNames[j].id; !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	if len(l) > 0 && !slices.Contains(out, tcpcrypt.AES128GCM) && len(p.errs) == 0 {
		p.fail(key, "must include aes128gcm: RFC 8548 makes AEAD_AES_128_GCM mandatory to implement, and a peer may offer nothing else")
	}
	return out
}

func quoteOr(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return typeName(v)
}

func (p *parser) path(key string, v any, dst *string) {
	s, ok := p.str(key, v)
	if !ok {
		return
	}
	if !filepath.IsAbs(s) || strings.ContainsRune(s, 0) {
		p.fail(key, "want an absolute path, got %q", s)
		return
	}
	// sun_path holds 108 bytes on Linux, 104 on macOS, including NUL.
	if len(s) > 103 {
		p.fail(key, "path is %d bytes; a Unix socket path must be at most 103", len(s))
		return
	}
	*dst = s
}

func (p *parser) group(key string, v any, dst *string) {
	s, ok := p.str(key, v)
	if !ok {
		return
	}
	if s != "" && (len(s) > 64 || strings.ContainsAny(s, ":/\n\x00 ")) {
		p.fail(key, "%q is not a group name", s)
		return
	}
	*dst = s
}

func (p *parser) listen(key string, v any, dst *string) {
	s, ok := p.str(key, v)
	if !ok {
		return
	}
	if s == "" {
		*dst = ""
		return
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || !ap.Addr().IsLoopback() || ap.Port() == 0 {
		p.fail(key, "want a loopback address and port, like \"127.0.0.1:9712\" or \"[::1]:9712\" (metrics are not served beyond this host), got %q", s)
		return
	}
	*dst = ap.String()
}

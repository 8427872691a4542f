package divert

import (
	"fmt"
	"slices"

	"tcpinc.dev/tcpinc/core"
	"tcpinc.dev/tcpinc/core/eno"
	"tcpinc.dev/tcpinc/core/tcpcrypt"
)

// policy is an engine's policy as connections use it. It is immutable
// once built: each connection keeps the one that was current when its
// first SYN was seen, so SetPolicy changes only connections opened
// afterwards, and encrypted ones keep their keys and their settings.
type policy struct {
	core.Policy // slices cloned; read-only
	teps        []eno.TEP
	tc          tcpcrypt.Config
	cache       *tcpcrypt.Cache // nil when resumption is off
	gopt        byte            // global suboption bits a SYN carries
}

// newPolicy checks p and prepares it for the engine.
func (e *Engine) newPolicy(p core.Policy) (*policy, error) {
	pol := &policy{Policy: p}
	pol.ExcludePorts = slices.Clone(p.ExcludePorts)
	pol.ExcludeAddrs = slices.Clone(p.ExcludeAddrs)
	for _, pfx := range pol.ExcludeAddrs {
		if !pfx.IsValid() {
			return nil, fmt.Errorf("divert: policy: an excluded address prefix is invalid")
		}
	}
	pol.teps = slices.Clone(p.TEPs)
	if len(pol.teps) == 0 {
		pol.teps = DefaultTEPs
	}
	for _, t := range pol.teps {
		if !tcpcrypt.TEP(t).Supported() {
			return nil, fmt.Errorf("divert: policy: TEP %v is not a tcpcrypt TEP this engine runs", t)
		}
	}
	aeads := slices.Clone(p.AEADs)
	if len(aeads) == 0 {
		aeads = tcpcrypt.DefaultAEADs
	}
	pol.tc = tcpcrypt.Config{AEADs: aeads, Rand: e.rand}
	if err := pol.tc.Validate(); err != nil {
		return nil, fmt.Errorf("divert: policy: %w", err)
	}
	if p.Resumption {
		// Without a cache there is nothing to resume from: the
		// engine's Config decides whether resumption is possible at all.
		pol.cache = e.cfg.Cache
	}
	if p.AAMandatory {
		pol.gopt = eno.GlobalA
	}
	ec := eno.Config{TEPs: pol.teps, SelfGOpt: pol.gopt, AAMandatory: p.AAMandatory}
	if err := ec.Validate(); err != nil {
		return nil, fmt.Errorf("divert: policy: %w", err)
	}
	return pol, nil
}

// SetPolicy changes what the engine does with connections whose first
// SYN it sees from now on: whether they get ENO at all (Enabled), which
// are left plain (exclusions; loopback always is), the TEPs and AEADs
// offered and accepted, resumption, and mandatory application-aware mode
// (RFC 8547 §4.2: the a bit is sent, and ENO is disabled unless the peer
// sets it too). Connections already in the table keep the policy they
// started with; encrypted ones keep working. With Resumption on, the
// engine's Config.Cache must be set for resumption to happen.
func (e *Engine) SetPolicy(p core.Policy) error {
	pol, err := e.newPolicy(p)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.pol = pol
	e.mu.Unlock()
	return nil
}

// Policy returns the policy new connections get.
func (e *Engine) Policy() core.Policy {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.pol.Policy
	p.ExcludePorts = slices.Clone(p.ExcludePorts)
	p.ExcludeAddrs = slices.Clone(p.ExcludeAddrs)
	p.TEPs = slices.Clone(p.TEPs)
	p.AEADs = slices.Clone(p.AEADs)
	return p
}

// leftPlain says why a new connection is not negotiated under pol, or
// false if it is.
func (pol *policy) leftPlain(key flowKey) (reason plainCause, ok bool) {
	switch {
	case !pol.Enabled:
		return causeDisabled, true
	case pol.Excluded(key.local, key.remote):
		return causeExcluded, true
	}
	return 0, false
}

// plainCause is why the policy left a connection plain.
type plainCause uint8

const (
	causeDisabled plainCause = iota + 1
	causeExcluded
)

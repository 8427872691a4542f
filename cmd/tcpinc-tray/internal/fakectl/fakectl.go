// Package fakectl is a stand-in tcpincd for the tray's tests and
// screenshots: it answers the control protocol (the real server of
// service/control) from a state set by hand, captures nothing and needs
// no privilege.
package fakectl

import (
	"errors"
	"fmt"
	"sync"

	"tcpinc.dev/tcpinc/service/control"
)

// Daemon is a control.Handler with a settable state.
type Daemon struct {
	mu sync.Mutex
	st control.StatusReply
	// denyToggle makes SetEnabled fail as it does for a caller who is
	// not an administrator.
	denyToggle bool
}

// New returns a daemon that is running and in the given state:
// "off", "on" or "encrypted" (with encrypted and plain connections),
// "stopped" (enabled but not capturing), or "unavailable" (a service
// that runs without capture and says why: no WinDivert driver).
func New(state string, encrypted, plain int) (*Daemon, error) {
	st := control.StatusReply{
		Version:   "0.1.0-fake",
		Mode:      "divert",
		Running:   true,
		Enabled:   true,
		Encrypted: encrypted,
		Plain:     plain,
		Conns:     encrypted + plain,
		Counters:  map[string]uint64{},
	}
	switch state {
	case "off":
		st.Enabled = false
		st.Encrypted = 0
		st.Conns = plain
	case "on":
		st.Encrypted = 0
		st.Conns = plain
	case "encrypted":
		if encrypted < 1 {
			return nil, errors.New("state encrypted needs at least one encrypted connection")
		}
	case "stopped":
		st.Running = false
		st.Encrypted, st.Plain, st.Conns = 0, 0, 0
	case "unavailable":
		st.Running = false
		st.Mode = "auto"
		st.Encrypted, st.Plain, st.Conns = 0, 0, 0
		st.CaptureError = CaptureError
	default:
		return nil, fmt.Errorf("unknown state %q: want off, on, encrypted, stopped or unavailable", state)
	}
	return &Daemon{st: st}, nil
}

// CaptureError is the reason the fake gives in state "unavailable".
const CaptureError = "starting the auto capture backend: the WinDivert driver is not installed (fake tcpincd)"

// DenyToggle makes enable and disable fail with tcpincd's permission
// error, as for a user who is not an administrator.
func (d *Daemon) DenyToggle() {
	d.mu.Lock()
	d.denyToggle = true
	d.mu.Unlock()
}

// Status implements control.Handler.
func (d *Daemon) Status() (control.StatusReply, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st, nil
}

// Conns implements control.Handler; the fake tracks no real connection.
func (d *Daemon) Conns() ([]control.ConnJSON, error) { return nil, nil }

// ErrDenied is what SetEnabled returns after DenyToggle.
var ErrDenied = &control.Error{Code: control.CodePermission, Msg: "permission denied: enable and disable change tcpincd's state; run as root or as a member of group tcpinc"}

// SetEnabled implements control.ControlHandler. Like tcpincd, it leaves
// the connection counts alone: encrypted connections stay encrypted.
func (d *Daemon) SetEnabled(on bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.denyToggle {
		return ErrDenied
	}
	d.st.Enabled = on
	return nil
}

// Reload implements control.ControlHandler.
func (d *Daemon) Reload() (control.ReloadReply, error) {
	return control.ReloadReply{}, errors.New("the fake tcpincd has no configuration to reload")
}

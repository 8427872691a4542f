// Package tray is the logic of the tcpinc tray icon, apart from the tray
// itself: it polls tcpincd through a Daemon, turns the answer into a View
// (icon, tooltip, menu lines) and carries out the menu's actions. The
// fyne.io/systray binding in cmd/tcpinc-tray only draws Views, so every
// decision here is unit-tested with a fake Daemon.
package tray

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"unicode/utf16"

	"tcpinc.dev/tcpinc/cmd/tcpinc-tray/icons"
	"tcpinc.dev/tcpinc/service/control"
)

// Status is what the tray needs of tcpincd's status reply.
type Status struct {
	Version string
	Mode    string
	// Running: tcpincd is capturing packets.
	Running bool
	// Enabled: encryption is switched on (tcpinc up / down).
	Enabled bool
	// Encrypted and Plain count the connections in each state; Conns is
	// every connection tcpincd tracks, including those still negotiating.
	Encrypted, Plain, Conns int
	// CaptureError, when not empty, is why tcpincd runs without
	// capturing (its status' capture_error: no WinDivert driver, say).
	CaptureError string
}

// State is what the icon shows.
type State int

const (
	// StateError: tcpincd cannot be asked (not running, no permission,
	// a broken reply), says it cannot capture, or is switched on but
	// not capturing.
	StateError State = iota
	// StateOff: encryption is switched off.
	StateOff
	// StateOn: switched on, no connection is encrypted.
	StateOn
	// StateEncrypted: switched on and at least one connection is encrypted.
	StateEncrypted
)

func (s State) String() string {
	switch s {
	case StateOff:
		return "off"
	case StateOn:
		return "on"
	case StateEncrypted:
		return "encrypted"
	}
	return "error"
}

// Icon returns the icon of state s.
func (s State) Icon() icons.Name {
	switch s {
	case StateOff:
		return icons.Off
	case StateOn:
		return icons.On
	case StateEncrypted:
		return icons.Encrypted
	}
	return icons.Error
}

// DetailLines is how many lines the Details submenu has; NoticeLines how
// many menu lines a notice may take, each at most NoticeWidth runes.
//
// MaxTooltip is Windows' limit for a notification icon's tooltip (128
// UTF-16 units with the terminating NUL); fyne.io/systray copies the text
// without cutting it properly, so views never exceed it.
const (
	MaxTooltip  = 127
	DetailLines = 4
	NoticeLines = 3
	NoticeWidth = 52
)

// View is everything the tray shows at one moment.
type View struct {
	State State
	Icon  icons.Name
	// Tooltip is shown on hover (Windows, macOS, most Linux panels). It
	// is at most MaxTooltip UTF-16 units long.
	Tooltip string
	// Title is the short text macOS shows beside the icon: the number of
	// encrypted connections, or empty.
	Title string
	// StatusLine and CountsLine are the first two (inactive) menu lines.
	StatusLine string
	CountsLine string
	// Notice is an error or a hint; empty for none. NoticeLines is the
	// same text wrapped for the menu, where empty lines are hidden.
	Notice      string
	NoticeLines [NoticeLines]string
	// ToggleLabel is the enable/disable item's text; ToggleEnabled says
	// whether it can be clicked (not while tcpincd cannot be asked).
	ToggleLabel   string
	ToggleEnabled bool
	// Details are the lines of the Details submenu; empty ones are hidden.
	Details [DetailLines]string
}

// Compute returns the view for a status (or the error that replaced it).
// notice, if not empty, is the outcome of the last action and takes the
// notice line. control is the socket path, shown in the details.
func Compute(st Status, err error, notice, control string) View {
	var v View
	v.Details[DetailLines-1] = "Control socket: " + control
	if err != nil {
		v.State = StateError
		v.StatusLine, v.Notice = describeError(err)
		v.CountsLine = "Encrypted: ?   Plain: ?"
		v.ToggleLabel = "Turn encryption on/off"
		v.Tooltip = clipUTF16("tcpinc: "+v.StatusLine+"\n"+clip(err.Error(), MaxTooltip), MaxTooltip)
		if notice != "" {
			v.Notice = notice
		}
		v.setNotice(v.Notice)
		v.Icon = v.State.Icon()
		return v
	}
	v.ToggleEnabled = true
	v.CountsLine = fmt.Sprintf("Encrypted: %d   Plain: %d", st.Encrypted, st.Plain)
	conns := plural(st.Encrypted, "encrypted connection", "encrypted connections")
	switch {
	case st.CaptureError != "":
		// tcpincd runs (as a service that stays up) but cannot capture:
		// nothing is encrypted whatever the switch says, so this comes
		// before off and on. The toggle still follows the switch:
		// turning encryption on makes tcpincd try to capture again.
		v.State = StateError
		v.StatusLine = "Capture unavailable"
		v.Notice = st.CaptureError
		v.ToggleLabel = "Turn encryption off"
		if !st.Enabled {
			v.ToggleLabel = "Turn encryption on"
		}
		v.Tooltip = clipUTF16("tcpinc: capture unavailable\n"+clip(st.CaptureError, MaxTooltip), MaxTooltip)
	case !st.Enabled:
		v.State = StateOff
		v.StatusLine = "Encryption is off"
		v.ToggleLabel = "Turn encryption on"
		v.Tooltip = "tcpinc: encryption is off"
	case !st.Running:
		// Switched on, yet nothing is captured: say so loudly, the user
		// believes they are protected.
		v.State = StateError
		v.StatusLine = "On, but not capturing packets"
		v.Notice = "tcpincd is not capturing: see its log"
		v.ToggleLabel = "Turn encryption off"
		v.Tooltip = "tcpinc: on, but tcpincd is not capturing packets"
	case st.Encrypted > 0:
		v.State = StateEncrypted
		v.StatusLine = "Encrypting: " + conns
		v.ToggleLabel = "Turn encryption off"
		v.Tooltip = fmt.Sprintf("tcpinc: %s, %d plain", conns, st.Plain)
		v.Title = fmt.Sprint(st.Encrypted)
	default:
		v.State = StateOn
		v.StatusLine = "On, no encrypted connections"
		v.ToggleLabel = "Turn encryption off"
		v.Tooltip = fmt.Sprintf("tcpinc: on, no encrypted connections (%d plain)", st.Plain)
	}
	if notice != "" {
		v.Notice = notice
	}
	v.setNotice(v.Notice)
	v.Icon = v.State.Icon()
	version := st.Version
	if version == "" {
		version = "unknown"
	}
	v.Details[0] = "tcpincd version: " + version
	if st.Mode != "" {
		v.Details[1] = "Capture mode: " + st.Mode
	}
	v.Details[2] = fmt.Sprintf("Connections tracked: %d", st.Conns)
	return v
}

// describeError gives the status line and the notice for a failure to ask
// tcpincd.
func describeError(err error) (status, notice string) {
	var ue *control.UnreachableError
	switch {
	case errors.As(err, &ue):
		return "tcpincd is not running", "Start the tcpincd service; this icon reconnects by itself"
	case control.IsPermission(err), isPermission(err):
		// The message says who may (root, the admin group, an elevated
		// prompt): show it as it is.
		return "No permission to ask tcpincd", err.Error()
	}
	return "Cannot get tcpincd's status", err.Error()
}

// isPermission reports whether err is an operating system's refusal (a
// socket file the user may not open, reported by a Dial that predates
// control.Error).
func isPermission(err error) bool {
	return errors.Is(err, fs.ErrPermission)
}

// setNotice sets the notice, cut to what its menu lines can hold, and
// wraps it into those lines.
func (v *View) setNotice(s string) {
	v.Notice = clip(s, NoticeLines*NoticeWidth)
	v.NoticeLines = wrap(v.Notice)
}

// wrap breaks s into lines of at most NoticeWidth runes at spaces (a
// word longer than a line is broken anywhere). Text beyond the last line
// is dropped.
func wrap(s string) (lines [NoticeLines]string) {
	var cur []rune
	i := 0
	flush := func() bool {
		if i == NoticeLines {
			return false
		}
		lines[i], cur, i = string(cur), cur[:0], i+1
		return true
	}
	for _, w := range strings.Fields(s) {
		r := []rune(w)
		for len(r) > NoticeWidth {
			if len(cur) > 0 && !flush() {
				return lines
			}
			cur = append(cur, r[:NoticeWidth]...)
			r = r[NoticeWidth:]
			if !flush() {
				return lines
			}
		}
		if len(r) == 0 {
			continue
		}
		if len(cur) > 0 && len(cur)+1+len(r) > NoticeWidth && !flush() {
			return lines
		}
		if len(cur) > 0 {
			cur = append(cur, ' ')
		}
		cur = append(cur, r...)
	}
	if len(cur) > 0 && i < NoticeLines {
		lines[i] = string(cur)
	}
	return lines
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// clipUTF16 cuts s to at most n UTF-16 units, ending it with an ellipsis
// if cut.
func clipUTF16(s string, n int) string {
	if len(utf16.Encode([]rune(s))) <= n {
		return s
	}
	units := 0
	for i, r := range s {
		units += utf16.RuneLen(r)
		if units > n-1 { // keep a unit for the ellipsis
			return s[:i] + "…"
		}
	}
	return s
}

// clip cuts s to at most n runes, ending it with an ellipsis if cut, and
// keeps only its first line.
func clip(s string, n int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

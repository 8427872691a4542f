//go:build !darwin || cgo

package main

import (
	"runtime"
	"time"

	"fyne.io/systray"

	"tcpinc.dev/tcpinc/cmd/tcpinc-tray/icons"
	"tcpinc.dev/tcpinc/cmd/tcpinc-tray/internal/tray"
)

// trayUI draws tray.Views with fyne.io/systray. It changes only what
// differs from the last view: every change is a D-Bus signal on Linux and
// a window message on Windows.
type trayUI struct {
	status, counts *systray.MenuItem
	notice         [tray.NoticeLines]*systray.MenuItem
	toggle, open   *systray.MenuItem
	details        *systray.MenuItem
	detail         [tray.DetailLines]*systray.MenuItem
	quit           *systray.MenuItem

	last  tray.View
	drawn bool
	// Until settled, Render sets the icon and tooltip even when they did
	// not change: fyne.io/systray runs onReady while it is still
	// exporting the item on D-Bus, and an icon set in that window is kept
	// but never announced, leaving the panel with the previous one.
	settled time.Time
}

// settleTime is how long after start Render repeats the icon.
const settleTime = 10 * time.Second

func newTrayUI() *trayUI {
	u := &trayUI{settled: time.Now().Add(settleTime)}
	systray.SetIcon(icons.Tray(icons.Error))
	// Linux panels show the title as the item's name; macOS shows it
	// beside the icon, where Render puts the count instead.
	systray.SetTitle("tcpinc")
	systray.SetTooltip("tcpinc: connecting to tcpincd…")
	u.status = systray.AddMenuItem("Connecting to tcpincd…", "")
	u.status.Disable()
	u.counts = systray.AddMenuItem("Encrypted: ?   Plain: ?", "Connections tcpincd sees, by state")
	u.counts.Disable()
	for i := range u.notice {
		u.notice[i] = systray.AddMenuItem("", "")
		u.notice[i].Disable()
		u.notice[i].Hide()
	}
	systray.AddSeparator()
	u.toggle = systray.AddMenuItem("Turn encryption on/off", "Administrators only")
	u.toggle.Disable()
	u.open = systray.AddMenuItem("Open status…", "Run 'tcpinc status' in a terminal")
	u.details = systray.AddMenuItem("Details", "")
	for i := range u.detail {
		u.detail[i] = u.details.AddSubMenuItem("", "")
		u.detail[i].Disable()
		u.detail[i].Hide()
	}
	systray.AddSeparator()
	u.quit = systray.AddMenuItem("Quit", "Close the tray icon (tcpincd keeps running)")
	return u
}

func (u *trayUI) Render(v tray.View) {
	first := !u.drawn
	old := u.last
	u.last, u.drawn = v, true
	early := time.Now().Before(u.settled)
	if first || early || v.Icon != old.Icon {
		systray.SetIcon(icons.Tray(v.Icon))
	}
	if first || early || v.Tooltip != old.Tooltip {
		systray.SetTooltip(v.Tooltip)
	}
	if runtime.GOOS == "darwin" && (first || v.Title != old.Title) {
		systray.SetTitle(v.Title)
	}
	setText(u.status, first, old.StatusLine, v.StatusLine)
	setText(u.counts, first, old.CountsLine, v.CountsLine)
	for i, it := range u.notice {
		setLine(it, first, old.NoticeLines[i], v.NoticeLines[i])
	}
	setText(u.toggle, first, old.ToggleLabel, v.ToggleLabel)
	if first || v.ToggleEnabled != old.ToggleEnabled {
		if v.ToggleEnabled {
			u.toggle.Enable()
		} else {
			u.toggle.Disable()
		}
	}
	for i, it := range u.detail {
		setLine(it, first, old.Details[i], v.Details[i])
	}
}

func setText(it *systray.MenuItem, first bool, old, s string) {
	if first || s != old {
		it.SetTitle(s)
	}
}

// setLine sets an optional line: hidden when empty.
func setLine(it *systray.MenuItem, first bool, old, s string) {
	if !first && s == old {
		return
	}
	if s == "" {
		it.Hide()
		return
	}
	it.SetTitle(s)
	if first || old == "" {
		it.Show()
	}
}

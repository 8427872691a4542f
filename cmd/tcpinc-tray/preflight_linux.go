package main

import (
	"fmt"
	"log/slog"

	"github.com/godbus/dbus/v5"
)

// preflight checks what a StatusNotifierItem needs before systray starts:
// fyne.io/systray only logs a missing session bus and then shows nothing,
// which looks like a hang to the user.
func preflight(log *slog.Logger) error {
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		return fmt.Errorf("no D-Bus session bus (%v): run tcpinc-tray inside a desktop session, where DBUS_SESSION_BUS_ADDRESS is set", err)
	}
	defer conn.Close()
	var has bool
	err = conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, "org.kde.StatusNotifierWatcher").Store(&has)
	if err == nil && !has {
		log.Warn("no StatusNotifierItem host is running yet; the icon appears when one starts (on GNOME, enable the AppIndicator extension)")
	}
	return nil
}

package main

import (
	_ "embed"

	"github.com/kardianos/service"
)

const (
	serviceName        = "tcpincd"
	serviceDisplayName = "tcpinc encryption service"
	serviceKind        = "a systemd unit"
)

// systemdUnit is the unit 'tcpincd install' writes, in the template
// syntax of kardianos/service 1.3 (keys without a leading dot:
// {{Path | cmdEscape}}). installer/linux/tcpincd.service is the same
// unit for the Debian package; a test keeps the two identical.
//
//go:embed tcpincd.service.tmpl
var systemdUnit string

func serviceOptions() service.KeyValue {
	return service.KeyValue{
		"SystemdScript": systemdUnit,
	}
}

func controlService(s service.Service, action string) error {
	if action == "uninstall" {
		_ = s.Stop() // not running is fine
	}
	return service.Control(s, action)
}

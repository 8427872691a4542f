package main

import (
	"github.com/kardianos/service"
)

const (
	serviceName        = "tcpincd" // the MSI installs the same service name
	serviceDisplayName = "tcpinc encryption service"
	serviceKind        = "a Windows service"
)

func serviceOptions() service.KeyValue {
	return service.KeyValue{
		"StartType": "automatic",
		// Recovery actions: restart 5 s after a failure; the failure
		// count resets after an hour.
		"OnFailure":              "restart",
		"OnFailureDelayDuration": "5s",
		"OnFailureResetPeriod":   3600,
	}
}

// needAdmin: the service control manager itself refuses callers without
// rights, with an "Access is denied" error.
func needAdmin(action string) error { return nil }

func controlService(s service.Service, action string) error {
	if action == "uninstall" {
		_ = s.Stop() // not running is fine
	}
	return service.Control(s, action)
}

// needRunPrivilege: the WinDivert driver refuses callers without
// Administrator rights, and the backend says so.
func needRunPrivilege() error { return nil }

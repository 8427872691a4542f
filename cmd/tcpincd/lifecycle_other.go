//go:build !linux && !windows && !darwin

package main

import "github.com/kardianos/service"

const (
	serviceName        = "tcpincd"
	serviceDisplayName = "tcpinc encryption service"
	serviceKind        = "the system's service manager"
)

func serviceOptions() service.KeyValue { return service.KeyValue{} }

func controlService(s service.Service, action string) error {
	return service.Control(s, action)
}

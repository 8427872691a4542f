package main

import (
	"log/slog"

	"tcpinc.dev/tcpinc/core"
)

// backendOptions is what tcpincd tells the platform code in
// run_<os>.go, whose newBackend builds the capture backend:
//
//	func newBackend(o backendOptions) (core.Backend, error)
//
// The daemon loop (service/daemon) then drives the backend through
// core.Backend only.
type backendOptions struct {
	// Mode is the capture mode from the config: "auto", "divert" or
	// "redirect". auto lets the platform choose.
	Mode string
	// Policy is the initial policy; later changes arrive by Apply.
	Policy core.Policy
	// Queue is the first packet queue number and Queues how many queues
	// (and workers) to use, where the platform has queues (NFQUEUE).
	Queue  uint16
	Queues int
	// Log receives the backend's logs.
	Log *slog.Logger
}

//go:build !windows

package main

import (
	"fmt"
	"os"
)

// needAdmin: changing system services needs root.
func needAdmin(action string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s needs root; try: sudo tcpincd %s", action, action)
	}
	return nil
}

// needRunPrivilege: capturing needs root (nftables or pf rules, packet
// queues, raw sockets). Checked before anything is created, so that the
// error says so rather than naming the first file it could not make.
func needRunPrivilege() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("tcpincd run needs root (it installs packet filter rules and reads the packet queues); try: sudo tcpincd run, or install the service with: sudo tcpincd install")
	}
	return nil
}

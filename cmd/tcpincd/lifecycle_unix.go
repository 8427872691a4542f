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

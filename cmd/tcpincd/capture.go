package main

import "fmt"

// windowsCaptureUnsupported says why a Windows build for goarch cannot
// capture at all, or returns nil: WinDivert 2.2 ships a signed driver
// for x64 only, so on Windows on Arm the service runs without capture
// and 'tcpinc status' says so (docs/windows-msi.md).
func windowsCaptureUnsupported(goarch string) error {
	if goarch == "amd64" {
		return nil
	}
	return fmt.Errorf("WinDivert has no signed %s driver (tcpinc captures only on x64 Windows)", goarch)
}

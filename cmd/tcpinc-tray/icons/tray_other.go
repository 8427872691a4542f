//go:build !windows

package icons

// The StatusNotifierItem host (Linux) and AppKit (macOS) take PNG.
func trayBytes(n Name) ([]byte, error) { return PNG(n, TraySize) }

//go:build !linux && !darwin && !windows

package control

// DefaultPath is where tcpincd listens unless told otherwise.
const DefaultPath = "/var/run/tcpinc/tcpincd.sock"

// DefaultAdminGroup is the group whose members may control tcpincd,
// besides root.
const DefaultAdminGroup = "wheel"

package control

// DefaultPath is where tcpincd listens unless told otherwise.
const DefaultPath = "/var/run/tcpinc/tcpincd.sock"

// DefaultAdminGroup is the group whose members may control tcpincd,
// besides root: on macOS the administrators ("admin"), so that the tray
// icon of an administrator can switch encryption on and off.
const DefaultAdminGroup = "admin"

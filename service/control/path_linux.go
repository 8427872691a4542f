package control

// DefaultPath is where tcpincd listens unless told otherwise (systemd's
// RuntimeDirectory=tcpinc makes /run/tcpinc).
const DefaultPath = "/run/tcpinc/tcpincd.sock"

// DefaultAdminGroup is the group whose members may control tcpincd,
// besides root. The Debian package creates it; when it does not exist
// only root may control.
const DefaultAdminGroup = "tcpinc"

package control

// DefaultPath is where tcpincd listens unless told otherwise (systemd's
// RuntimeDirectory=tcpinc makes /run/tcpinc).
const DefaultPath = "/run/tcpinc/tcpincd.sock"

//go:build !linux && !darwin && !windows

package control

import "net"

// peerCred: this OS has no peer-credential code here, so every caller
// may read and nobody may control over the socket.
func peerCred(c net.Conn, a *access) (Peer, error) {
	return Peer{UID: -1}, nil
}

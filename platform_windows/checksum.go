package platform_windows

import "tcpinc.dev/tcpinc/core/packet"

// fixChecksums computes the checksums WinDivert flags as not valid
// (checksum offload: the stack left them to the NIC, or the NIC checked
// them and the field is stale), so the engine's incremental updates start
// from a correct value, and flags them valid. It reports whether it did.
func fixChecksums(buf []byte, a *Address) bool {
	v4 := len(buf) > 0 && buf[0]>>4 == 4
	if a.TCPChecksum() && (!v4 || a.IPChecksum()) {
		return false
	}
	pk, err := packet.Parse(buf)
	if err != nil || !pk.HasTCP() {
		return false
	}
	if v4 {
		pk.IPv4().UpdateChecksum()
		a.SetIPChecksum(true)
	}
	pk.UpdateTCPChecksum()
	a.SetTCPChecksum(true)
	return true
}

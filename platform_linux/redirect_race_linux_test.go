//go:build race

package platform_linux

// raceEnabled: the race detector slows the proxy several times over, so
// throughput figures mean nothing.
const raceEnabled = true

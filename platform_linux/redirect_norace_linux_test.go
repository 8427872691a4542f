//go:build !race

package platform_linux

const raceEnabled = false

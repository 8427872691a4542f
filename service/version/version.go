// Package version reports the version of the tcpinc programs.
package version

import (
	"runtime/debug"
	"strings"
)

// Version is the release version. Release builds set it with
//
//	go build -ldflags "-X tcpinc.dev/tcpinc/service/version.Version=1.2.3"
var Version = "0.0.0-dev"

// String returns Version followed by the VCS revision the binary was built
// from, when the Go toolchain recorded one ("0.0.0-dev (3f2a9c1d0e4b, modified)").
func String() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Version
	}
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return Version
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	var b strings.Builder
	b.WriteString(Version)
	b.WriteString(" (")
	b.WriteString(rev)
	if dirty {
		b.WriteString(", modified")
	}
	b.WriteString(")")
	return b.String()
}

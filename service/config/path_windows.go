package config

import (
	"os"
	"path/filepath"
)

// DefaultPath is where tcpincd looks for its configuration file:
// %ProgramData%\tcpinc\tcpincd.toml.
var DefaultPath = filepath.Join(programData(), "tcpinc", "tcpincd.toml")

func programData() string {
	if d := os.Getenv("ProgramData"); d != "" {
		return d
	}
	return `C:\ProgramData`
}

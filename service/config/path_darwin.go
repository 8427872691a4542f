package config

// DefaultPath is where tcpincd looks for its configuration file.
const DefaultPath = "/Library/Application Support/tcpinc/tcpincd.toml"

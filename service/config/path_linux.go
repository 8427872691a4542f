package config

// DefaultPath is where tcpincd looks for its configuration file.
const DefaultPath = "/etc/tcpinc/tcpincd.toml"

// Package service tests tcpincd and tcpinc end to end, as a user drives
// them: tcpincd in two network namespaces, connections between them, and
// the tcpinc command line (as root and as an unprivileged user) on both
// ends. Nothing runs in the host's own network namespace.
package service

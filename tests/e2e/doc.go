// Package e2e runs tcpincd for real: in network namespaces it creates,
// with real programs from Debian (curl, python3's http.server, iperf3,
// OpenSSH, tcpdump, iptables) and the binaries built from this tree, in
// divert and redirect mode. Each case checks the data byte for byte, the
// wire for plaintext, and that both ends report the same tcpcrypt session
// ID where the connection should be encrypted.
//
// The tests need root and skip otherwise. Namespaces are named
// tcie-<case>-<pid> and removed on every exit path; leftovers of a run
// that was killed are removed at the start of the next one. Nothing runs
// in, or is added to, the host's own network namespace.
//
// The package holds no library code: everything is in _linux_test.go
// files, and cmd/tcpinc-load is the connection load tool the tests and
// make bench share.
package e2e

// Package tests holds end-to-end tests that combine the core packages:
// in-memory peers here, and (with the platform backends) real programs
// in network namespaces.
package tests

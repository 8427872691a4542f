#!/usr/bin/env bash
# Builds the Windows test binaries of OS-neutral packages and runs them
# under wine, so Windows-specific behaviour of the standard library (and
# our code on it) is exercised without a Windows machine.
set -euo pipefail
wine=$(command -v wine64 || command -v wine)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export WINEPREFIX="$work/prefix" WINEDEBUG=-all WINEARCH=win64
status=0
for pkg in $(go list "$@"); do
	# Skip packages without tests (go test -c writes nothing for them).
	exe="$work/$(echo "$pkg" | tr '/.' '__').exe"
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 go test -c -o "$exe" "$pkg"
	[ -f "$exe" ] || continue
	dir=$(go list -f '{{.Dir}}' "$pkg")
	echo "== wine $pkg"
	# Tests read testdata relative to the package directory.
	if ! (cd "$dir" && "$wine" "$exe" -test.short -test.count=1 2>&1 | tail -n 5); then
		status=1
	fi
done
exit $status

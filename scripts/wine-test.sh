#!/usr/bin/env bash
# Builds the Windows test binaries of OS-neutral packages and runs them
# under wine, so our code runs on the Windows build of the standard
# library without a Windows machine.
#
# Debian bookworm's wine 8 lacks bcryptprimitives.dll, which the Go
# runtime needs (ProcessPrng); scripts/wine/prefix.sh builds the stand-in
# scripts/wine/bcryptprimitives.c with mingw-w64 into the throwaway prefix.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/wine/prefix.sh
. scripts/wine/prefix.sh
work=$(mktemp -d)
trap 'WINEPREFIX="$work/prefix" wineserver -k 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== wine: preparing a prefix"
wine_prefix_init "$work/prefix"
wine=$WINE

status=0
for pkg in $(go list "$@"); do
	exe="$work/$(echo "$pkg" | tr '/.' '__').exe"
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 go test -c -o "$exe" "$pkg"
	[ -f "$exe" ] || continue # no tests in this package
	dir=$(go list -f '{{.Dir}}' "$pkg")
	# Tests read testdata relative to the package directory.
	out=$(cd "$dir" && "$wine" "$exe" -test.short -test.count=1 2>&1) && rc=0 || rc=$?
	if [ $rc -eq 0 ]; then
		echo "ok   $pkg (windows/amd64 under wine)"
	else
		echo "FAIL $pkg (windows/amd64 under wine, exit $rc)"
		echo "$out" | tail -n 30
		status=1
	fi
done
exit $status

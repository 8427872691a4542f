#!/usr/bin/env bash
# Builds the Windows test binaries of OS-neutral packages and runs them
# under wine, so our code runs on the Windows build of the standard
# library without a Windows machine.
#
# Debian bookworm's wine 8 lacks bcryptprimitives.dll, which the Go
# runtime needs (ProcessPrng); scripts/wine/bcryptprimitives.c is a
# stand-in built here with mingw-w64 and placed in the throwaway prefix.
set -euo pipefail
cd "$(dirname "$0")/.."
wine=/usr/lib/wine/wine64
[ -x "$wine" ] || wine=$(command -v wine64 || command -v wine)
work=$(mktemp -d)
trap 'WINEPREFIX="$work/prefix" wineserver -k 2>/dev/null || true; rm -rf "$work"' EXIT
export WINEPREFIX="$work/prefix" WINEDEBUG=-all WINEARCH=win64

echo "== wine: preparing a prefix"
"$wine" wineboot --init >/dev/null 2>&1 || true
x86_64-w64-mingw32-gcc -shared -O2 -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
	scripts/wine/bcryptprimitives.c -ladvapi32

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

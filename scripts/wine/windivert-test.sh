#!/usr/bin/env bash
# Runs platform_windows' Windows test binary under wine against the
# stand-in WinDivert.dll (scripts/wine/windivert_mock.c), built here with
# mingw-w64 and placed next to the test binary, where tcpinc loads
# WinDivert.dll from. So the binding, the divert backend's worker loop and
# (with gVisor TCP stacks as the hosts) whole encrypted connections run
# on the Windows build of our code without a Windows machine or driver.
# Extra arguments go to the test binary (e.g. -test.run Divert -test.v).
set -euo pipefail
cd "$(dirname "$0")/../.."
wine=/usr/lib/wine/wine64
[ -x "$wine" ] || wine=$(command -v wine64 || command -v wine)
work=$(mktemp -d)
trap 'WINEPREFIX="$work/prefix" wineserver -k 2>/dev/null || true; rm -rf "$work"' EXIT
export WINEPREFIX="$work/prefix" WINEDEBUG=-all WINEARCH=win64

echo "== wine: preparing a prefix"
"$wine" wineboot --init >/dev/null 2>&1 || true
x86_64-w64-mingw32-gcc -shared -O2 -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
	scripts/wine/bcryptprimitives.c -ladvapi32
x86_64-w64-mingw32-gcc -shared -O2 -Wall -Wextra -Werror -std=c11 -o "$work/WinDivert.dll" \
	scripts/wine/windivert_mock.c

# With the official WinDivert.dll at hand (WINDIVERT_DIR, as for make
# msi), the generated filters are also checked with WinDivert's own
# filter compiler and evaluator (they need no driver).
if [ -n "${WINDIVERT_DIR:-}" ] && [ -f "$WINDIVERT_DIR/WinDivert.dll" ]; then
	cp "$WINDIVERT_DIR/WinDivert.dll" "$work/RealWinDivert.dll"
	export TCPINC_WINDIVERT_DLL='Z:'$(echo "$work/RealWinDivert.dll" | tr / '\\')
fi
GOOS=windows GOARCH=amd64 CGO_ENABLED=0 go test -c -o "$work/platform_windows.test.exe" ./platform_windows
echo "== wine: platform_windows (windows/amd64, stand-in WinDivert.dll)"
cd platform_windows
if out=$("$wine" "$work/platform_windows.test.exe" -test.count=1 -test.timeout=10m "$@" 2>&1); then
	case " $* " in
	*" -test.v "*) echo "$out" ;;
	*) echo "$out" | grep -E '^(ok|PASS|--- SKIP)' || true ;;
	esac
	echo "ok   tcpinc.dev/tcpinc/platform_windows (windows/amd64 under wine, stand-in WinDivert.dll)"
else
	echo "$out" | tail -n 60
	echo "FAIL tcpinc.dev/tcpinc/platform_windows (windows/amd64 under wine)"
	exit 1
fi

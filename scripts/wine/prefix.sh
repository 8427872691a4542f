# shellcheck shell=bash
# Sourced by scripts that run Windows programs under wine (bash).
#
#   wine_prefix_init DIR   creates a throwaway 64-bit wine prefix in DIR,
#                          exports WINEPREFIX, WINEARCH, WINEDEBUG and WINE
#                          (the wine64 loader), and puts the
#                          bcryptprimitives.dll stand-in in its system32
#   wine_prefix_use DIR    the same exports for a prefix made earlier by
#                          wine_prefix_init (e.g. by a calling script)
#   wine_prefix_done       stops that prefix's wineserver
#
# Debian bookworm's wine 8 lacks bcryptprimitives.dll, which the Go
# runtime needs (ProcessPrng); scripts/wine/bcryptprimitives.c is a
# stand-in built here with mingw-w64. Never the user's own prefix: the
# caller passes a directory it created and removes.

wine_prefix_use() {
	[ -n "${1-}" ] || { echo "wine_prefix_use: no directory" >&2; return 1; }
	WINE=/usr/lib/wine/wine64
	[ -x "$WINE" ] || WINE=$(command -v wine64 || command -v wine)
	export WINE WINEPREFIX="$1" WINEDEBUG=-all WINEARCH=win64
}

wine_prefix_init() {
	local dir=${1-} here
	here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	wine_prefix_use "$dir" || return 1
	# wineboot returns before the prefix is complete on some versions;
	# "wineserver -w" waits for it to settle.
	timeout 120 "$WINE" wineboot --init >/dev/null 2>&1 || true
	timeout 60 wineserver -w 2>/dev/null || true
	[ -d "$dir/drive_c/windows/system32" ] || { echo "wine_prefix_init: wineboot did not create $dir" >&2; return 1; }
	x86_64-w64-mingw32-gcc -shared -O2 -o "$dir/drive_c/windows/system32/bcryptprimitives.dll" \
		"$here/bcryptprimitives.c" -ladvapi32
}

wine_prefix_done() {
	[ -n "${WINEPREFIX-}" ] && wineserver -k 2>/dev/null || true
}

#!/bin/sh
# Installs tcpincd and tcpinc from this package and starts the launchd
# daemon. Run it from the unpacked package directory:
#
#   sudo ./install.sh
#
# PREFIX (default /usr/local) is where bin/tcpincd and bin/tcpinc go.
# Re-running it upgrades in place: the old daemon is stopped first (it
# removes its pf rules on the way out).
set -eu

LABEL=dev.tcpinc.tcpincd
PLIST=/Library/LaunchDaemons/$LABEL.plist
PREFIX=${PREFIX:-/usr/local}
here=$(cd "$(dirname "$0")" && pwd)

die() {
	echo "install.sh: $*" >&2
	exit 1
}

[ "$(uname -s)" = Darwin ] || die "this package is for macOS"
[ "$(id -u)" -eq 0 ] || die "run as root: sudo $0"
for f in bin/tcpincd bin/tcpinc "$LABEL.plist"; do
	[ -f "$here/$f" ] || die "missing $f: run install.sh from the unpacked package"
done
arch=$(uname -m)
if ! file "$here/bin/tcpincd" | grep -q "$arch"; then
	die "these binaries are not for this Mac ($arch); use the package for $arch"
fi

# Stop a running daemon (an upgrade) before replacing its binary.
if launchctl print "system/$LABEL" >/dev/null 2>&1; then
	echo "stopping the running tcpincd"
	launchctl bootout "system/$LABEL" || true
fi

install -d -m 755 "$PREFIX/bin"
install -m 755 "$here/bin/tcpincd" "$here/bin/tcpinc" "$PREFIX/bin/"
# Binaries from a downloaded tarball carry the quarantine attribute.
xattr -d com.apple.quarantine "$PREFIX/bin/tcpincd" "$PREFIX/bin/tcpinc" 2>/dev/null || true

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
sed "s|/usr/local/bin/tcpincd|$PREFIX/bin/tcpincd|" "$here/$LABEL.plist" >"$tmp"
plutil -lint "$tmp" >/dev/null || die "the launchd plist does not parse"
install -m 644 -o root -g wheel "$tmp" "$PLIST"
install -d -m 755 /var/run/tcpinc

# bootstrap refuses a label an administrator disabled; enable it first.
launchctl enable "system/$LABEL"
launchctl bootstrap system "$PLIST" || die "launchctl bootstrap failed; see /var/log/tcpincd.log"

sleep 2
if launchctl print "system/$LABEL" | grep -q "state = running"; then
	echo "tcpincd is running. Check it with:"
	echo "  tcpinc --control /var/run/tcpinc/tcpincd.sock status"
else
	echo "tcpincd did not stay up; its log is /var/log/tcpincd.log:" >&2
	tail -n 20 /var/log/tcpincd.log >&2 || true
	exit 1
fi

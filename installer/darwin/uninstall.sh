#!/bin/sh
# Stops the tcpincd launchd daemon and removes what install.sh installed.
#
#   sudo ./uninstall.sh
#
# A cleanly stopped tcpincd has already removed its pf rules; this script
# also empties the "tcpinc" anchor and gives back a pf reference token a
# crashed tcpincd may have left, so that nothing of tcpinc stays in pf.
set -eu

LABEL=dev.tcpinc.tcpincd
PLIST=/Library/LaunchDaemons/$LABEL.plist
PREFIX=${PREFIX:-/usr/local}

die() {
	echo "uninstall.sh: $*" >&2
	exit 1
}

[ "$(uname -s)" = Darwin ] || die "this script is for macOS"
[ "$(id -u)" -eq 0 ] || die "run as root: sudo $0"

if launchctl print "system/$LABEL" >/dev/null 2>&1; then
	echo "stopping tcpincd"
	launchctl bootout "system/$LABEL" || true
fi
rm -f "$PLIST"

# Leftovers of a crashed run (a clean stop leaves none). Never flush
# "all" or "states": those ignore the anchor and would cut every
# connection of this Mac.
for what in rules nat Tables; do
	pfctl -q -a tcpinc -F "$what" 2>/dev/null || true
done
if [ -f /var/run/tcpinc/pf.token ]; then
	pfctl -q -X "$(cat /var/run/tcpinc/pf.token)" 2>/dev/null || true
fi
rm -rf /var/run/tcpinc

rm -f "$PREFIX/bin/tcpincd" "$PREFIX/bin/tcpinc"
echo "tcpinc removed. The log /var/log/tcpincd.log is kept; delete it if you like."
if pfctl -s rules 2>/dev/null | grep -q '"tcpinc"'; then
	echo "The main pf ruleset still calls the (now empty) tcpinc anchor; that is"
	echo "harmless and goes at the next reboot. docs/macos.md shows how to remove it now."
fi

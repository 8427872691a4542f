#!/usr/bin/env bash
# Shows tcpinc-tray on a real Linux tray and takes screenshots of it, one
# per icon state with its menu open, for docs/tray-*.png.
#
# Everything runs on a private X server (Xvfb) and a private D-Bus session
# bus (dbus-run-session): a StatusNotifierWatcher and a StatusNotifierItem
# host (gtk-sni-tray-standalone, from Debian's haskell-gtk-sni-tray-utils)
# show the icon; a fake tcpincd (cmd/tcpinc-tray/internal/fakectl/fakectld)
# serves the control protocol on a temporary socket in each state; xdotool
# opens the menu; ImageMagick's import takes the picture. No traffic is
# captured and nothing outside the temporary directory is touched.
#
# As root (unless TRAY_LIVE=0) it then shows the tray against a real
# tcpincd: two network namespaces tcit-a-PID and tcit-b-PID joined by a
# veth pair, tcpincd in each, slow HTTP downloads from a to b kept open
# (to port 8080, encrypted, and to port 8081, which b's tcpincd excludes,
# so they stay plain). The tray, outside the namespaces, reads tcpincd a's
# control socket, and its menu turns encryption off for real. tcpincd never
# runs in the host's own network namespace; the namespaces are deleted on
# every exit path.
#
# Where wine64 and mingw-w64 are installed (as root they are), the Windows
# build runs too, in Wine's virtual desktop, whose taskbar has a
# notification area: that shows the ICO icons and the menu through
# fyne.io/systray's Windows code. The Windows build of the fake tcpincd
# serves the control pipe \\.\pipe\tcpinc in that wine prefix (its own
# wineserver, so nothing else sees it): first encrypting, then as a
# service that runs without capture (no WinDivert driver).
#
# Usage: scripts/tray-screenshot.sh [OUTDIR]   (default docs/)
# As root it installs the Debian packages it needs; otherwise it says which.
set -euo pipefail

cd "$(dirname "$0")/.."
outdir=${1:-docs}
GO=${GO:-go}

live=0
if [ "$(id -u)" -eq 0 ] && [ "${TRAY_LIVE:-1}" != 0 ]; then
	live=1
fi

if [ -z "${TCIT_INNER:-}" ]; then
	if [ $live = 1 ]; then
		scripts/deps.sh ip:iproute2 nft:nftables python3:python3 curl:curl
	fi
	if [ "$(id -u)" -eq 0 ] && [ "${TRAY_WINE:-1}" != 0 ]; then
		scripts/deps.sh /usr/lib/wine/wine64:wine64 x86_64-w64-mingw32-gcc:gcc-mingw-w64-x86-64-win32
	fi
	scripts/deps.sh Xvfb:xvfb xdotool:xdotool import:imagemagick /usr/bin/convert:imagemagick \
		dbus-run-session:dbus-daemon dbus-send:dbus-bin xterm:xterm \
		gtk-sni-tray-standalone:haskell-gtk-sni-tray-utils \
		status-notifier-watcher:haskell-status-notifier-item-utils
	# A session bus of our own, so nothing reaches the user's desktop.
	exec env -u DBUS_SESSION_BUS_ADDRESS TCIT_INNER=1 dbus-run-session -- "$0" "$@"
fi

CONVERT=/usr/bin/convert # /usr/local/bin may hold a stand-in of that name
tmp=$(mktemp -d /tmp/tcit-tray.XXXXXX)
pids=()
NS_A=tcit-a-$$
NS_B=tcit-b-$$
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ $live = 1 ]; then
		ip netns del "$NS_A" 2>/dev/null || true
		ip netns del "$NS_B" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# Keep the accessibility bus out of the session; it only adds noise.
export NO_AT_BRIDGE=1

echo "tray-screenshot: building tcpinc-tray, tcpinc and the fake tcpincd"
mkdir -p "$tmp/bin"
CGO_ENABLED=0 $GO build -o "$tmp/bin/tcpinc-tray" ./cmd/tcpinc-tray
CGO_ENABLED=0 $GO build -o "$tmp/bin/tcpinc" ./cmd/tcpinc
CGO_ENABLED=0 $GO build -o "$tmp/bin/fakectld" ./cmd/tcpinc-tray/internal/fakectl/fakectld
[ $live = 1 ] && CGO_ENABLED=0 $GO build -o "$tmp/bin/tcpincd" ./cmd/tcpincd

# Xvfb picks a free display and writes its number to fd 3.
width=640 height=400 bar=32
Xvfb -displayfd 3 -screen 0 ${width}x${height}x24 -nolisten tcp 3>"$tmp/display" 2>"$tmp/xvfb.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/display" ] && break; sleep 0.1; done
[ -s "$tmp/display" ] || { echo "tray-screenshot: Xvfb did not start:" >&2; cat "$tmp/xvfb.log" >&2; exit 1; }
export DISPLAY=":$(cat "$tmp/display")"
# Xvfb's root window stays black whatever xsetroot says; shot() paints
# the black a desktop colour instead.
desk='#4a5568'

has_name() {
	dbus-send --session --print-reply --dest=org.freedesktop.DBus / \
		org.freedesktop.DBus.NameHasOwner "string:$1" 2>/dev/null | grep -q 'boolean true'
}
wait_for() { # what, command...
	local what=$1
	shift
	for _ in $(seq 100); do "$@" && return 0; sleep 0.1; done
	echo "tray-screenshot: timed out waiting for $what" >&2
	return 1
}

# The watcher first: a host that starts its own races with the item's
# registration and may show it twice.
status-notifier-watcher >"$tmp/watcher.log" 2>&1 &
pids+=($!)
wait_for "the StatusNotifierWatcher" has_name org.kde.StatusNotifierWatcher
gtk-sni-tray-standalone --top --end --size $bar --color '#30343b' >"$tmp/host.log" 2>&1 &
pids+=($!)
wait_for "the tray window" xdotool search --name '^gtk-sni-tray-standalone$' >/dev/null

# The only item sits at the right end of the bar.
icon_x=$((width - bar / 2 - 2)) icon_y=$((bar / 2))

sock="$tmp/tcpincd.sock"
fake=
tray=
start_fake() { # state [fakectld flags]
	local state=$1
	shift
	"$tmp/bin/fakectld" --control "$sock" --state "$state" "$@" 2>>"$tmp/fake.log" &
	fake=$!
	pids+=($fake)
	wait_for "the fake tcpincd" test -S "$sock"
}
stop_fake() {
	[ -n "$fake" ] && kill "$fake" 2>/dev/null && wait "$fake" 2>/dev/null || true
	fake=
}
start_tray() { # [control socket]
	"$tmp/bin/tcpinc-tray" --control "${1:-$sock}" --interval 1s 2>>"$tmp/tray.log" &
	tray=$!
	pids+=($tray)
	wait_for "tcpinc-tray's StatusNotifierItem" has_name "org.kde.StatusNotifierItem-$tray-1"
	# Let it poll and the host draw the icon.
	sleep 2
}
stop_tray() {
	[ -n "$tray" ] && kill "$tray" 2>/dev/null && wait "$tray" 2>/dev/null || true
	tray=
	sleep 0.5
}
open_menu() {
	xdotool mousemove $icon_x $icon_y click 3
	sleep 0.3
	# Off the icon, so its tooltip does not cover the menu.
	xdotool mousemove 5 $((height - 5))
	sleep 1
}
close_menu() {
	xdotool key Escape
	sleep 0.5
}
shot() { # name: the bar and the menu below it, cropped to what is drawn
	import -window root "$tmp/full.png"
	"$CONVERT" "$tmp/full.png" -crop "460x$((height - 40))+$((width - 460))+0" +repage -trim +repage \
		-fill "$desk" -opaque black "$outdir/tray-$1.png"
	echo "tray-screenshot: $outdir/tray-$1.png"
}
bar_shot() { # name [colour]: the bar's right end only, magnified for the overview
	import -window root "$tmp/full.png"
	"$CONVERT" "$tmp/full.png" -crop "$((bar + 16))x${bar}+$((width - bar - 16))+0" +repage \
		-filter point -resize 300% "$tmp/bar-$1.png"
	[ -n "${2:-}" ] && check_colour "$1" "$2"
	return 0
}
# check_colour name colour: the icon on the bar must have the colour of
# its state (grey, blue, green or red), or the panel shows a stale icon.
check_colour() {
	local rgb got
	rgb=$("$CONVERT" "$tmp/full.png" -crop "${bar}x${bar}+$((width - bar - 2))+0" +repage \
		-format '%[fx:mean.r] %[fx:mean.g] %[fx:mean.b]' info:)
	got=$(echo "$rgb" | awk '{ r=$1; g=$2; b=$3; hi=r; lo=r
		if (g>hi) hi=g; if (b>hi) hi=b; if (g<lo) lo=g; if (b<lo) lo=b
		if (hi-lo < 0.06) print "grey"; else if (hi==r) print "red"; else if (hi==g) print "green"; else print "blue" }')
	if [ "$got" != "$2" ]; then
		echo "tray-screenshot: FAIL: the $1 icon on the panel is $got (mean RGB $rgb), want $2" >&2
		exit 1
	fi
	echo "tray-screenshot: the $1 icon on the panel is $got"
}

mkdir -p "$outdir"

declare -A colour=([off]=grey [on]=blue [encrypted]=green [error]=red)
for state in off on encrypted; do
	start_fake "$state" --encrypted 3 --plain 5
	start_tray
	bar_shot "$state" "${colour[$state]}"
	open_menu
	shot "$state"
	if [ "$state" = encrypted ]; then
		# The Details submenu: the third item that can be clicked.
		xdotool key Down Down Down Right
		sleep 1
		shot details
		close_menu
	fi
	close_menu
	stop_tray
	stop_fake
done

# Error: no tcpincd at the socket.
start_tray
bar_shot error red
open_menu
shot error
close_menu

# tcpincd comes up while the tray runs: the icon recovers by itself.
start_fake on --plain 2
sleep 2
bar_shot recovered blue
stop_tray
stop_fake

# A user who may not control tcpincd clicks "Turn encryption off": the
# first item that can be clicked. The refusal shows in the menu.
start_fake encrypted --encrypted 3 --plain 5 --deny-toggle
start_tray
open_menu
xdotool key Down Return
sleep 1.5
bar_shot denied green
open_menu
shot denied
close_menu

# "Open status…": a terminal running tcpinc status (tcpinc is found beside
# tcpinc-tray).
open_menu
xdotool key Down Down Return
for _ in $(seq 50); do xdotool search --class xterm >/dev/null 2>&1 && break; sleep 0.2; done
sleep 2
import -window root "$tmp/full.png"
# Paint the black desktop around the xterm (not its black text).
"$CONVERT" "$tmp/full.png" -fill "$desk" -draw "color $((width - 2)),$((height - 2)) floodfill" "$outdir/tray-open-status.png"
echo "tray-screenshot: $outdir/tray-open-status.png"
# The terminal is the tray's child no more: close it by its pid.
for w in $(xdotool search --class xterm 2>/dev/null); do
	p=$(xdotool getwindowpid "$w" 2>/dev/null) && kill "$p" 2>/dev/null || true
done
stop_tray
stop_fake

live_demo() {
	local ip_a=10.231.77.1 ip_b=10.231.77.2
	echo "tray-screenshot: live: namespaces $NS_A and $NS_B, tcpincd in both"
	ip netns add "$NS_A"
	ip netns add "$NS_B"
	ip -n "$NS_A" link add tcit-va type veth peer name tcit-vb netns "$NS_B"
	ip -n "$NS_A" addr add $ip_a/24 dev tcit-va
	ip -n "$NS_B" addr add $ip_b/24 dev tcit-vb
	for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; done
	ip -n "$NS_A" link set tcit-va up
	ip -n "$NS_B" link set tcit-vb up
	ip netns exec "$NS_A" "$tmp/bin/tcpincd" run --control "$tmp/a.sock" 2>"$tmp/tcpincd-a.log" &
	pids+=($!)
	ip netns exec "$NS_B" "$tmp/bin/tcpincd" run --control "$tmp/b.sock" --exclude-port 8081 2>"$tmp/tcpincd-b.log" &
	pids+=($!)
	for side in a b; do
		wait_for "tcpincd $side" sh -c "'$tmp/bin/tcpinc' --control '$tmp/$side.sock' status --json 2>/dev/null | grep -q '\"running\": true'" ||
			{ cat "$tmp/tcpincd-$side.log" >&2; return 1; }
	done
	mkdir -p "$tmp/www"
	head -c $((4 << 20)) /dev/zero >"$tmp/www/big"
	for port in 8080 8081; do
		ip netns exec "$NS_B" python3 -m http.server $port --bind $ip_b --directory "$tmp/www" >/dev/null 2>&1 &
		pids+=($!)
	done
	wait_for "the HTTP servers" sh -c "[ \$(ip netns exec '$NS_B' ss -Htln | wc -l) -ge 2 ]"
	# Slow downloads keep the connections open: three encrypted, two plain.
	for port in 8080 8080 8080 8081 8081; do
		ip netns exec "$NS_A" curl -sS -o /dev/null --limit-rate 4k "http://$ip_b:$port/big" &
		pids+=($!)
	done
	if ! "$tmp/bin/tcpinc" --control "$tmp/a.sock" status --json | grep -q '"enabled": true'; then
		echo "tray-screenshot: live part SKIPPED: this tcpincd does not report \"enabled\" in its status (tcpincd predates the enable/disable control methods)" >&2
		return 0
	fi
	wait_for "three encrypted connections" sh -c "'$tmp/bin/tcpinc' --control '$tmp/a.sock' status --json | grep -q '\"encrypted\": 3'"
	"$tmp/bin/tcpinc" --control "$tmp/a.sock" conns | sed 's/^/tray-screenshot: live:   /'
	start_tray "$tmp/a.sock"
	bar_shot live green
	open_menu
	shot live
	# Turn encryption off through the menu, as root: tcpincd obeys; the
	# encrypted connections stay encrypted.
	xdotool key Down Return
	sleep 2
	bar_shot live-off grey
	open_menu
	shot live-off
	close_menu
	if ! "$tmp/bin/tcpinc" --control "$tmp/a.sock" status --json | grep -q '"enabled": false'; then
		echo "tray-screenshot: live: the menu did not turn tcpincd a off" >&2
		return 1
	fi
	echo "tray-screenshot: live: the menu turned tcpincd off"
	stop_tray
}
if [ $live = 1 ]; then
	live_demo
else
	echo "tray-screenshot: live part SKIPPED (needs root; TRAY_LIVE=0 also skips it)"
fi

wine_demo() {
	local wine=/usr/lib/wine/wine64
	[ -x $wine ] || wine=$(command -v wine64 || true)
	if [ -z "$wine" ] || ! command -v x86_64-w64-mingw32-gcc >/dev/null || [ "${TRAY_WINE:-1}" = 0 ]; then
		echo "tray-screenshot: Windows part SKIPPED (needs wine64 and gcc-mingw-w64-x86-64-win32; TRAY_WINE=0 also skips it)"
		return 0
	fi
	echo "tray-screenshot: Windows build under wine"
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 $GO build -ldflags -H=windowsgui -o "$tmp/win/tcpinc-tray.exe" ./cmd/tcpinc-tray
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 $GO build -o "$tmp/win/fakectld.exe" ./cmd/tcpinc-tray/internal/fakectl/fakectld
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 $GO build -o "$tmp/win/tcpinc.exe" ./cmd/tcpinc
	(
		export WINEPREFIX="$tmp/wine" WINEDEBUG=-all WINEARCH=win64
		# A display of its own: Wine's desktop window fills it.
		Xvfb -displayfd 4 -screen 0 640x400x24 -nolisten tcp 4>"$tmp/display-wine" 2>/dev/null &
		xpid=$!
		trap 'WINEPREFIX="$tmp/wine" wineserver -k 2>/dev/null || true; kill $xpid 2>/dev/null || true' EXIT
		for _ in $(seq 100); do [ -s "$tmp/display-wine" ] && break; sleep 0.1; done
		export DISPLAY=":$(cat "$tmp/display-wine")"
		"$wine" wineboot --init >/dev/null 2>&1 || true
		# Go's runtime needs bcryptprimitives.dll, which wine 8 lacks
		# (see scripts/wine-test.sh).
		x86_64-w64-mingw32-gcc -shared -O2 -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
			scripts/wine/bcryptprimitives.c -ladvapi32
		# The fake tcpincd on the default pipe, so the tray needs no
		# --control.
		"$wine" "$tmp/win/fakectld.exe" --control tcpinc --state encrypted >"$tmp/wine-fake.log" 2>&1 &
		fpid=$!
		# wait_fake text: until tcpinc.exe status (over the pipe) says it.
		wait_fake() {
			for _ in $(seq 30); do
				"$wine" "$tmp/win/tcpinc.exe" status 2>&1 | grep -q "$1" && return 0
				sleep 1
			done
			echo "tray-screenshot: the fake tcpincd under wine does not say '$1':" >&2
			cat "$tmp/wine-fake.log" >&2
			exit 1
		}
		wait_fake 'state: *running'
		"$wine" explorer /desktop=tcpinc,640x400 "$tmp/win/tcpinc-tray.exe" --interval 1s \
			>"$tmp/wine-tray.log" 2>&1 &
		# A fresh Wine prefix takes a while to start its desktop.
		for _ in $(seq 60); do grep -q 'tcpinc-tray started' "$tmp/wine-tray.log" && break; sleep 1; done
		grep -q 'tcpinc-tray started' "$tmp/wine-tray.log" || {
			echo "tray-screenshot: tcpinc-tray.exe did not start under wine:" >&2
			cat "$tmp/wine-tray.log" >&2
			exit 1
		}
		# wine_shot name colour: checks the colour of the icon in the
		# notification area (right end of the taskbar), then opens its
		# menu and takes docs/tray-windows-NAME.png.
		wine_shot() {
			local rgb got
			import -window root "$tmp/full.png"
			rgb=$("$CONVERT" "$tmp/full.png" -crop 14x12+623+388 +repage \
				-format '%[fx:mean.r] %[fx:mean.g] %[fx:mean.b]' info:)
			got=$(echo "$rgb" | awk '{ r=$1; g=$2; b=$3; hi=r; lo=r
				if (g>hi) hi=g; if (b>hi) hi=b; if (g<lo) lo=g; if (b<lo) lo=b
				if (hi-lo < 0.06) print "grey"; else if (hi==r) print "red"; else if (hi==g) print "green"; else print "blue" }')
			if [ "$got" != "$2" ]; then
				echo "tray-screenshot: FAIL: under wine, the $1 icon is $got (mean RGB $rgb), want $2" >&2
				cat "$tmp/wine-tray.log" "$tmp/wine-fake.log" >&2
				exit 1
			fi
			echo "tray-screenshot: under wine, the $1 icon is $got"
			xdotool mousemove 629 389 click 3
			sleep 2
			import -window root "$tmp/full.png"
			"$CONVERT" "$tmp/full.png" -crop 400x240+240+160 +repage "$outdir/tray-windows-$1.png"
			echo "tray-screenshot: $outdir/tray-windows-$1.png"
			# Close the menu.
			xdotool key Escape
			sleep 0.5
			xdotool mousemove 100 100 click 1
			sleep 0.5
		}
		# The tray polls every second.
		sleep 3
		wine_shot wine green
		# The same tcpincd as a service that cannot capture: the tray
		# must show the red icon and the reason, not "on".
		kill $fpid
		wait $fpid 2>/dev/null || true
		"$wine" "$tmp/win/fakectld.exe" --control tcpinc --state unavailable >>"$tmp/wine-fake.log" 2>&1 &
		wait_fake 'state: *capture unavailable: '
		sleep 3
		wine_shot unavailable red
	)
}
wine_demo

# The artwork itself at 128 pixels, on a light and on a dark panel.
icons=cmd/tcpinc-tray/icons/png
for bg in '#eef0f3' '#30343b'; do
	"$CONVERT" -background "$bg" $icons/off-128.png $icons/on-128.png $icons/encrypted-128.png $icons/error-128.png \
		-bordercolor "$bg" -border 12 +append "$tmp/icons-$(echo "$bg" | tr -d '#').png"
done
"$CONVERT" "$tmp/icons-eef0f3.png" "$tmp/icons-30343b.png" -append "$outdir/tray-icons.png"
echo "tray-screenshot: $outdir/tray-icons.png"

# The four states side by side, magnified, for the README.
"$CONVERT" "$tmp/bar-off.png" "$tmp/bar-on.png" "$tmp/bar-encrypted.png" "$tmp/bar-error.png" \
	-bordercolor '#30343b' -border 4 +append "$outdir/tray-states.png"
echo "tray-screenshot: $outdir/tray-states.png"

# After tcpincd came up the icon must be the "on" one again (a few
# pixels of the host's antialiasing may differ).
diff=$(compare -metric AE -fuzz 10% "$tmp/bar-recovered.png" "$tmp/bar-on.png" null: 2>&1 || true)
if ! [ "${diff%%.*}" -lt 50 ] 2>/dev/null; then
	echo "tray-screenshot: after tcpincd came back the icon is not the 'on' one ($diff pixels differ)" >&2
	cp "$tmp/bar-recovered.png" "$outdir/tray-recovered-FAILED.png"
	exit 1
fi
echo "tray-screenshot: the icon recovered when tcpincd came up ($diff pixels differ from 'on')"
# No timestamps in the files, so an unchanged picture is an unchanged file.
for f in "$outdir"/tray-*.png; do
	"$CONVERT" "$f" -strip -define png:exclude-chunk=date,time "$f"
done
grep -h -i -E 'panic|fatal' "$tmp/tray.log" && { echo "tray-screenshot: tcpinc-tray logged a failure" >&2; exit 1; }
echo "tray-screenshot: done"

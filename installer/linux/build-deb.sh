#!/usr/bin/env bash
# Builds the tcpinc Debian package with dpkg-deb: tcpincd, tcpinc and
# tcpinc-tray, the systemd unit, the default configuration (a conffile),
# the tray's XDG autostart entry (a conffile) and icon, and the
# maintainer scripts of installer/linux/debian. It only builds:
# nothing is installed or started on this machine.
#
# Usage: installer/linux/build-deb.sh OUTDIR [GOARCH]
# Environment: GO (default go), VERSION (default 0.0.0~git<commit>).
set -euo pipefail

cd "$(dirname "$0")/../.."
out=${1:?usage: build-deb.sh OUTDIR [GOARCH]}
arch=${2:-$(${GO:-go} env GOARCH)}
GO=${GO:-go}
case $arch in
amd64 | arm64) ;;
*) echo "build-deb: GOARCH $arch is not packaged (amd64, arm64)" >&2; exit 2 ;;
esac
if [ -z "${VERSION:-}" ]; then
	VERSION="0.0.0~git$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
fi

root=$(mktemp -d /tmp/tcpinc-deb.XXXXXX)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
umask 022

ldflags="-s -w -X tcpinc.dev/tcpinc/service/version.Version=${VERSION}"
build() { # build PKG DEST
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch "$GO" build -trimpath -ldflags "$ldflags" -o "$2" "$1"
}
mkdir -p "$root/usr/sbin" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/tcpinc" \
	"$root/usr/share/doc/tcpinc" "$root/DEBIAN"
build ./cmd/tcpincd "$root/usr/sbin/tcpincd"
build ./cmd/tcpinc "$root/usr/bin/tcpinc"
tray=0
if [ -d cmd/tcpinc-tray ]; then
	tray=1
	build ./cmd/tcpinc-tray "$root/usr/bin/tcpinc-tray"
	# The tray starts in every desktop session (XDG autostart; a user
	# turns it off with a Hidden=true copy in ~/.config/autostart), and
	# its entry's Icon=tcpinc-tray is the green shield, which the
	# hicolor theme's scalable size takes as an SVG.
	install -D -m 0644 cmd/tcpinc-tray/tcpinc-tray.desktop "$root/etc/xdg/autostart/tcpinc-tray.desktop"
	install -D -m 0644 cmd/tcpinc-tray/icons/encrypted.svg "$root/usr/share/icons/hicolor/scalable/apps/tcpinc-tray.svg"
fi

install -m 0644 installer/linux/tcpincd.service "$root/lib/systemd/system/tcpincd.service"
# The default configuration is what this source's tcpincd prints, so the
# two cannot drift (it is the same text on every Linux architecture).
CGO_ENABLED=0 "$GO" run ./cmd/tcpincd --print-default-config >"$root/etc/tcpinc/tcpincd.toml"
chmod 0644 "$root/etc/tcpinc/tcpincd.toml"
install -m 0644 docs/service.md "$root/usr/share/doc/tcpinc/service.md"
install -m 0644 installer/linux/debian/copyright "$root/usr/share/doc/tcpinc/copyright"
mkdir -p "$root/usr/share/lintian/overrides"
install -m 0644 installer/linux/debian/lintian-overrides "$root/usr/share/lintian/overrides/tcpinc"
printf 'tcpinc (%s) unstable; urgency=medium\n\n  * Build from the tcpinc source tree.\n\n -- tcpinc developers <tcpinc@tcpinc.dev>  %s\n' \
	"$VERSION" "$(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" |
	gzip -9n >"$root/usr/share/doc/tcpinc/changelog.gz"

for f in postinst prerm postrm; do
	install -m 0755 "installer/linux/debian/$f" "$root/DEBIAN/$f"
done
install -m 0644 installer/linux/debian/conffiles "$root/DEBIAN/conffiles"
# Every file under /etc is a conffile, so a user's edit of the autostart
# entry survives upgrades.
if [ $tray = 1 ]; then
	echo /etc/xdg/autostart/tcpinc-tray.desktop >>"$root/DEBIAN/conffiles"
fi
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
	installer/linux/debian/control.in >"$root/DEBIAN/control"
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control"

mkdir -p "$out"
deb="$out/tcpinc_${VERSION}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"

# Service area: the Debian package and the checks of the Linux service
# files (see docs/service.md). Nothing here installs or starts tcpincd on
# this machine.

DEB_OUT  ?= dist
DEB_ARCH ?= $(shell $(GO) env GOARCH)

.PHONY: deb service-test service-unit-verify service-deb-check

# make deb [DEB_ARCH=arm64] [VERSION=1.2.3]: dist/tcpinc_<version>_<arch>.deb
deb:
	@scripts/deps.sh dpkg-deb:dpkg
	GO=$(GO) installer/linux/build-deb.sh $(DEB_OUT) $(DEB_ARCH)

# systemd-analyze verify on the packaged unit, with ExecStart pointing at
# a freshly built tcpincd (verify wants the binary to exist). As root,
# systemd is installed (the package; nothing is started) if missing;
# otherwise the check is skipped when systemd-analyze is absent.
service-unit-verify:
	@if [ "$$(id -u)" -eq 0 ]; then scripts/deps.sh systemd-analyze:systemd; fi
	@if ! command -v systemd-analyze >/dev/null; then \
		echo "service-unit-verify: SKIPPED, needs systemd-analyze (Debian package systemd)"; exit 0; fi; \
	tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	CGO_ENABLED=0 $(GO) build -o $$tmp/tcpincd ./cmd/tcpincd; \
	sed "s|/usr/sbin/tcpincd|$$tmp/tcpincd|g" installer/linux/tcpincd.service >$$tmp/tcpincd.service; \
	out=$$(systemd-analyze verify $$tmp/tcpincd.service 2>&1); rc=$$?; \
	if [ $$rc -ne 0 ] || [ -n "$$out" ]; then echo "$$out"; echo "service-unit-verify: FAILED"; exit 1; fi; \
	echo "service-unit-verify: installer/linux/tcpincd.service verifies cleanly"

# Build the .deb and check its contents and scripts; lintian when it is
# installed (it is not installed for this: it pulls in a lot).
service-deb-check:
	@scripts/deps.sh dpkg-deb:dpkg
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	deb=$$(GO=$(GO) installer/linux/build-deb.sh $$tmp); \
	dpkg-deb --contents $$deb >$$tmp/contents; \
	want="./usr/sbin/tcpincd ./usr/bin/tcpinc ./lib/systemd/system/tcpincd.service ./etc/tcpinc/tcpincd.toml ./usr/share/doc/tcpinc/copyright"; \
	conf="/etc/tcpinc/tcpincd.toml"; \
	if [ -d cmd/tcpinc-tray ]; then \
		want="$$want ./usr/bin/tcpinc-tray ./etc/xdg/autostart/tcpinc-tray.desktop ./usr/share/icons/hicolor/scalable/apps/tcpinc-tray.svg"; \
		conf="$$conf /etc/xdg/autostart/tcpinc-tray.desktop"; fi; \
	for f in $$want; do \
		grep -q " $$f\$$" $$tmp/contents || { echo "service-deb-check: $$f missing from the package"; exit 1; }; done; \
	mkdir $$tmp/ctrl; dpkg-deb --control $$deb $$tmp/ctrl; \
	for f in $$conf; do grep -qx "$$f" $$tmp/ctrl/conffiles || { echo "service-deb-check: $$f is not a conffile"; exit 1; }; done; \
	if [ -d cmd/tcpinc-tray ]; then \
		mkdir $$tmp/data; dpkg-deb --fsys-tarfile $$deb | tar -x -C $$tmp/data ./etc/xdg/autostart/tcpinc-tray.desktop ./usr/share/icons/hicolor/scalable/apps/tcpinc-tray.svg; \
		cmp -s $$tmp/data/etc/xdg/autostart/tcpinc-tray.desktop cmd/tcpinc-tray/tcpinc-tray.desktop || { echo "service-deb-check: the packaged autostart entry differs from cmd/tcpinc-tray/tcpinc-tray.desktop"; exit 1; }; \
		cmp -s $$tmp/data/usr/share/icons/hicolor/scalable/apps/tcpinc-tray.svg cmd/tcpinc-tray/icons/encrypted.svg || { echo "service-deb-check: the packaged icon differs from cmd/tcpinc-tray/icons/encrypted.svg"; exit 1; }; \
		grep -qx 'Icon=tcpinc-tray' $$tmp/data/etc/xdg/autostart/tcpinc-tray.desktop || { echo "service-deb-check: the autostart entry does not name the packaged icon tcpinc-tray"; exit 1; }; \
		if command -v desktop-file-validate >/dev/null; then desktop-file-validate $$tmp/data/etc/xdg/autostart/tcpinc-tray.desktop; fi; fi; \
	if command -v shellcheck >/dev/null; then shellcheck -s sh installer/linux/debian/postinst installer/linux/debian/prerm installer/linux/debian/postrm; shellcheck installer/linux/build-deb.sh; fi; \
	for s in postinst prerm postrm; do sh -n installer/linux/debian/$$s; done; \
	if command -v lintian >/dev/null; then rc=0; out=$$(lintian --fail-on error --tag-display-limit 0 $$deb 2>&1) || rc=$$?; \
		echo "$$out" | grep -v "root privileges" || true; [ $$rc -eq 0 ] || { echo "service-deb-check: lintian reports errors"; exit 1; }; fi; \
	echo "service-deb-check: $$(basename $$deb) has the binaries, unit, conffiles, scripts and the tray's autostart entry and icon"

service-test: service-unit-verify service-deb-check

TEST_EXTRA += service-test

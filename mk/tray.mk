# tcpinc-tray: icons, screenshots and the autostart file (see docs/tray.md).

.PHONY: tray-icons tray-screenshot tray-desktop-check

# Render cmd/tcpinc-tray/icons/*.svg to the committed PNG and ICO files
# (needs rsvg-convert, installed here as root).
tray-icons:
	@scripts/deps.sh rsvg-convert:librsvg2-bin
	$(GO) generate ./cmd/tcpinc-tray/icons

# The tray on Xvfb with a StatusNotifierItem host, in every state, against
# a fake tcpincd: writes docs/tray-*.png. Slow (about a minute) and needs
# X packages, so not part of 'make test'.
tray-screenshot:
	GO=$(GO) scripts/tray-screenshot.sh docs

# The XDG autostart file must be valid.
tray-desktop-check:
	@if [ "$$(id -u)" -eq 0 ]; then scripts/deps.sh desktop-file-validate:desktop-file-utils; fi
	@if command -v desktop-file-validate >/dev/null; then \
		desktop-file-validate cmd/tcpinc-tray/tcpinc-tray.desktop && echo "tray: cmd/tcpinc-tray/tcpinc-tray.desktop is valid"; \
	else echo "tray-desktop-check: SKIPPED, needs desktop-file-utils (run make test as root to install it)"; fi

TEST_EXTRA += tray-desktop-check

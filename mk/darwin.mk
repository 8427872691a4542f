# macOS: the tar.gz packages and the checks of the installer files.
# (The OS-neutral parts of platform_darwin — pf anchor text, BPF filters,
# DIOCNATLOOK layout, raw packets, the launchd plist — are tested by
# 'go test ./...' on any OS; darwin-test adds what needs tools.)

DARWIN_ARCHES   := arm64 amd64
DARWIN_LABEL    := dev.tcpinc.tcpincd
DARWIN_VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)
DARWIN_DIST     ?= dist
DARWIN_SCRIPTS  := installer/darwin/install.sh installer/darwin/uninstall.sh

.PHONY: pkg-darwin darwin-test darwin-shellcheck

# One tarball per architecture: bin/tcpincd, bin/tcpinc, the launchd plist,
# install.sh, uninstall.sh, the pf anchor as loaded with the default
# settings, README.md. tcpinc-tray is not included: on macOS it needs cgo
# and the macOS SDK. Signing and notarization happen on a Mac (docs/macos.md).
pkg-darwin:
	@set -e; mkdir -p $(DARWIN_DIST); \
	for arch in $(DARWIN_ARCHES); do \
		name=tcpinc-$(DARWIN_VERSION)-darwin-$$arch; \
		stage=$$(mktemp -d); trap 'rm -rf "$$stage"' EXIT; \
		mkdir -p $$stage/$$name/bin $$stage/$$name/pf; \
		for cmd in tcpincd tcpinc; do \
			CGO_ENABLED=0 GOOS=darwin GOARCH=$$arch $(GO) build -trimpath \
				-ldflags "-s -w -X tcpinc.dev/tcpinc/service/version.Version=$(DARWIN_VERSION)" \
				-o $$stage/$$name/bin/$$cmd ./cmd/$$cmd; \
		done; \
		install -m 644 installer/darwin/$(DARWIN_LABEL).plist installer/darwin/README.md $$stage/$$name/; \
		install -m 755 $(DARWIN_SCRIPTS) $$stage/$$name/; \
		install -m 644 platform_darwin/testdata/anchor-default.pf $$stage/$$name/pf/tcpinc.anchor; \
		tar -C $$stage --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
			-czf $(DARWIN_DIST)/$$name.tar.gz $$name; \
		rm -rf "$$stage"; trap - EXIT; \
		echo "pkg-darwin: $(DARWIN_DIST)/$$name.tar.gz"; \
	done

# shellcheck on the installer scripts (Debian's shellcheck, installed as
# root when missing; skipped with a message for other users).
darwin-shellcheck:
	@if [ "$$(id -u)" -eq 0 ]; then scripts/deps.sh shellcheck:shellcheck; fi
	@if command -v shellcheck >/dev/null; then \
		shellcheck -s sh $(DARWIN_SCRIPTS) platform_darwin/testdata/fakepfctl && echo "darwin: shellcheck passed on $(DARWIN_SCRIPTS) and the fake pfctl"; \
	else echo "darwin-shellcheck: SKIPPED, needs shellcheck (run make test as root to install it)"; fi

# The packages build for both architectures and hold what install.sh needs
# (install.sh refuses to run without these files).
darwin-test: darwin-shellcheck
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(MAKE) --no-print-directory pkg-darwin DARWIN_DIST=$$tmp DARWIN_VERSION=test >/dev/null; \
	for arch in $(DARWIN_ARCHES); do \
		list=$$(tar -tzf $$tmp/tcpinc-test-darwin-$$arch.tar.gz); \
		for f in bin/tcpincd bin/tcpinc $(DARWIN_LABEL).plist install.sh uninstall.sh pf/tcpinc.anchor README.md; do \
			echo "$$list" | grep -qx "tcpinc-test-darwin-$$arch/$$f" || { echo "darwin-test: $$f missing from the $$arch package"; exit 1; }; \
		done; \
		tar -xzf $$tmp/tcpinc-test-darwin-$$arch.tar.gz -C $$tmp; \
		head -c 4 $$tmp/tcpinc-test-darwin-$$arch/bin/tcpincd | od -An -tx1 | grep -q "cf fa ed fe" || { echo "darwin-test: $$arch tcpincd is not a 64-bit Mach-O binary"; exit 1; }; \
	done; \
	echo "darwin: packages for $(DARWIN_ARCHES) build and hold every file"

TEST_EXTRA += darwin-test

# Windows Installer packages (docs/windows-msi.md).
#
#   make msi WINDIVERT_DIR=/path/to/WinDivert-2.2.2-A [MSI_VERSION=1.2.3] [MSI_ARCH=x64|arm64]
#            [SIGN_CERT=cert.pem SIGN_KEY=key.pem [SIGN_PASS=...] [SIGN_TIMESTAMP_URL=...]]
#   make msi-test     a test-only package with placeholder WinDivert files
#   make msi-check    build, inspect, and (with wine) install/upgrade/uninstall
#                     the test packages; part of make test
#   make wine-test-service   the named pipe control transport's tests under
#                     wine; part of make test
#
# Packages land in dist/. The x64 release package needs the unpacked
# WinDivert release archive whose hashes installer/windows/windivert.sha256
# pins; the arm64 one ships no WinDivert (there is no signed arm64 driver).

MSI_VERSION ?= 0.1.0
MSI_ARCH    ?= x64
MSI_OUT     ?= dist/tcpinc-$(MSI_VERSION)-$(MSI_ARCH).msi
MSI_DEPS    := wixl:wixl msibuild:msitools msiinfo:msitools msiextract:msitools osslsigncode:osslsigncode openssl:openssl
# wine (msiexec, sc, reg) and mingw-w64 (the bcryptprimitives.dll stand-in)
# for the install test.
MSI_WINE_DEPS := wine:wine /usr/lib/wine/wine64:wine64 x86_64-w64-mingw32-gcc:gcc-mingw-w64-x86-64-win32

# Paths made absolute; SIGN_PASS and SIGN_TIMESTAMP_URL reach the script
# through the environment (make exports command-line variables), so the
# password is never echoed with the command.
MSI_SIGN_ENV = $(if $(SIGN_CERT),SIGN_CERT="$(abspath $(SIGN_CERT))") $(if $(SIGN_KEY),SIGN_KEY="$(abspath $(SIGN_KEY))")

TEST_EXTRA += msi-check wine-test-service

.PHONY: msi msi-test msi-check msi-deps wine-test-service

msi-deps:
	@scripts/deps.sh $(MSI_DEPS)

msi: msi-deps
	@if [ "$(MSI_ARCH)" = x64 ] && [ -z "$(WINDIVERT_DIR)" ]; then \
		echo "make msi: set WINDIVERT_DIR to the unpacked WinDivert 2.2.2-A release archive"; \
		echo "          (the directory holding x64/WinDivert.dll, x64/WinDivert64.sys and LICENSE,"; \
		echo "          checked against installer/windows/windivert.sha256), e.g."; \
		echo "          make msi WINDIVERT_DIR=$$HOME/WinDivert-2.2.2-A"; \
		echo "          For a package to test with, without WinDivert: make msi-test. See docs/windows-msi.md."; \
		exit 1; \
	fi
	GO=$(GO) $(MSI_SIGN_ENV) scripts/msi-build.sh --arch $(MSI_ARCH) --version $(MSI_VERSION) --out $(MSI_OUT) \
		$(if $(WINDIVERT_DIR),--windivert "$(abspath $(WINDIVERT_DIR))")

msi-test: msi-deps
	GO=$(GO) scripts/msi-build.sh --test --placeholder-windivert --arch $(MSI_ARCH) --version $(MSI_VERSION) \
		--out dist/tcpinc-$(MSI_VERSION)-$(MSI_ARCH)-TEST-placeholder-windivert.msi

# Bounded: each wine command has its own timeout; the whole check gets 6
# minutes at most (it takes about 2 on this machine's 2 cores).
# As root the tools are installed; other users without them get a SKIPPED.
msi-check:
	@if [ "$$(id -u)" -eq 0 ]; then scripts/deps.sh $(MSI_DEPS) $(MSI_WINE_DEPS); fi
	@if scripts/deps.sh $(MSI_DEPS) 2>/dev/null; then GO=$(GO) timeout 360 scripts/msi-test.sh; \
	else echo "msi-check: SKIPPED, needs wixl, msitools, osslsigncode and openssl (run make test as root to install them)"; fi

# The Windows service's own code as Windows test binaries under wine:
# the named pipe control transport (server and client in one process,
# the caller's token, large replies, deadlines, a second listener
# refused, a pipe owned by someone else refused). OS-specific, so not in
# the Makefile's NEUTRAL list.
WINE_SERVICE_PKGS := ./service/control
wine-test-service:
	@if [ "$$(id -u)" -eq 0 ]; then scripts/deps.sh /usr/lib/wine/wine64:wine64 x86_64-w64-mingw32-gcc:gcc-mingw-w64-x86-64-win32; fi
	@if { [ -x /usr/lib/wine/wine64 ] || command -v wine64 >/dev/null; } && command -v x86_64-w64-mingw32-gcc >/dev/null; then \
		timeout 300 scripts/wine-test.sh $(WINE_SERVICE_PKGS); \
	else echo "wine-test-service: SKIPPED, needs wine64 and gcc-mingw-w64-x86-64-win32 (run make test as root to install them)"; fi

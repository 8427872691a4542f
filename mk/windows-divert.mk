# platform_windows: the WinDivert binding and the divert backend as a
# Windows test binary under wine, against a stand-in WinDivert.dll built
# from scripts/wine/windivert_mock.c (no driver, no network): the binding's
# overlapped batched I/O and error mapping, and whole encrypted connections
# between two gVisor TCP stacks through two backends. Needs wine64 and
# mingw-w64 (installed as root; skipped with a message otherwise).

.PHONY: windivert-wine-test

windivert-wine-test:
	@if [ "$$(id -u)" -eq 0 ]; then scripts/deps.sh /usr/lib/wine/wine64:wine64 x86_64-w64-mingw32-gcc:gcc-mingw-w64-x86-64-win32; fi
	@if { [ -x /usr/lib/wine/wine64 ] || command -v wine64 >/dev/null; } && command -v x86_64-w64-mingw32-gcc >/dev/null; then \
		scripts/wine/windivert-test.sh; \
	else echo "windivert-wine-test: SKIPPED, needs wine64 and gcc-mingw-w64-x86-64-win32 (run make test as root to install them)"; fi

TEST_EXTRA += windivert-wine-test

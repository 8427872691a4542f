# tcpinc — see README.md. Every target installs what it needs itself
# (as root, missing Debian packages come from apt-get).

GO        ?= go
FUZZTIME  ?= 30s
BENCHTIME ?= 1s
PLATFORMS := linux/amd64 linux/arm64 windows/amd64 windows/arm64 darwin/amd64 darwin/arm64
# Packages whose Windows test binaries run under wine (OS-neutral code, or
# code whose Windows parts wine can run), where wine is installed.
NEUTRAL   := ./core/... ./cmd/tcpinc-tray/internal/tray ./cmd/tcpinc-tray/icons/...

export CGO_ENABLED ?= 0

# Each area adds its own targets in mk/*.mk and appends the checks that
# 'make test' must run to TEST_EXTRA (run after the unit tests).
TEST_EXTRA :=
-include mk/*.mk

.PHONY: all build test unit vet vectors vectors-check fuzz bench wine-test fmt-check help demo

all: build

help:
	@echo "make demo            - (root) tcpincd in two network namespaces, curl across, checks"
	@echo "make test            - everything CI runs: vet (all OS/arch), all tests, vectors, wine, MSI, packages"
	@echo "make bench           - core microbenchmarks; as root also plain vs divert vs redirect (docs/benchmarks.md)"
	@echo "make fuzz            - run every fuzz target for FUZZTIME (default 30s)"
	@echo "make vectors         - regenerate testdata/vectors.json"
	@echo "make deb             - Debian package (dist/tcpinc_<version>_<arch>.deb)"
	@echo "make msi             - Windows installer (needs WINDIVERT_DIR; see docs/windows-msi.md)"
	@echo "make msi-test        - test-only Windows installer with placeholder driver files"
	@echo "make pkg-darwin      - macOS packages (dist/tcpinc-<version>-darwin-*.tar.gz)"
	@echo "make tray-screenshot - the tray icon under Xvfb in every state: docs/tray-*.png"
	@echo "make tray-icons      - render the tray icons from their SVG sources"
	@echo "make perf-divert     - (root) the divert backend's own throughput measurement"

build:
	$(GO) build ./...

test: fmt-check vet unit vectors-check wine-test $(TEST_EXTRA)
	@echo "make test: all checks passed"

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	@set -e; for p in $(PLATFORMS); do \
		echo "== vet $$p"; \
		GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) vet ./...; \
		GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -o /dev/null ./...; \
	done

# -race needs cgo; the race detector is worth it for the caches and
# service code, so turn cgo on for this one step.
# As root the namespace tests of platform_linux run too; they need
# iproute2, nftables and tcpdump (installed here when missing).
unit:
	@if [ "$$(id -u)" -eq 0 ]; then scripts/deps.sh gcc:gcc ip:iproute2 nft:nftables tcpdump:tcpdump; else scripts/deps.sh gcc:gcc; fi
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 15m ./...

vectors:
	$(GO) run ./core/tcpcrypt/cmd/genvectors -o testdata/vectors.json

# Regenerate into a temporary file and compare byte for byte; the
# verifier test (core/tcpcrypt TestVectorsFile) checks the committed file
# independently of the generator.
vectors-check:
	@tmp=$$(mktemp); trap 'rm -f $$tmp' EXIT; \
	$(GO) run ./core/tcpcrypt/cmd/genvectors -o $$tmp && \
	if cmp -s $$tmp testdata/vectors.json; then echo "vectors: testdata/vectors.json regenerates identically"; \
	else echo "vectors: testdata/vectors.json differs from the generator's output; run 'make vectors' and review the diff"; exit 1; fi

# Windows test binaries under wine: needs wine64 and mingw-w64 (for the
# bcryptprimitives.dll stand-in). Installed as root; skipped, with a
# message, for other users who lack them.
wine-test:
	@if [ "$$(id -u)" -eq 0 ]; then scripts/deps.sh /usr/lib/wine/wine64:wine64 x86_64-w64-mingw32-gcc:gcc-mingw-w64-x86-64-win32; fi
	@if { [ -x /usr/lib/wine/wine64 ] || command -v wine64 >/dev/null; } && command -v x86_64-w64-mingw32-gcc >/dev/null; then \
		scripts/wine-test.sh $(NEUTRAL); \
	else echo "wine-test: SKIPPED, needs wine64 and gcc-mingw-w64-x86-64-win32 (run make test as root to install them)"; fi

fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# Protocol core and divert engine in isolation (no network): frame
# seal/open per AEAD, handshakes per TEP, packet rewriting, engine
# throughput per core and bytes of state per connection. Then, as root,
# the end-to-end figures (scripts/bench.sh): plain TCP, divert and
# redirect side by side in network namespaces (iperf3 throughput,
# connections per second full and resumed, tcpincd CPU per GB), as ratios
# to plain TCP, written to docs/benchmarks.md. BENCH_SECONDS and
# BENCH_CONNS bound each measurement.
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./core/...
	@if [ "$$(id -u)" -eq 0 ]; then GO=$(GO) scripts/bench.sh; \
	else echo "bench: end-to-end benchmarks (scripts/bench.sh) SKIPPED: they need root"; fi

# End-to-end demo (root): two network namespaces, tcpincd in each, curl
# through it; checks the wire carries no plaintext and both ends agree on
# the session ID. Installs iproute2, nftables, tcpdump, curl, python3.
demo:
	GO=$(GO) scripts/demo.sh

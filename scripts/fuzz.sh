#!/usr/bin/env bash
# Runs every Go fuzz target in the module for FUZZTIME each (default 30s).
# New crashers are written by go test into the package's testdata/fuzz and
# become regression seeds; commit them with the fix.
set -euo pipefail
fuzztime=${FUZZTIME:-30s}
status=0
for pkg in $(go list ./...); do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "== fuzz $pkg $target ($fuzztime)"
		if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg"; then
			echo "FAIL: $pkg $target" >&2
			status=1
		fi
	done
done
exit $status

#!/usr/bin/env bash
# Installs the Debian packages a make target needs, when they are missing.
# Usage: scripts/deps.sh CMD:PACKAGE ...   (CMD may be an absolute path)
# As root it runs apt-get; otherwise it says what to install and fails.
set -euo pipefail

missing=()
for spec in "$@"; do
	cmd=${spec%%:*}
	pkg=${spec#*:}
	if [[ $cmd == /* ]]; then
		[ -x "$cmd" ] || missing+=("$pkg")
	else
		command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]}" >&2
	echo "deps: run as root, or install them: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi
echo "deps: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists once per day at most; a fresh machine has none.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
	apt-get update -qq
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2

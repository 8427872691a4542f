#!/usr/bin/env bash
# Builds the tcpinc Windows Installer package (MSI) with Debian's wixl.
#
# Usage:
#   scripts/msi-build.sh --arch x64|arm64 --version X.Y.Z --out FILE.msi
#                        [--windivert DIR | --placeholder-windivert] [--test]
#
#   --windivert DIR          the unpacked WinDivert 2.2.2-A release archive
#                            (x64/WinDivert.dll, x64/WinDivert64.sys, LICENSE);
#                            every file must match installer/windows/windivert.sha256.
#                            Required for a release x64 package.
#   --placeholder-windivert  ship text files saying "PLACEHOLDER — NOT WINDIVERT"
#                            instead; only together with --test.
#   --test                   a test-only package: its own UpgradeCode (it never
#                            upgrades or replaces a real installation), "TEST
#                            BUILD" in its name, and the tray may be missing.
#   --no-service-start       (with --test) do not start the service at install:
#                            for a tcpincd.exe that cannot run as a Windows
#                            service yet (Windows Installer rolls back an
#                            install whose service does not start).
#
# Environment: GO (default go); MSI_WINEPREFIX, a wine prefix made with
# scripts/wine/prefix.sh to reuse instead of making one; SIGN_CERT and SIGN_KEY (PEM or DER files) to
# sign our executables and the MSI with osslsigncode, SIGN_PASS for an
# encrypted key, SIGN_TIMESTAMP_URL for an RFC 3161 timestamp server.
# The WinDivert files are never re-signed. WINDIVERT_PINS overrides the pin
# file (tests only: scripts/msi-test.sh checks that a mismatch is refused).
#
# Needs wixl and msibuild (Debian: wixl, msitools) and, when signing,
# osslsigncode; mk/windows.mk installs them. Uses wine, when installed, to
# ask the Windows tcpincd.exe for its default configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# The product's identity: never change these. Windows Installer finds an
# installed copy to upgrade by the UpgradeCode; test packages use their own
# so that they can never replace a real installation.
readonly UPGRADE_CODE_RELEASE=16DF7BB5-1C16-43CE-B3CB-4AD8C41F17F2
readonly UPGRADE_CODE_TEST=0FE6099D-4428-42DE-AED1-52EB3DB4B7BD
# What the service control manager runs: tcpincd.exe run --service.
# --service makes tcpincd answer the SCM without asking whether the SCM
# started it (that detection fails under wine), and keeps it running
# without capture when WinDivert cannot start (docs/windows-msi.md).
readonly SERVICE_ARGS="run --service"

die() { echo "msi-build: $*" >&2; exit 1; }

arch='' version='' out='' windivert='' placeholder=0 test=0 nostart=0
while [ $# -gt 0 ]; do
	case $1 in
	--arch) arch=${2-}; shift 2 ;;
	--version) version=${2-}; shift 2 ;;
	--out) out=${2-}; shift 2 ;;
	--windivert) windivert=${2-}; shift 2 ;;
	--placeholder-windivert) placeholder=1; shift ;;
	--test) test=1; shift ;;
	--no-service-start) nostart=1; shift ;;
	*) die "unknown argument $1 (see the usage at the top of $0)" ;;
	esac
done
case $arch in
x64) goarch=amd64 ;;
arm64) goarch=arm64 ;;
*) die "--arch must be x64 or arm64" ;;
esac
[[ $version =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,5}$ ]] ||
	die "--version must be three numbers, e.g. 1.2.3 (Windows Installer compares only these), not '$version'"
[ -n "$out" ] || die "--out FILE.msi is required"
[ $placeholder -eq 0 ] || [ $test -eq 1 ] || die "--placeholder-windivert is only for test packages (--test)"
[ $nostart -eq 0 ] || [ $test -eq 1 ] || die "--no-service-start is only for test packages (--test)"
[ $placeholder -eq 0 ] || [ -z "$windivert" ] || die "--windivert and --placeholder-windivert exclude each other"
if [ "$arch" = x64 ] && [ -z "$windivert" ] && [ $placeholder -eq 0 ]; then
	die "the x64 package ships WinDivert: set WINDIVERT_DIR (make msi WINDIVERT_DIR=/path/to/WinDivert-2.2.2-A), see docs/windows-msi.md"
fi
if [ "$arch" = arm64 ] && { [ -n "$windivert" ] || [ $placeholder -eq 1 ]; }; then
	echo "msi-build: note: WinDivert has no signed arm64 driver; the arm64 package ships none" >&2
	windivert='' placeholder=0
fi
for t in wixl msibuild msiinfo; do
	command -v $t >/dev/null || die "$t is missing: install Debian's wixl and msitools (make msi does)"
done
GO=${GO:-go}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/data" "$work/windivert"

# --- WinDivert: pinned files only -------------------------------------------
if [ -n "$windivert" ]; then
	pins=${WINDIVERT_PINS:-installer/windows/windivert.sha256}
	[ -d "$windivert" ] || die "WINDIVERT_DIR $windivert is not a directory"
	npins=0
	while read -r sum rel; do
		case $sum in '' | '#'*) continue ;; esac
		[[ $sum =~ ^[0-9a-f]{64}$ ]] || die "$pins: malformed line for $rel"
		f=$windivert/$rel
		[ -f "$f" ] || die "$f is missing: WINDIVERT_DIR must be the unpacked WinDivert release archive named in $pins"
		got=$(sha256sum "$f" | cut -d' ' -f1)
		[ "$got" = "$sum" ] ||
			die "$f has SHA-256 $got, but $pins pins $sum: refusing to ship a WinDivert file that is not the pinned release"
		npins=$((npins + 1))
	done <"$pins"
	for need in x64/WinDivert.dll x64/WinDivert64.sys LICENSE; do
		grep -Eq "^[0-9a-f]{64}  $need\$" "$pins" || die "$pins pins no hash for $need: the release engineer must fill it in (docs/windows-msi.md)"
	done
	cp "$windivert/x64/WinDivert.dll" "$windivert/x64/WinDivert64.sys" "$work/windivert/"
	cp "$windivert/LICENSE" "$work/windivert/WinDivert-LICENSE.txt"
	echo "msi-build: WinDivert: $npins files match $pins"
elif [ $placeholder -eq 1 ]; then
	for f in WinDivert.dll WinDivert64.sys WinDivert-LICENSE.txt; do
		printf 'PLACEHOLDER — NOT WINDIVERT\r\nThis file stands in for %s in a tcpinc TEST package.\r\nTest packages cannot capture traffic; build the release package with make msi WINDIVERT_DIR=...\r\n' "$f" >"$work/windivert/$f"
	done
	echo "msi-build: WinDivert: PLACEHOLDER files (test package)"
fi

# --- our executables ---------------------------------------------------------
ldflags="-s -w -X tcpinc.dev/tcpinc/service/version.Version=$version"
build() { # build PKG EXE [extra ldflags]
	GOOS=windows GOARCH=$goarch CGO_ENABLED=0 "$GO" build -trimpath -ldflags "$ldflags ${3-}" -o "$work/bin/$2" "$1" ||
		die "building $2 for windows/$goarch failed"
}
build ./cmd/tcpincd tcpincd.exe
build ./cmd/tcpinc tcpinc.exe
tray=no
icon=no
if GOOS=windows GOARCH=$goarch "$GO" list ./cmd/tcpinc-tray >/dev/null 2>&1; then
	# A GUI program: no console window at logon.
	build ./cmd/tcpinc-tray tcpinc-tray.exe "-H windowsgui"
	tray=yes
	# The tray's "on" icon stands for tcpinc in Programs and Features.
	if [ -f cmd/tcpinc-tray/icons/ico/on.ico ]; then
		cp cmd/tcpinc-tray/icons/ico/on.ico "$work/data/tcpinc.ico"
		icon=yes
	fi
elif [ $test -eq 1 ]; then
	echo "msi-build: WARNING: cmd/tcpinc-tray does not exist (yet): this test package has no tray icon" >&2
else
	die "cmd/tcpinc-tray does not build or does not exist yet: a release package needs the tray icon"
fi

# Authenticode signatures for our executables, before they go into the cab.
sign() { # sign IN (in place)
	local args=(sign -h sha256 -n "tcpinc" -certs "$SIGN_CERT" -key "$SIGN_KEY")
	# The key's password goes through a private file, not the command line.
	if [ -n "${SIGN_PASS-}" ]; then
		(umask 077 && printf '%s' "$SIGN_PASS" >"$work/sign.pass")
		args+=(-readpass "$work/sign.pass")
	fi
	[ -z "${SIGN_TIMESTAMP_URL-}" ] || args+=(-ts "$SIGN_TIMESTAMP_URL")
	osslsigncode "${args[@]}" -in "$1" -out "$1.signed" >/dev/null || die "osslsigncode could not sign $1"
	mv "$1.signed" "$1"
}
signing=0
if [ -n "${SIGN_CERT-}" ] || [ -n "${SIGN_KEY-}" ]; then
	if [ ! -f "${SIGN_CERT-}" ] || [ ! -f "${SIGN_KEY-}" ]; then
		die "set both SIGN_CERT and SIGN_KEY to existing files to sign, or neither"
	fi
	command -v osslsigncode >/dev/null || die "osslsigncode is missing (Debian: osslsigncode)"
	signing=1
	for f in "$work"/bin/*.exe; do sign "$f"; done
	echo "msi-build: signed $(ls "$work/bin" | tr '\n' ' ')"
fi

# --- default configuration ---------------------------------------------------
# The Windows tcpincd.exe is the authority on its own defaults: ask it
# under wine when wine is here, else ask the host's build (same code,
# other OS) and say so.
config=$work/data/tcpincd.default.toml
got_config=0
if command -v wine >/dev/null && command -v x86_64-w64-mingw32-gcc >/dev/null; then
	cfgexe=$work/bin/tcpincd.exe
	if [ "$goarch" != amd64 ]; then
		# Same code, same OS: the amd64 build answers for arm64 too.
		cfgexe=$work/tcpincd-amd64.exe
		GOOS=windows GOARCH=amd64 CGO_ENABLED=0 "$GO" build -o "$cfgexe" ./cmd/tcpincd ||
			die "building tcpincd.exe for windows/amd64 (to print the default config) failed"
	fi
	# shellcheck source=scripts/wine/prefix.sh
	. scripts/wine/prefix.sh
	if [ -n "${MSI_WINEPREFIX-}" ]; then
		wine_prefix_use "$MSI_WINEPREFIX"
	else
		wine_prefix_init "$work/wine"
	fi
	if timeout 60 "$WINE" "$cfgexe" --print-default-config >"$config.crlf" 2>"$work/config.err"; then
		tr -d '\r' <"$config.crlf" >"$config"
		got_config=1
		echo "msi-build: default config from tcpincd.exe --print-default-config (windows/amd64 under wine)"
	fi
	[ -n "${MSI_WINEPREFIX-}" ] || wine_prefix_done
fi
if [ $got_config -eq 0 ]; then
	"$GO" build -o "$work/tcpincd-host" ./cmd/tcpincd || die "building the host's tcpincd failed"
	if "$work/tcpincd-host" --print-default-config >"$config" 2>"$work/config.err"; then
		got_config=1
		echo "msi-build: default config from the host's tcpincd --print-default-config (Windows-only defaults may differ)" >&2
	fi
fi
if [ $got_config -eq 0 ] || [ ! -s "$config" ]; then
	echo "msi-build: WARNING: tcpincd has no --print-default-config yet ($(head -c 200 "$work/config.err" | tr '\n' ' ')); shipping a comment-only config (every setting at its default)" >&2
	cat >"$config" <<-'EOF'
		# tcpincd configuration (TOML): copy this file to tcpincd.toml in
		# this directory and edit the copy. This tcpincd build could not
		# print its default settings; see docs/windows-msi.md.
	EOF
fi
# Windows line endings, so that Notepad shows the file properly.
sed -i 's/\r$//; s/$/\r/' "$config"

# --- notices -----------------------------------------------------------------
# Every module linked into the Windows programs, with its licence text,
# and the Go toolchain's: their licences require the notice to travel
# with the binaries.
notices=$work/data/NOTICES.txt
{
	printf 'tcpinc %s for Windows (%s): third-party notices\n\n' "$version" "$arch"
	printf 'The tcpinc programs include the following software.\n\n'
	if [ -n "$windivert" ] || [ $placeholder -eq 1 ]; then
		printf '== WinDivert 2.2 (https://reqrypt.org/windivert.html)\n'
		printf 'WinDivert.dll and WinDivert64.sys are distributed unmodified, under the\n'
		printf 'GNU Lesser General Public License version 3 (or, at your choice, the GNU\n'
		printf 'General Public License version 2): see WinDivert-LICENSE.txt next to this\n'
		printf 'file. Their source code is published by the WinDivert project; you may\n'
		printf 'replace WinDivert.dll with your own build of the same version.\n\n'
	fi
	printf '== The Go programming language (%s)\n\n' "$("$GO" env GOVERSION)"
	cat "$("$GO" env GOROOT)/LICENSE"
	pkgs=(./cmd/tcpincd ./cmd/tcpinc)
	[ $tray = no ] || pkgs+=(./cmd/tcpinc-tray)
	GOOS=windows GOARCH=$goarch "$GO" list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}} {{.Dir}}{{end}}{{end}}' "${pkgs[@]}" |
		sort -u | while read -r mpath mver mdir; do
		lic=
		for f in "$mdir"/LICENSE* "$mdir"/LICENCE* "$mdir"/COPYING*; do
			[ -f "$f" ] && { lic=$f; break; }
		done
		[ -n "$lic" ] || die "module $mpath $mver has no LICENSE file in $mdir: find its licence before shipping it"
		printf '\n== %s %s\n\n' "$mpath" "$mver"
		cat "$lic"
	done
} >"$notices"
sed -i 's/\r$//; s/$/\r/' "$notices"

# --- wixl --------------------------------------------------------------------
if [ $test -eq 1 ]; then
	upgrade_code=$UPGRADE_CODE_TEST
	name="tcpinc (TEST BUILD)"
	[ $placeholder -eq 0 ] || name="tcpinc (TEST BUILD, placeholder WinDivert)"
else
	upgrade_code=$UPGRADE_CODE_RELEASE
	name=tcpinc
fi
msi=$work/tcpinc.msi
# wixl names the 64-bit x86 architecture x64 and knows no arm64: both are
# built as x64 and the arm64 package's platform is set below.
# wixl takes only relative Source paths: build from inside $work.
(cd "$work" && wixl -a x64 -o "$msi" \
	-D Version="$version" -D Arch="$arch" -D Tray=$tray -D Icon=$icon \
	-D BinDir=bin -D DataDir=data -D WinDivertDir=windivert \
	-D UpgradeCode="$upgrade_code" -D ProductName="$name" -D ServiceArgs="$SERVICE_ARGS" \
	"$root/installer/windows/tcpinc.wxs") 2>"$work/wixl.err" || {
	cat "$work/wixl.err" >&2
	die "wixl failed on installer/windows/tcpinc.wxs"
}
# wixl warns through GLib about attributes it ignores: those would be
# silent holes in the package, so they are errors here.
if grep -q WARNING "$work/wixl.err"; then
	cat "$work/wixl.err" >&2
	die "wixl ignored part of installer/windows/tcpinc.wxs"
fi

# --- what wixl cannot express ------------------------------------------------
q() { msibuild "$msi" -q "$1" || die "msibuild: $1"; }

# wixl drops ServiceInstall's Vital: a service that cannot be installed
# must fail the install (msidbServiceInstallErrorControlVital, 0x8000,
# with SERVICE_ERROR_NORMAL, 1).
q "UPDATE \`ServiceInstall\` SET \`ErrorControl\` = 32769 WHERE \`ServiceInstall\` = 'tcpincd'"

# wixl writes Type="expandable" values as plain strings; "#%" makes the
# message file path a REG_EXPAND_SZ, as the event log expects.
q "UPDATE \`Registry\` SET \`Value\` = '#%%SystemRoot%\\System32\\EventCreate.exe' WHERE \`Name\` = 'EventMessageFile'"

if [ $nostart -eq 1 ]; then
	# 163 = start on install, stop on install and uninstall, delete on
	# uninstall; 162 drops the start.
	q "UPDATE \`ServiceControl\` SET \`Event\` = 162 WHERE \`ServiceControl\` = 'tcpincd'"
	echo "msi-build: WARNING: test package that does not start the service at install (--no-service-start)" >&2
fi

# PATH: append INSTALLDIR to the system PATH while the CLI is installed
# (=: set, -: remove on uninstall, *: system variable; [~]; appends).
q "CREATE TABLE \`Environment\` (\`Environment\` CHAR(72) NOT NULL, \`Name\` CHAR(255) NOT NULL LOCALIZABLE, \`Value\` CHAR(255) LOCALIZABLE, \`Component_\` CHAR(72) NOT NULL PRIMARY KEY \`Environment\`)"
q "INSERT INTO \`Environment\` (\`Environment\`, \`Name\`, \`Value\`, \`Component_\`) VALUES ('PATH', '=-*PATH', '[~];[INSTALLDIR]', 'CLI')"
q "INSERT INTO \`InstallExecuteSequence\` (\`Action\`, \`Sequence\`) VALUES ('RemoveEnvironmentStrings', 3300)"
q "INSERT INTO \`InstallExecuteSequence\` (\`Action\`, \`Sequence\`) VALUES ('WriteEnvironmentStrings', 5200)"

# The service restarts 5 s after each failure; the failure count resets
# after an hour: the recovery actions 'tcpincd install' sets too
# (cmd/tcpincd/lifecycle_windows.go). Applied by MsiConfigureServices
# (Windows Installer 5; wine 8 skips it).
q "CREATE TABLE \`MsiServiceConfigFailureActions\` (\`MsiServiceConfigFailureActions\` CHAR(72) NOT NULL, \`Name\` CHAR(255) NOT NULL, \`Event\` SHORT NOT NULL, \`ResetPeriod\` LONG, \`RebootMessage\` CHAR(255) LOCALIZABLE, \`Command\` CHAR(255) LOCALIZABLE, \`Actions\` CHAR(255), \`DelayActions\` CHAR(255), \`Component_\` CHAR(72) NOT NULL PRIMARY KEY \`MsiServiceConfigFailureActions\`)"
q "INSERT INTO \`MsiServiceConfigFailureActions\` (\`MsiServiceConfigFailureActions\`, \`Name\`, \`Event\`, \`ResetPeriod\`, \`Actions\`, \`DelayActions\`, \`Component_\`) VALUES ('tcpincd', 'tcpincd', 1, 3600, '1[~]1[~]1', '5000[~]5000[~]5000', 'Service')"
q "INSERT INTO \`InstallExecuteSequence\` (\`Action\`, \`Condition\`, \`Sequence\`) VALUES ('MsiConfigureServices', 'VersionNT >= 600', 5850)"

# %ProgramData%\tcpinc: protected ACL, inherited by what is created in it
# (SYSTEM and Administrators full control, Users read and traverse), so
# that no user can plant a config file there.
q "CREATE TABLE \`MsiLockPermissionsEx\` (\`MsiLockPermissionsEx\` CHAR(72) NOT NULL, \`LockObject\` CHAR(72) NOT NULL, \`Table\` CHAR(32) NOT NULL, \`SDDLText\` CHAR(255) NOT NULL, \`Condition\` CHAR(255) PRIMARY KEY \`MsiLockPermissionsEx\`)"
q "INSERT INTO \`MsiLockPermissionsEx\` (\`MsiLockPermissionsEx\`, \`LockObject\`, \`Table\`, \`SDDLText\`) VALUES ('DATADIR', 'DATADIR', 'CreateFolder', 'D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)')"

# (No control socket file to remove: on Windows tcpincd listens on the
# named pipe \\.\pipe\tcpinc, which goes with the process.)

if [ "$arch" = arm64 ]; then
	msibuild "$msi" -s "$name $version ($arch)" tcpinc "Arm64;1033" || die "msibuild could not set the arm64 platform"
fi

if [ $signing -eq 1 ]; then
	sign "$msi"
	echo "msi-build: signed the MSI"
fi

mkdir -p "$(dirname "$out")"
mv "$msi" "$out"
echo "msi-build: $out ($name $version, $arch, $(du -k "$out" | cut -f1) KiB)"

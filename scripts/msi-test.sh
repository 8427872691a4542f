#!/usr/bin/env bash
# Tests the Windows Installer package without Windows (make msi-check):
#
#  1. builds test MSIs (placeholder WinDivert files) for x64, versions
#     0.0.1 and 0.0.2, and for arm64;
#  2. checks what the build refuses: an x64 release without WinDivert, and
#     WinDivert files that do not match installer/windows/windivert.sha256;
#     builds a release-like package against a throwaway pin file and a
#     throwaway certificate to check signing and the release UpgradeCode;
#  3. checks the packages' tables with msiinfo;
#  4. under wine (when installed), in a throwaway prefix: installs 0.0.1,
#     checks files, service, event log source, tray autostart and PATH,
#     starts the service, upgrades to 0.0.2 (one copy left, the admin's
#     tcpincd.toml kept), uninstalls and checks that nothing but the
#     admin's tcpincd.toml is left; then installs 0.0.2 afresh, checks
#     that 0.0.1 refuses to downgrade it, uninstalls and checks that
#     nothing at all is left.
#
# Every wine command runs under a timeout; the prefix is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
export GO

work=$(mktemp -d)
cleanup() {
	[ -z "${WINEPREFIX-}" ] || wineserver -k 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

failures=0 passed=0
ok() { echo "msi-test: ok   $*"; passed=$((passed + 1)); }
bad() { echo "msi-test: FAIL $*"; failures=$((failures + 1)); }
check() { # check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi
}
fatal() { echo "msi-test: FAIL $*"; exit 1; }

have_wine=0
if command -v wine >/dev/null && command -v x86_64-w64-mingw32-gcc >/dev/null; then
	have_wine=1
	# shellcheck source=scripts/wine/prefix.sh
	. scripts/wine/prefix.sh
	echo "msi-test: preparing a wine prefix in $work/prefix"
	wine_prefix_init "$work/prefix"
	# Windows Installer on Windows 10 reports VersionNT 603, which the
	# package's launch condition requires; wine's default reports 601.
	timeout 60 "$WINE" winecfg /v win10 >/dev/null 2>&1 || fatal "winecfg /v win10 failed"
	export MSI_WINEPREFIX=$WINEPREFIX
else
	echo "msi-test: wine or mingw-w64 missing: building and checking the packages only, no install test"
fi

# Does the Windows tcpincd.exe answer the service control manager? It
# does once it links golang.org/x/sys/windows/svc (kardianos/service on
# Windows). Until then Windows Installer could not start it at install
# (it would roll the install back), so the test package leaves the start
# out and the service start is reported as not tested.
# MSI_TEST_NO_SERVICE_START=1 forces that (loudly) for a tcpincd.exe that
# has a service mode but cannot stay up under wine yet.
# svcmode: none (no service mode), yes (tested), off (forced off),
# failed (the service did not start at install: reported, then the rest
# is checked with packages that leave the start out).
# (Outputs are captured before grep -q reads them: with pipefail, grep -q
# quitting early would fail the pipeline.)
svcmode=none
if grep -qx 'golang.org/x/sys/windows/svc' <<<"$(GOOS=windows GOARCH=amd64 "$GO" list -deps ./cmd/tcpincd 2>/dev/null || true)"; then
	svcmode=yes
fi
startflag=()
if [ "$svcmode" = none ]; then
	echo "msi-test: NOTE: tcpincd.exe does not link golang.org/x/sys/windows/svc (no Windows service mode yet):"
	echo "msi-test: NOTE: the test packages do not start the service at install, and 'sc start' is checked to fail"
	startflag=(--no-service-start)
elif [ "${MSI_TEST_NO_SERVICE_START-}" = 1 ]; then
	echo "msi-test: WARNING: MSI_TEST_NO_SERVICE_START=1: the service start at install and 'sc start' are NOT TESTED"
	svcmode=off
	startflag=(--no-service-start)
fi

# --- 1. test packages --------------------------------------------------------
v1=$work/tcpinc-0.0.1-x64-test.msi
v2=$work/tcpinc-0.0.2-x64-test.msi
a1=$work/tcpinc-0.0.1-arm64-test.msi
build_x64() { # build_x64 [--no-service-start]: the two x64 test packages
	scripts/msi-build.sh --test --placeholder-windivert "$@" --arch x64 --version 0.0.1 --out "$v1" || fatal "building the 0.0.1 x64 test package"
	scripts/msi-build.sh --test --placeholder-windivert "$@" --arch x64 --version 0.0.2 --out "$v2" || fatal "building the 0.0.2 x64 test package"
}
build_x64 ${startflag[@]+"${startflag[@]}"}
scripts/msi-build.sh --test ${startflag[@]+"${startflag[@]}"} --arch arm64 --version 0.0.1 --out "$a1" || fatal "building the arm64 test package"

# --- 2. what the build refuses, signing, the release identity ----------------
if out=$(scripts/msi-build.sh --arch x64 --version 0.0.1 --out "$work/no.msi" 2>&1); then
	bad "an x64 release build without WinDivert is refused"
else
	check "an x64 release build without WinDivert is refused, naming WINDIVERT_DIR" grep -q WINDIVERT_DIR <<<"$out"
fi
fake=$work/fake-windivert
mkdir -p "$fake/x64"
for f in x64/WinDivert.dll x64/WinDivert64.sys LICENSE; do
	printf 'PLACEHOLDER — NOT WINDIVERT (%s)\n' "$f" >"$fake/$f"
done
if out=$(scripts/msi-build.sh --arch x64 --version 0.0.1 --windivert "$fake" --out "$work/no.msi" 2>&1); then
	bad "WinDivert files that do not match the pinned hashes are refused"
else
	check "WinDivert files that do not match the pinned hashes are refused" grep -q 'refusing to ship' <<<"$out"
fi
[ ! -e "$work/no.msi" ] || bad "a refused build left a package behind"
(cd "$fake" && sha256sum x64/WinDivert.dll x64/WinDivert64.sys LICENSE) >"$work/pins"
# A throwaway code-signing certificate whose key is encrypted (SIGN_PASS).
openssl req -x509 -newkey rsa:2048 -passout pass:msi-test-pass -days 2 -subj "/CN=tcpinc msi-test" \
	-keyout "$work/sign.key" -out "$work/sign.crt" >/dev/null 2>&1 || fatal "openssl could not make a test certificate"
rel=$work/tcpinc-0.0.1-x64-release-like.msi
if WINDIVERT_PINS=$work/pins SIGN_CERT=$work/sign.crt SIGN_KEY=$work/sign.key SIGN_PASS=msi-test-pass \
	scripts/msi-build.sh --arch x64 --version 0.0.1 --windivert "$fake" --out "$rel" >"$work/rel.log" 2>&1; then
	ok "a release build with pinned WinDivert files and a certificate succeeds"
	check "the release package carries the product's UpgradeCode" \
		grep -q '^{16DF7BB5-1C16-43CE-B3CB-4AD8C41F17F2}' <(msiinfo export "$rel" Upgrade)
	check "the release package is named tcpinc" grep -qx $'ProductName\ttcpinc' <(msiinfo export "$rel" Property | tr -d '\r')
	check "the MSI is signed (DigitalSignature stream)" grep -q DigitalSignature <(msiinfo streams "$rel")
	check "the MSI's signature verifies against the test certificate" \
		osslsigncode verify -CAfile "$work/sign.crt" -in "$rel"
	mkdir -p "$work/rel"
	(cd "$work/rel" && msiextract "$rel" >/dev/null) || bad "msiextract on the release package"
	exe=$(find "$work/rel" -name tcpincd.exe | head -1)
	check "tcpincd.exe inside is signed" osslsigncode verify -CAfile "$work/sign.crt" -in "$exe"
	dll=$(find "$work/rel" -name WinDivert.dll | head -1)
	check "WinDivert.dll is shipped byte for byte, not re-signed" cmp "$dll" "$fake/x64/WinDivert.dll"
	sys=$(find "$work/rel" -name WinDivert64.sys | head -1)
	check "WinDivert64.sys is shipped byte for byte, not re-signed" cmp "$sys" "$fake/x64/WinDivert64.sys"
else
	cat "$work/rel.log"
	bad "a release build with pinned WinDivert files and a certificate succeeds"
fi

# --- 3. tables ---------------------------------------------------------------
tables=$(msiinfo tables "$v1")
for t in File Component ServiceInstall ServiceControl Registry Upgrade Environment \
	MsiServiceConfigFailureActions MsiLockPermissionsEx CreateFolder RemoveFile; do
	check "table $t present" grep -qx "$t" <<<"$tables"
done
row() { # row MSI TABLE: the table's rows, tab-separated, without the 3 header lines
	msiinfo export "$1" "$2" | tail -n +4 | tr -d '\r'
}
files=$(row "$v1" File | cut -f3)
expect_files=(tcpincd.exe tcpinc.exe WinDivert.dll WinDivert64.sys WinDivert-LICENSE.txt NOTICES.txt tcpincd.default.toml)
tray=0
if grep -qx tcpinc-tray.exe <<<"$files"; then
	tray=1
	expect_files+=(tcpinc-tray.exe)
else
	echo "msi-test: NOTE: no tcpinc-tray.exe in the test package (cmd/tcpinc-tray missing)"
fi
for f in "${expect_files[@]}"; do check "File table has $f" grep -qx "$f" <<<"$files"; done
check "ServiceInstall: tcpincd, own process, auto start, vital, LocalSystem, 'run --service'" \
	grep -q $'^tcpincd\ttcpincd\t[^\t]*\t16\t2\t32769\t\t\tLocalSystem\t\trun --service\tService\t' <(row "$v1" ServiceInstall)
ev=163
[ "$svcmode" = yes ] || ev=162
check "ServiceControl: event $ev (start at install, stop at install/uninstall, delete at uninstall)" \
	grep -q $'^tcpincd\ttcpincd\t'$ev$'\t\t1\tService$' <(row "$v1" ServiceControl)
reg=$(row "$v1" Registry)
check "Registry: event log source with an expandable message file" \
	grep -qF $'2\tSYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\tcpincd\tEventMessageFile\t#%%SystemRoot%\\System32\\EventCreate.exe' <<<"$reg"
if [ $tray -eq 1 ]; then
	check "Programs and Features icon (ARPPRODUCTICON)" grep -q $'^ARPPRODUCTICON\ttcpinc.ico$' <(row "$v1" Property)
	check "Registry: tray autostart for every user (HKLM Run)" \
		grep -qF $'2\tSOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run\ttcpinc-tray\t"[INSTALLDIR]tcpinc-tray.exe"' <<<"$reg"
fi
check "Environment: INSTALLDIR appended to the system PATH, removed at uninstall" \
	grep -qF $'PATH\t=-*PATH\t[~];[INSTALLDIR]\tCLI' <(row "$v1" Environment)
check "Upgrade: the test UpgradeCode, older versions replaced" \
	grep -q $'^{0FE6099D-4428-42DE-AED1-52EB3DB4B7BD}\t\t0.0.1\t\t1\t\tWIX_UPGRADE_DETECTED' <(row "$v1" Upgrade)
check "Upgrade: newer versions detected (downgrade refused)" \
	grep -q $'^{0FE6099D-4428-42DE-AED1-52EB3DB4B7BD}\t0.0.1\t\t\t2\t\tWIX_DOWNGRADE_DETECTED' <(row "$v1" Upgrade)
seq=$(row "$v1" InstallExecuteSequence)
check "RemoveExistingProducts right after InstallValidate" grep -q $'^RemoveExistingProducts\t\t1401$' <<<"$seq"
for a in MsiConfigureServices WriteEnvironmentStrings RemoveEnvironmentStrings InstallServices StartServices StopServices DeleteServices CreateFolders; do
	check "InstallExecuteSequence has $a" grep -q "^$a"$'\t' <<<"$seq"
done
check "failure actions: restart after 5 s, count reset after an hour" \
	grep -qF $'tcpincd\ttcpincd\t1\t3600\t\t\t1[~]1[~]1\t5000[~]5000[~]5000\tService' <(row "$v1" MsiServiceConfigFailureActions)
check "%ProgramData%\\tcpinc locked: SYSTEM, Administrators full, Users read" \
	grep -qF 'D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)' <(row "$v1" MsiLockPermissionsEx)
check "the package does not own tcpincd.toml (the admin's file)" \
	bash -c '! grep -q "tcpincd\.toml" <<<"$1"' _ "$(row "$v1" File | cut -f3; row "$v1" RemoveFile | cut -f3)"
check "x64 package platform" grep -qx 'Template: x64;1033' <(msiinfo suminfo "$v1")
check "arm64 package platform" grep -qx 'Template: Arm64;1033' <(msiinfo suminfo "$a1")
check "arm64 package description" grep -qx 'Subject: tcpinc (TEST BUILD) 0.0.1 (arm64)' <(msiinfo suminfo "$a1")
if grep -qi windivert <<<"$(row "$a1" File | cut -f3)"; then bad "arm64 package ships no WinDivert file"; else ok "arm64 package ships no WinDivert file"; fi
check "the 0.0.2 package is version 0.0.2" grep -q $'^ProductVersion\t0.0.2$' <(row "$v2" Property)
mkdir -p "$work/x1"
(cd "$work/x1" && msiextract "$v1" >/dev/null) || bad "msiextract on the test package"
for f in WinDivert.dll WinDivert64.sys; do
	p=$(find "$work/x1" -name "$f" | head -1)
	check "test package's $f says PLACEHOLDER — NOT WINDIVERT" grep -q 'PLACEHOLDER — NOT WINDIVERT' "$p"
done

# --- 4. install, upgrade, uninstall under wine -------------------------------
if [ $have_wine -eq 1 ]; then
	c=$WINEPREFIX/drive_c
	inst=$c/Program\ Files/tcpinc
	data=$c/ProgramData/tcpinc
	w() { timeout 60 "$WINE" "$@" 2>/dev/null | tr -d '\r'; }
	winpath() { printf 'Z:%s' "${1//\//\\}"; } # the host's / is wine's Z:\
	msiexec() { # msiexec ARGS...: exit status of wine msiexec, log in $work/msiexec.log
		timeout 120 "$WINE" msiexec "$@" /qn '/l*v' "$(winpath "$work/msiexec.log")" >/dev/null 2>&1
	}
	state() { w sc query tcpincd | sed -n 's/^ *STATE *: *[0-9]* *//p'; }
	wait_state() { # wait_state STATE SECONDS
		local i
		for ((i = 0; i < $2 * 2; i++)); do
			[ "$(state)" = "$1" ] && return 0
			sleep 0.5
		done
		return 1
	}
	products() { # how many copies Windows Installer knows
		w reg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Installer\UserData\S-1-5-18\Products' /s |
			grep -c 'DisplayName.*tcpinc (TEST BUILD' || true
	}
	svcreg() { w reg query 'HKLM\SYSTEM\CurrentControlSet\Services\tcpincd'; }
	# Wine 8's StopServices sends the stop but does not wait for the
	# process to exit, so RemoveFiles finds tcpincd.exe in use (exit 3010,
	# files left for a reboot). Windows Installer waits (Wait=yes). Under
	# wine the test stops a running service itself before msiexec
	# replaces or removes its files.
	stop_first() {
		[ "$svcmode" = yes ] || return 0
		w sc stop tcpincd >/dev/null || true
		wait_state STOPPED 20 || bad "service stops before msiexec (state: $(state))"
		sleep 1 # the process exits just after it reports STOPPED
	}
	show_log() { tr -d '\r' <"$work/msiexec.log" | grep -a -E 'Return value [03]|err|fail|halt|in use|reboot' | tail -n 20; }

	if msiexec /i "$(winpath "$v1")"; then ok "wine msiexec /i 0.0.1 /qn"; else
		show_log
		if [ "$svcmode" = yes ] && grep -q 'StartServices. Return value 0' "$work/msiexec.log"; then
			echo "msi-test: the service did not start, so Windows Installer rolled the install back. Where the"
			echo "msi-test: WinDivert driver cannot load (here under wine; on arm64; driver missing or blocked),"
			echo "msi-test: tcpincd must still report RUNNING to the SCM and stay up, saying 'capture unavailable:"
			echo "msi-test: <reason>' in 'tcpinc status' and its log: 'tcpincd run --service' does that"
			echo "msi-test: (cmd/tcpincd/service_windows.go, service/daemon StayUp; the control API on the named"
			echo "msi-test: pipe \\\\.\\pipe\\tcpinc). See docs/windows-msi.md, 'The service without capture'."
			echo "msi-test: 'tcpincd run' in a wine console says:"
			exe=$(find "$work/x1" -name tcpincd.exe | head -1)
			(cd "$work" && timeout 10 "$WINE" "$exe" run 2>&1 | tr -d '\r' | head -n 10 | sed 's/^/msi-test:   /') || true
			bad "the service starts at install (wine msiexec /i 0.0.1 /qn)"
			# The rest of the package can still be checked: rebuild
			# without the start at install and go on (still a failure).
			echo "msi-test: going on with test packages that do not start the service at install"
			svcmode=failed
			build_x64 --no-service-start
			msiexec /i "$(winpath "$v1")" || fatal "wine msiexec /i 0.0.1 /qn failed even without the service start"
		else
			fatal "wine msiexec /i 0.0.1 /qn failed"
		fi
	fi
	for f in "${expect_files[@]}"; do
		d=$inst
		[ "$f" != tcpincd.default.toml ] || d=$data
		check "installed $f" test -s "$d/$f"
	done
	check "service tcpincd registered (sc query)" grep -q 'SERVICE_NAME: tcpincd' <(w sc query tcpincd)
	check "service runs 'tcpincd.exe run --service' at automatic start" \
		bash -c 'grep -q "ImagePath.*tcpinc.tcpincd\.exe run --service" <<<"$1" && grep -q "Start.*REG_DWORD.*0x2" <<<"$1"' _ "$(svcreg)"
	check "event log source registered, message file REG_EXPAND_SZ" \
		grep -q 'EventMessageFile.*REG_EXPAND_SZ.*EventCreate.exe' <(w reg query 'HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\tcpincd')
	if [ $tray -eq 1 ]; then
		check "tray starts at every logon (HKLM Run)" \
			grep -q 'tcpinc-tray.*REG_SZ.*tcpinc-tray.exe' <(w reg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Run')
	fi
	envkey='HKLM\System\CurrentControlSet\Control\Session Manager\Environment'
	check "system PATH holds C:\\Program Files\\tcpinc" \
		grep -qF 'C:\Program Files\tcpinc' <(w reg query "$envkey" /v PATH)
	check "tcpinc.exe runs from the install directory" grep -q '^tcpinc 0\.0\.1' <(w "$inst/tcpinc.exe" version)

	if [ "$svcmode" = yes ]; then
		# Under wine the WinDivert driver cannot load (and the test
		# package's driver is a placeholder): the service must stay up
		# and say why capture is unavailable.
		if wait_state RUNNING 20; then ok "service RUNNING after install"; else bad "service RUNNING after install (state: $(state))"; fi
		st=$(w "$inst/tcpinc.exe" status || true)
		if grep -qi 'capture unavailable' <<<"$st"; then ok "tcpinc status reports 'capture unavailable'"; else
			echo "$st" | head -20
			bad "tcpinc status reports 'capture unavailable'"
		fi
		grep '^state:' <<<"$st" | sed 's/^/msi-test:   /' || true
		check "tcpinc status --json carries capture_error" grep -q '"capture_error": *"[^"]' <(w "$inst/tcpinc.exe" status --json || true)
		check "tcpinc conns says capture is unavailable" grep -qi 'capture unavailable' <(timeout 60 "$WINE" "$inst/tcpinc.exe" conns 2>&1 | tr -d '\r' || true)
		# An administrator (every wine process is one) may reload over
		# the pipe; the reload retries capture, which fails again, and
		# the service stays up.
		check "tcpinc reload over the control pipe (administrator)" w "$inst/tcpinc.exe" reload
		sleep 1
		if [ "$(state)" = RUNNING ]; then ok "service still RUNNING after a reload that retried capture"; else
			bad "service still RUNNING after a reload that retried capture (state: $(state))"
		fi
		check "tcpinc status still reports 'capture unavailable' after the reload" grep -qi 'capture unavailable' <(w "$inst/tcpinc.exe" status || true)
		# A second tcpincd (here in a console) does not take over the
		# running service's control pipe.
		check "a second tcpincd refuses the pipe the service holds" \
			grep -q 'in use by another process' <(timeout 30 "$WINE" "$inst/tcpincd.exe" run 2>&1 | tr -d '\r' || true)
		w sc stop tcpincd >/dev/null || true
		if wait_state STOPPED 20; then ok "wine sc stop tcpincd"; else bad "wine sc stop tcpincd (state: $(state))"; fi
		w sc start tcpincd >/dev/null || true
		if wait_state RUNNING 20; then ok "wine sc start tcpincd"; else bad "wine sc start tcpincd (state: $(state))"; fi
	elif [ "$svcmode" = none ]; then
		if w sc start tcpincd >/dev/null && wait_state RUNNING 5; then
			bad "tcpincd.exe runs as a service without linking x/sys/windows/svc? (detection in $0 is wrong)"
		else
			ok "wine sc start tcpincd fails, as expected without a Windows service mode (service start NOT tested)"
		fi
	fi

	# Upgrade: one copy left, the admin's own tcpincd.toml kept.
	printf '# written by msi-test as the admin\r\n' >"$data/tcpincd.toml"
	stop_first
	if msiexec /i "$(winpath "$v2")"; then ok "wine msiexec /i 0.0.2 /qn (major upgrade)"; else
		show_log
		bad "wine msiexec /i 0.0.2 /qn (major upgrade)"
	fi
	check "upgrade replaced the programs (tcpincd version 0.0.2)" grep -q '^tcpincd 0\.0\.2' <(w "$inst/tcpincd.exe" version)
	n=$(products)
	if [ "$n" = 1 ]; then ok "one copy registered after the upgrade"; else bad "one copy registered after the upgrade (found $n)"; fi
	check "upgrade kept the admin's tcpincd.toml" grep -q 'written by msi-test' "$data/tcpincd.toml"
	check "upgrade put the new tcpincd.default.toml in place" test -s "$data/tcpincd.default.toml"
	check "service still registered after the upgrade" grep -q 'SERVICE_NAME: tcpincd' <(w sc query tcpincd)
	if [ "$svcmode" = yes ]; then
		if wait_state RUNNING 20; then ok "service RUNNING after the upgrade"; else bad "service RUNNING after the upgrade (state: $(state))"; fi
	fi

	gone() { # gone WHAT: checks that the package left nothing behind
		# Controls first: an absence means something only if wine's sc
		# and reg answer for what does exist.
		check "$1: control: sc query finds RpcSs" grep -q 'SERVICE_NAME: RpcSs' <<<"$(w sc query RpcSs || true)"
		check "$1: control: reg query finds the Windows version" grep -q 'CurrentVersion.*REG_SZ' <<<"$(w reg query 'HKLM\Software\Microsoft\Windows NT\CurrentVersion' /v CurrentVersion || true)"
		if [ -e "$inst" ]; then bad "$1: install directory removed (left: $(ls -A "$inst" | tr '\n' ' '))"; else ok "$1: install directory removed"; fi
		if grep -q SERVICE_NAME <<<"$(w sc query tcpincd || true)"; then bad "$1: service deleted"; else ok "$1: service deleted"; fi
		if grep -q ImagePath <<<"$(svcreg || true)"; then bad "$1: service key removed"; else ok "$1: service key removed"; fi
		if grep -q EventMessageFile <<<"$(w reg query 'HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\tcpincd' || true)"; then
			bad "$1: event log source removed"
		else ok "$1: event log source removed"; fi
		if grep -q tcpinc-tray <<<"$(w reg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Run' || true)"; then
			bad "$1: tray autostart removed"
		else ok "$1: tray autostart removed"; fi
		if grep -qF 'Program Files\tcpinc' <<<"$(w reg query "$envkey" /v PATH || true)"; then bad "$1: PATH entry removed"; else ok "$1: PATH entry removed"; fi
		n=$(products)
		if [ "$n" = 0 ]; then ok "$1: no copy registered"; else bad "$1: no copy registered (found $n)"; fi
	}

	# Uninstall: only the admin's own file is left.
	stop_first
	if msiexec /x "$(winpath "$v2")"; then ok "wine msiexec /x /qn"; else
		show_log
		bad "wine msiexec /x /qn"
	fi
	gone "uninstall after upgrade"
	left=$(cd "$data" 2>/dev/null && ls -A | tr '\n' ' ')
	if [ "$left" = "tcpincd.toml " ]; then ok "uninstall left only the admin's tcpincd.toml in %ProgramData%\\tcpinc"; else
		bad "uninstall left only the admin's tcpincd.toml in %ProgramData%\\tcpinc (found: ${left:-nothing})"
	fi
	rm -rf "$data"

	# A fresh 0.0.2: 0.0.1 must not downgrade it; uninstall leaves nothing.
	if msiexec /i "$(winpath "$v2")"; then ok "wine msiexec /i 0.0.2 /qn (fresh)"; else
		show_log
		bad "wine msiexec /i 0.0.2 /qn (fresh)"
	fi
	if msiexec /i "$(winpath "$v1")"; then bad "downgrade to 0.0.1 refused"; else ok "downgrade to 0.0.1 refused"; fi
	check "downgrade attempt left 0.0.2 in place" grep -q '^tcpincd 0\.0\.2' <(w "$inst/tcpincd.exe" version)
	n=$(products)
	if [ "$n" = 1 ]; then ok "one copy registered after the refused downgrade"; else bad "one copy registered after the refused downgrade (found $n)"; fi
	stop_first
	if msiexec /x "$(winpath "$v2")"; then ok "wine msiexec /x /qn (fresh)"; else
		show_log
		bad "wine msiexec /x /qn (fresh)"
	fi
	gone "uninstall"
	check "uninstall: %ProgramData%\\tcpinc removed" test ! -e "$data"
fi

echo "msi-test: $passed passed, $failures failed"
[ $failures -eq 0 ]

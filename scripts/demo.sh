#!/usr/bin/env bash
# End-to-end demo of tcpinc's divert mode, in two throwaway network
# namespaces joined by a veth pair:
#
#   tci-a-<id> (10.231.9.1, tci-va) <--veth--> tci-b-<id> (10.231.9.2, tci-vb)
#
# tcpincd runs in both; curl in tci-a fetches files from a Python HTTP
# server in tci-b while tcpdump records the wire in tci-a. The demo checks
# that the transfer is intact, that the plaintext never appears on the wire,
# that both ends report the same tcpcrypt session ID, and that a clean stop
# removes the rules. Nothing runs in, or is added to, the host's own
# network namespace. Needs root. Exit status 0 only if every check passes.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/netns.sh
. scripts/lib/netns.sh
GO=${GO:-go}

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: needs root (it creates network namespaces); try: sudo make demo" >&2
	exit 1
fi
scripts/deps.sh ip:iproute2 nft:nftables tcpdump:tcpdump curl:curl python3:python3 sha256sum:coreutils

id=$$
A=tci-a-$id
B=tci-b-$id
IP_A=10.231.9.1
IP_B=10.231.9.2
PORT=8080
MARKER=TCPINC-DEMO-PLAINTEXT-MARKER
tmp=$(mktemp -d /tmp/tcpinc-demo.XXXXXX)
failed=0

say() { printf '\n== %s\n' "$*"; }
pass() { printf '   PASS  %s\n' "$*"; }
fail() { printf '   FAIL  %s\n' "$*"; failed=1; }

netns_cleanup_on_exit "$tmp" "$A" "$B"

# wait_for DESCRIPTION SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local what=$1 secs=$2
	shift 2
	for _ in $(seq $((secs * 10))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "demo: timed out waiting for $what" >&2
	return 1
}

say "building tcpincd and tcpinc"
CGO_ENABLED=0 "$GO" build -o "$tmp/bin/" ./cmd/tcpincd ./cmd/tcpinc
TCPINCD=$tmp/bin/tcpincd
TCPINC=$tmp/bin/tcpinc
"$TCPINCD" version

say "creating namespaces $A and $B (veth tci-va $IP_A/24 <-> tci-vb $IP_B/24)"
ip netns add "$A"
ip netns add "$B"
ip -n "$A" link add tci-va type veth peer name tci-vb netns "$B"
ip -n "$A" addr add "$IP_A/24" dev tci-va
ip -n "$B" addr add "$IP_B/24" dev tci-vb
for ns in "$A" "$B"; do
	ip -n "$ns" link set lo up
done
ip -n "$A" link set tci-va up
ip -n "$B" link set tci-vb up

say "starting tcpincd in both namespaces"
for side in a b; do
	ns=$A
	[ $side = b ] && ns=$B
	ip netns exec "$ns" "$TCPINCD" run --control "$tmp/$side.sock" 2>"$tmp/tcpincd-$side.log" &
	pids+=($!)
	eval "daemon_$side=$!"
done
for side in a b; do
	wait_for "tcpincd ($side) to start; log: $(cat "$tmp/tcpincd-$side.log" 2>/dev/null)" 10 \
		sh -c "'$TCPINC' --control '$tmp/$side.sock' status --json | grep -q '\"running\": true'"
done
ip netns exec "$A" "$TCPINC" --control "$tmp/a.sock" status | sed 's/^/   /'

say "starting an HTTP server in $B and tcpdump on tci-va in $A"
mkdir -p "$tmp/www"
{ yes "$MARKER" || true; } | head -c $((1 << 20)) >"$tmp/www/marker.txt"
head -c $((20 << 20)) /dev/urandom >"$tmp/www/bulk.bin"
ip netns exec "$B" python3 -m http.server "$PORT" --bind "$IP_B" --directory "$tmp/www" \
	>"$tmp/http.log" 2>&1 &
pids+=($!)
wait_for "the HTTP server" 10 sh -c "ip netns exec '$B' ss -Htln 'sport = :$PORT' | grep -q LISTEN"
ip netns exec "$A" tcpdump -i tci-va -s 0 -U -w "$tmp/wire.pcap" "tcp port $PORT" 2>"$tmp/tcpdump.log" &
tcpdump_pid=$!
pids+=($tcpdump_pid)
wait_for "tcpdump" 10 grep -q "listening on" "$tmp/tcpdump.log"

say "fetching marker.txt (1 MiB of \"$MARKER\") from $A, rate-limited so the connection is still open when we ask both daemons"
ip netns exec "$A" curl -sS --fail --limit-rate 256k -o "$tmp/marker.got" \
	"http://$IP_B:$PORT/marker.txt" &
curl_pid=$!
pids+=($curl_pid)
sleep 1.5
ip netns exec "$A" "$TCPINC" --control "$tmp/a.sock" conns --json >"$tmp/conns-a.json"
ip netns exec "$B" "$TCPINC" --control "$tmp/b.sock" conns --json >"$tmp/conns-b.json"
echo "   tcpinc conns in $A:"
ip netns exec "$A" "$TCPINC" --control "$tmp/a.sock" conns | sed 's/^/     /'
echo "   tcpinc conns in $B:"
ip netns exec "$B" "$TCPINC" --control "$tmp/b.sock" conns | sed 's/^/     /'
if wait "$curl_pid"; then
	pass "curl fetched marker.txt"
else
	fail "curl failed to fetch marker.txt"
fi

say "checks"
want=$(sha256sum <"$tmp/www/marker.txt" | cut -d' ' -f1)
got=$(sha256sum <"$tmp/marker.got" 2>/dev/null | cut -d' ' -f1 || true)
if [ "$want" = "$got" ]; then
	pass "transfer intact: sha256 $got"
else
	fail "sha256 mismatch: sent $want, received ${got:-nothing}"
fi

# Session IDs: find the connection to $IP_B:$PORT on both sides.
if python3 - "$tmp/conns-a.json" "$tmp/conns-b.json" "$IP_B:$PORT" >"$tmp/sid.out" 2>&1 <<'PY'; then
import json, sys
a = json.load(open(sys.argv[1]))
b = json.load(open(sys.argv[2]))
server = sys.argv[3]
ca = [c for c in a if c["remote"] == server]
if len(ca) != 1:
    sys.exit(f"expected one connection to {server} in A, got {len(ca)}: {a}")
ca = ca[0]
cb = [c for c in b if c["local"] == server and c["remote"] == ca["local"]]
if len(cb) != 1:
    sys.exit(f"no connection {server} <- {ca['local']} in B: {b}")
cb = cb[0]
for side, c in (("A", ca), ("B", cb)):
    if c["state"] not in ("encrypted", "closing") or not c["session_id"]:
        sys.exit(f"namespace {side}: connection not encrypted: {c}")
if {ca["role"], cb["role"]} != {"A", "B"}:
    sys.exit(f"roles should be A and B, got {ca['role']} and {cb['role']}")
if ca["session_id"] != cb["session_id"]:
    sys.exit(f"session IDs differ:\n  A {ca['session_id']}\n  B {cb['session_id']}")
print(f"session IDs match: {ca['session_id']}")
print(f"  ({ca['tep']}, {ca['aead']}; client role {ca['role']}, server role {cb['role']})")
PY
	pass "$(head -1 "$tmp/sid.out")"
	sed -n '2,$p' "$tmp/sid.out" | sed 's/^/         /'
else
	fail "session ID check: $(cat "$tmp/sid.out")"
fi

say "bulk transfer: 20 MiB of random bytes"
read -r secs speed < <(ip netns exec "$A" curl -sS --fail -o "$tmp/bulk.got" \
	-w '%{time_total} %{speed_download}\n' "http://$IP_B:$PORT/bulk.bin" || echo "0 0")
want=$(sha256sum <"$tmp/www/bulk.bin" | cut -d' ' -f1)
got=$(sha256sum <"$tmp/bulk.got" 2>/dev/null | cut -d' ' -f1 || true)
if [ "$want" = "$got" ]; then
	pass "$(awk -v s="$secs" -v b="$speed" 'BEGIN { printf "20 MiB in %.2f s (%.1f MiB/s), sha256 matches", s, b / 1048576 }')"
else
	fail "bulk transfer: sha256 mismatch or curl failed (sent $want, received ${got:-nothing})"
fi

# Stop tcpdump and look at the wire.
kill -INT "$tcpdump_pid" 2>/dev/null || true
wait "$tcpdump_pid" 2>/dev/null || true
packets=$(tcpdump -nr "$tmp/wire.pcap" 2>/dev/null | wc -l)
eno=$(tcpdump -nr "$tmp/wire.pcap" 'tcp[tcpflags] & tcp-syn != 0' -v 2>/dev/null | grep -c 'unknown-69' || true)
hits=$(grep -a -o "$MARKER" "$tmp/wire.pcap" | wc -l || true)
say "wire capture on tci-va"
if [ "$packets" -gt 100 ]; then
	pass "capture has $packets packets"
else
	fail "capture has only $packets packets"
fi
if [ "$hits" -eq 0 ]; then
	pass "marker \"$MARKER\" occurs 0 times in the capture (it is $(grep -c "$MARKER" "$tmp/www/marker.txt") times in the file)"
else
	fail "marker occurs $hits times in the capture: plaintext on the wire"
fi
echo "   SYNs carrying the ENO option (kind 69): $eno"

say "tcpinc status in $A"
ip netns exec "$A" "$TCPINC" --control "$tmp/a.sock" status | sed 's/^/   /'

say "clean stop: SIGTERM to both daemons"
for side in a b; do
	ns=$A
	[ $side = b ] && ns=$B
	p=$(eval echo "\$daemon_$side")
	kill -TERM "$p"
	rc=0
	wait "$p" || rc=$?
	if [ "$rc" -eq 0 ]; then
		pass "tcpincd in $ns exited 0"
	else
		fail "tcpincd in $ns exited $rc; log:"
		sed 's/^/         /' "$tmp/tcpincd-$side.log"
	fi
	if ip netns exec "$ns" nft list table inet tcpinc >/dev/null 2>&1; then
		fail "table inet tcpinc still present in $ns"
	else
		pass "table inet tcpinc removed in $ns"
	fi
	if [ -e "$tmp/$side.sock" ]; then
		fail "control socket $tmp/$side.sock left behind"
	fi
done

# Control experiment: with the daemons stopped the same fetch is plain
# TCP, and the marker check must find the plaintext on the wire.
say "control: the same fetch with tcpincd stopped"
ip netns exec "$A" tcpdump -i tci-va -s 0 -U -w "$tmp/plain.pcap" "tcp port $PORT" 2>"$tmp/tcpdump2.log" &
tcpdump_pid=$!
pids+=($tcpdump_pid)
wait_for "tcpdump" 10 grep -q "listening on" "$tmp/tcpdump2.log"
if ip netns exec "$A" curl -sS --fail -o /dev/null "http://$IP_B:$PORT/marker.txt"; then
	pass "plain TCP works after a clean stop"
else
	fail "fetch after the daemons stopped failed"
fi
kill -INT "$tcpdump_pid" 2>/dev/null || true
wait "$tcpdump_pid" 2>/dev/null || true
hits=$(grep -a -o "$MARKER" "$tmp/plain.pcap" | wc -l || true)
if [ "$hits" -gt 0 ]; then
	pass "without tcpincd the marker is on the wire $hits times (so the check above can see plaintext)"
else
	fail "marker not found in the plaintext capture: the wire check proves nothing"
fi

echo
if [ "$failed" -eq 0 ]; then
	echo "demo: ALL CHECKS PASSED"
else
	echo "demo: SOME CHECKS FAILED (daemon logs below)"
	for side in a b; do echo "--- tcpincd $side"; cat "$tmp/tcpincd-$side.log"; done
	exit 1
fi

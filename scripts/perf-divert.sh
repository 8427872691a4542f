#!/usr/bin/env bash
# Measures the Linux divert backend against plain TCP in one run, on one
# veth pair between two throwaway network namespaces:
#
#   tcip-pa-<pid> (10.233.1.1) <--veth--> tcip-pb-<pid> (10.233.1.2)
#
# Figures: iperf3 single-stream and 4-stream throughput, connections per
# second (sequential and 16 in parallel; one byte each way), for plain
# TCP, divert with a full key exchange per connection, divert resumed,
# and plain connections through a running backend (peer without tcpinc).
# Each is printed as a ratio to plain TCP. The backend is
# platform_linux/perftool (the same backend tcpincd runs, with flags for
# the policy and a CPU profile).
#
# Needs root. Env: DURATION (seconds per figure, default 3), ROUNDS
# (default 3; plain and divert alternate; ratios are per round, against
# the plain figure of the same round, and the table shows medians),
# QUEUES (default 1), PROFILE=DIR (CPU profiles of the client-side
# backend in the first round), ONLY=throughput|conns (skip the other
# half), KEEP_STATS=DIR (the backends' counters and logs).
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/netns.sh
. scripts/lib/netns.sh
GO=${GO:-go}
DURATION=${DURATION:-3}
ROUNDS=${ROUNDS:-3}
QUEUES=${QUEUES:-1}
ONLY=${ONLY:-}

if [ "$(id -u)" -ne 0 ]; then
	echo "perf-divert: needs root (it creates network namespaces); try: sudo $0" >&2
	exit 1
fi
scripts/deps.sh ip:iproute2 nft:nftables iperf3:iperf3 python3:python3

id=$$
A=tcip-pa-$id
B=tcip-pb-$id
IP_A=10.233.1.1
IP_B=10.233.1.2
tmp=$(mktemp -d /tmp/tcip-perf.XXXXXX)
netns_cleanup_on_exit "$tmp" "$A" "$B"

CGO_ENABLED=0 "$GO" build -o "$tmp/perftool" ./platform_linux/perftool
PT=$tmp/perftool

ip netns add "$A"
ip netns add "$B"
la=tcipva$id
lb=tcipvb$id
ip -n "$A" link add "$la" type veth peer name "$lb" netns "$B"
for ns in "$A" "$B"; do
	ip -n "$ns" link set lo up
	# Short connections: reuse TIME_WAIT ports, many ports.
	ip netns exec "$ns" sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="10000 65000"
done
ip -n "$A" addr add $IP_A/24 dev "$la"
ip -n "$B" addr add $IP_B/24 dev "$lb"
ip -n "$A" link set "$la" up
ip -n "$B" link set "$lb" up

# Long-running servers in B.
ip netns exec "$B" iperf3 -s -B $IP_B -p 5201 >/dev/null 2>&1 &
pids+=($!)
ip netns exec "$B" "$PT" server $IP_B:7100 >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do ip netns exec "$A" bash -c "exec 3<>/dev/tcp/$IP_B/5201" 2>/dev/null && break; sleep 0.1; done

backend_pids=()
# start_backend NS NAME [perftool flags...]
start_backend() {
	local ns=$1 name=$2
	shift 2
	ip netns exec "$ns" "$PT" backend --queues "$QUEUES" --stats "$tmp/$name.stats.json" "$@" 2>>"$tmp/$name.log" &
	local p=$!
	pids+=($p)
	backend_pids+=($p)
	for _ in $(seq 100); do
		ip netns exec "$ns" nft list table inet tcpinc >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "perf-divert: backend in $ns did not start:" >&2
	cat "$tmp/$name.log" >&2
	exit 1
}
stop_backends() {
	for p in "${backend_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${backend_pids[@]}"; do wait "$p" 2>/dev/null || true; done
	backend_pids=()
}

# iperf STREAMS: Mbit/s received.
iperf() {
	ip netns exec "$A" iperf3 -c $IP_B -p 5201 -t "$DURATION" -P "$1" -J >"$tmp/iperf.json" 2>&1 || {
		echo 0
		return
	}
	python3 -c 'import json,sys; print("%.0f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e6))' "$tmp/iperf.json"
}
# conns PARALLEL: connections per second.
conns() {
	ip netns exec "$A" "$PT" connrate $IP_B:7100 --duration "${DURATION}s" --parallel "$1" 2>"$tmp/connrate.err" |
		awk '{print $6; if ($8 > 0) print "perf-divert: " $8 " connections failed" > "/dev/stderr"}'
}

declare -A R
# measure LABEL: one round of every figure, kept per round in R.
measure() {
	local f v
	for f in tp1 tp4 cs1 cs16; do
		v=
		case $f in
		tp1) [ "$ONLY" != conns ] && v=$(iperf 1) ;;
		tp4) [ "$ONLY" != conns ] && v=$(iperf 4) ;;
		cs1) [ "$ONLY" != throughput ] && v=$(conns 1) ;;
		cs16) [ "$ONLY" != throughput ] && v=$(conns 16) ;;
		esac
		R[$1,$f,$round]=$v
	done
	echo "round $round $1: ${R[$1,tp1,$round]} ${R[$1,tp4,$round]} Mbit/s, ${R[$1,cs1,$round]} ${R[$1,cs16,$round]} conn/s" >&2
}

prof() { [ -n "${PROFILE:-}" ] && [ "$round" = 1 ] && echo "--cpuprofile=$PROFILE/$1.pprof" || true; }
[ -n "${PROFILE:-}" ] && mkdir -p "$PROFILE"

# Plain and divert alternate, so that a burst of load from elsewhere
# hits both alike.
for round in $(seq "$ROUNDS"); do
	measure plain

	start_backend "$A" full-a --resumption=false $(prof full)
	start_backend "$B" full-b --resumption=false
	measure full
	stop_backends

	start_backend "$A" resumed-a $(prof resumed)
	start_backend "$B" resumed-b
	measure resumed
	stop_backends

	start_backend "$A" plainpeer-a $(prof plainpeer)
	measure plainpeer
	stop_backends
done

# The VM is shared: load from elsewhere comes and goes. Each ratio is
# taken against plain TCP of the same round (measured just before), and
# the table shows the median over the rounds; absolute figures are the
# medians too.
stats() { # KIND FIG: median of the values (KIND=abs) or of the per-round ratios (KIND=ratio)
	local kind=$1 key=$2 fig=$3 r vals=()
	for r in $(seq "$ROUNDS"); do
		if [ "$kind" = abs ]; then
			vals+=("${R[$key,$fig,$r]:-}")
		else
			vals+=("${R[$key,$fig,$r]:-}/${R[plain,$fig,$r]:-}")
		fi
	done
	python3 - "${vals[@]}" <<'PY'
import statistics, sys
xs = []
for a in sys.argv[1:]:
    try:
        if "/" in a:
            n, d = a.split("/")
            if float(d) > 0:
                xs.append(float(n) / float(d))
        elif a:
            xs.append(float(a))
    except ValueError:
        pass
print(("%.2f" if any(x < 10 for x in xs) else "%.0f") % statistics.median(xs) if xs else "-")
PY
}

printf '\n%s, %s, kernel %s, %d queue(s), median of %d rounds of %s s per figure\n' \
	"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$(nproc) CPUs" "$(uname -r)" "$QUEUES" "$ROUNDS" "$DURATION"
printf '%-34s %12s %12s %12s %12s\n' "" "1 stream" "4 streams" "conn/s seq" "conn/s x16"
for k in plain full resumed plainpeer; do
	case $k in
	plain) label="plain TCP" ;;
	full) label="divert, full key exchange" ;;
	resumed) label="divert, resumed" ;;
	plainpeer) label="plain peer through the backend" ;;
	esac
	printf '%-34s %7s Mb/s %7s Mb/s %12s %12s\n' "$label" "$(stats abs $k tp1)" "$(stats abs $k tp4)" "$(stats abs $k cs1)" "$(stats abs $k cs16)"
	if [ $k != plain ]; then
		printf '%-34s %12s %12s %12s %12s\n' "  ratio to plain (same round)" \
			"$(stats ratio $k tp1)" "$(stats ratio $k tp4)" "$(stats ratio $k cs1)" "$(stats ratio $k cs16)"
	fi
done
if [ -n "${PROFILE:-}" ]; then
	echo "CPU profiles of the client-side backend in $PROFILE (go tool pprof -top $PROFILE/perftool $PROFILE/full.pprof)"
	cp "$PT" "$PROFILE/perftool"
fi
if [ -n "${KEEP_STATS:-}" ]; then
	mkdir -p "$KEEP_STATS"
	cp "$tmp"/*.stats.json "$tmp"/*.log "$KEEP_STATS/" 2>/dev/null || true
fi

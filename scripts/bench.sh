#!/usr/bin/env bash
# make bench, end to end (root): plain TCP, divert mode and redirect mode
# side by side on the same veth pair, in one run, as ratios to plain TCP.
#
#   tcie-bench-c-<pid> (10.231.70.1, tcie-c) <--veth--> tcie-bench-s-<pid> (10.231.70.2, tcie-s)
#
# The server namespace also answers for every address of 10.232.0.0/15
# ("ip route add local"), so that the connection benchmarks can give each
# connection its own destination: the client's tcpincd then has no
# resumption secret for it and runs a full key exchange every time.
#
# Measured, for each configuration (plain: no tcpincd; divert; redirect;
# divert at the client only, so its connections stay plain through a
# running tcpincd):
#   - iperf3 throughput, 1 stream and 4 streams (BENCH_SECONDS each);
#   - connections per second with tcpinc-load (tests/e2e/cmd/tcpinc-load),
#     sequential and 16 in parallel, each connection echoing 64 bytes
#     checked byte for byte, bounded by BENCH_CONNS connections and
#     BENCH_SECONDS; divert both with full handshakes and resumed;
#   - tcpincd's CPU seconds per GB moved (utime+stime of both daemons
#     from /proc/<pid>/stat around the 1-stream iperf3 run).
# The whole set runs BENCH_ROUNDS times (plain TCP in every round, so a
# machine whose load changes during the run affects every configuration
# alike); each figure is the median of its rounds. Prints a table with
# each figure and its ratio to plain TCP, and writes it to
# docs/benchmarks.md (BENCH_OUT) with the machine described. Never fails
# on a slow figure; fails only if the setup fails.
# Nothing runs in, or is added to, the host's own network namespace.
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
SECS=${BENCH_SECONDS:-5}
CONNS=${BENCH_CONNS:-2000}
ROUNDS=${BENCH_ROUNDS:-3}
OUT=${BENCH_OUT:-docs/benchmarks.md}

if [ "$(id -u)" -ne 0 ]; then
	echo "bench: the end-to-end benchmarks need root (network namespaces); skipped" >&2
	exit 0
fi
scripts/deps.sh ip:iproute2 ss:iproute2 nft:nftables iperf3:iperf3 python3:python3

id=$$
C=tcie-bench-c-$id
S=tcie-bench-s-$id
IP_C=10.231.70.1
IP_S=10.231.70.2
ANY=10.232.0.0/15 # local to the server namespace
tmp=$(mktemp -d /tmp/tcie-bench.XXXXXX)
results=$tmp/results.tsv
pids=()
daemons=()

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for p in "${daemons[@]}" "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${daemons[@]}" "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	ip netns del "$C" 2>/dev/null || true
	ip netns del "$S" 2>/dev/null || true
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step=0
progress() {
	step=$((step + 1))
	printf '[%2d] %s\n' "$step" "$*" >&2
}

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local secs=$1
	shift
	for _ in $(seq $((secs * 10))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# record KEY VALUE: one measured figure of this round.
record() { printf '%s\t%s\t%s\n' "$round" "$1" "$2" >>"$results"; }

# Leftovers of a killed earlier run: namespaces whose pid is gone.
for ns in $(ip netns list | awk '/^tcie-bench-/ {print $1}'); do
	p=${ns##*-}
	if ! kill -0 "$p" 2>/dev/null; then
		for q in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$q" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
		echo "bench: removed namespace $ns of an earlier run" >&2
	fi
done

progress "building tcpincd, tcpinc and tcpinc-load"
CGO_ENABLED=0 "$GO" build -o "$tmp/bin/" ./cmd/tcpincd ./cmd/tcpinc ./tests/e2e/cmd/tcpinc-load
TCPINCD=$tmp/bin/tcpincd
TCPINC=$tmp/bin/tcpinc
LOAD=$tmp/bin/tcpinc-load

# The modes this tcpincd offers, from the --mode line of its help; an
# empty configuration file when it takes one, so that a configuration
# installed on this machine does not change what is measured.
run_help=$("$TCPINCD" run --help 2>&1 || true)
mode_line=$(grep -E '^ *--mode' <<<"$run_help" || true)
config_args=()
if grep -q -- '--config' <<<"$run_help"; then
	: >"$tmp/empty.toml"
	config_args=(--config "$tmp/empty.toml")
fi
have_mode() {
	[[ $mode_line == *"$1"* && $mode_line != *"$1 is not implemented"* ]]
}

progress "creating namespaces $C and $S"
ip netns add "$C"
ip netns add "$S"
ip -n "$C" link add tcie-c type veth peer name tcie-s netns "$S"
ip -n "$C" addr add "$IP_C/24" dev tcie-c
ip -n "$S" addr add "$IP_S/24" dev tcie-s
for ns in "$C" "$S"; do ip -n "$ns" link set lo up; done
ip -n "$C" link set tcie-c up
ip -n "$S" link set tcie-s up
ip -n "$S" route add local "$ANY" dev lo
ip -n "$C" route add "$ANY" via "$IP_S"
mac() { ip -n "$1" -br link show "$2" | awk '{print $3}'; }
ip -n "$C" neigh replace "$IP_S" lladdr "$(mac "$S" tcie-s)" dev tcie-c nud permanent
ip -n "$S" neigh replace "$IP_C" lladdr "$(mac "$C" tcie-c)" dev tcie-s nud permanent
# Thousands of short connections: reuse TIME_WAIT ports.
ip netns exec "$C" sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"

ip netns exec "$S" iperf3 -s -p 5201 >"$tmp/iperf3-server.log" 2>&1 &
pids+=($!)
ip netns exec "$S" "$LOAD" serve -listen 0.0.0.0:7000 >"$tmp/load-server.log" 2>&1 &
pids+=($!)
wait_for 10 sh -c "ip netns exec '$S' ss -Htln 'sport = :5201' | grep -q LISTEN" ||
	{ echo "bench: iperf3 server did not start" >&2; exit 1; }
wait_for 10 grep -q LISTENING "$tmp/load-server.log" ||
	{ echo "bench: tcpinc-load server did not start" >&2; exit 1; }

# start_daemons MODE SIDES: tcpincd in the client (c), server (s) or both (cs).
daemon_c=
daemon_s=
start_daemons() {
	local mode=$1 sides=$2 side ns log
	for side in c s; do
		[[ $sides == *$side* ]] || continue
		ns=$C
		[ $side = s ] && ns=$S
		log=$tmp/tcpincd-$mode-$side-$round.log
		ip netns exec "$ns" "$TCPINCD" run --mode "$mode" --control "$tmp/$side.sock" "${config_args[@]}" 2>"$log" &
		daemons+=($!)
		eval "daemon_$side=$!"
		if ! wait_for 20 sh -c "'$TCPINC' --control '$tmp/$side.sock' status --json | grep -Eq '\"running\": ?true'"; then
			echo "bench: tcpincd --mode $mode did not start in $ns; log:" >&2
			cat "$log" >&2
			exit 1
		fi
		# "running" can come before the rules are in; both backends log
		# their table once it is installed.
		wait_for 5 grep -q 'table="inet tcpinc' "$log" ||
			echo "bench: tcpincd --mode $mode in $ns logged no table 5 s after it said it was running; going on" >&2
	done
}
stop_daemons() {
	local p
	for p in "${daemons[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	daemons=()
	daemon_c=
	daemon_s=
}

# cpu_ticks PID...: utime+stime (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() {
	local p sum=0
	for p in "$@"; do
		[ -n "$p" ] || continue
		sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo "$sum"
}

# encrypted SOCK: how many connections the tcpincd on SOCK has encrypted
# (divert counts conns_encrypted, redirect proxy_encrypted).
encrypted() {
	"$TCPINC" --control "$1" status --json | python3 -c '
import json, sys
cs = json.load(sys.stdin)["counters"]
print(sum(v for k, v in cs.items() if k.endswith("conns_encrypted") or k.endswith("proxy_encrypted")))'
}

# json FILE EXPR: a field of a JSON file (EXPR in Python, j the document).
json() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

# throughput NAME STREAMS: iperf3 for SECS seconds; records Gbit/s and,
# with daemons running, their CPU seconds per GB.
throughput() {
	local name=$1 streams=$2 f t0 t1
	progress "iperf3 $streams stream(s), $name, ${SECS}s"
	f=$tmp/iperf-$name-$streams-$round.json
	local e0=0 e1=0
	[ -n "$daemon_s" ] && e0=$(encrypted "$tmp/c.sock")
	t0=$(cpu_ticks $daemon_c $daemon_s)
	if ! ip netns exec "$C" iperf3 -c "$IP_S" -p 5201 -t "$SECS" -P "$streams" -J --connect-timeout 5000 >"$f"; then
		echo "bench: iperf3 failed ($name, $streams streams): $(json "$f" 'j.get("error")' 2>/dev/null)" >&2
		record "tput$streams/$name" "failed"
		return
	fi
	t1=$(cpu_ticks $daemon_c $daemon_s)
	# With tcpincd at both ends, the control connection and every stream
	# must have been encrypted, or the figure is plain TCP's.
	if [ -n "$daemon_s" ]; then
		e1=$(encrypted "$tmp/c.sock")
		if [ $((e1 - e0)) -lt $((streams + 1)) ]; then
			echo "bench: only $((e1 - e0)) of the $((streams + 1)) iperf3 connections were encrypted ($name); figure dropped" >&2
			record "tput$streams/$name" "failed"
			return
		fi
	fi
	record "tput$streams/$name" "$(json "$f" 'j["end"]["sum_received"]["bits_per_second"]/1e9')"
	if [ -n "$daemon_c$daemon_s" ] && [ "$streams" = 1 ]; then
		record "cpu/$name" "$(json "$f" "($t1-$t0)/$(getconf CLK_TCK)/(j['end']['sum_received']['bytes']/1e9)")"
	fi
}

# Each connection benchmark gets its own destinations, so that no run
# reuses another's ports or resumption secrets: one per connection
# (-spread conn) from 10.232.0.0/16, CONNS at a time; one per worker
# from 10.233.0.0/16, 16 at a time.
next_conn=1
next_worker=1
addr_of() { echo "$1.$(($2 >> 8 & 255)).$(($2 & 255))"; }

# conns NAME PARALLEL SPREAD: connections per second to port 7000.
conns() {
	local name=$1 par=$2 spread=$3 f before after base
	if [ "$spread" = conn ]; then
		if [ $((next_conn + CONNS)) -gt 65000 ]; then next_conn=1; fi
		base=$(addr_of 10.232 $next_conn)
		next_conn=$((next_conn + CONNS))
	else
		base=$(addr_of 10.233 $next_worker)
		next_worker=$(((next_worker + 16) % 65000 + 1))
	fi
	progress "connections, $par in parallel, $name (up to $CONNS in ${SECS}s)"
	f=$tmp/conns-$name-$par-$round.json
	before=
	[ -n "$daemon_c" ] && before=$("$TCPINC" --control "$tmp/c.sock" status --json)
	ip netns exec "$C" "$LOAD" run -addr "$base:7000" -n "$CONNS" -c "$par" -size 64 -spread "$spread" \
		-timeout "${SECS}s" -json >"$f" 2>"$f.err" || true
	if ! [ -s "$f" ]; then
		echo "bench: tcpinc-load failed ($name): $(cat "$f.err")" >&2
		record "cps$par/$name" "failed"
		return
	fi
	local failed
	failed=$(json "$f" 'j["failed"]')
	if [ "$failed" != 0 ]; then
		echo "bench: $failed connections failed ($name, $par in parallel): $(json "$f" 'j.get("errors")')" >&2
	fi
	record "cps$par/$name" "$(json "$f" 'j["conns_per_sec"]')"
	record "failed$par/$name" "$failed"
	if [ -n "$daemon_c" ]; then
		after=$("$TCPINC" --control "$tmp/c.sock" status --json)
		record "resumed$par/$name" "$(python3 -c '
import json, sys
def c(s, name):
    return sum(v for k, v in json.loads(s)["counters"].items() if k == name or k.endswith("_" + name))
b, a = sys.argv[1], sys.argv[2]
# divert counts conns_*, redirect proxy_*.
enc = sum(c(a, n) - c(b, n) for n in ("conns_encrypted", "proxy_encrypted"))
res = sum(c(a, n) - c(b, n) for n in ("conns_resumed", "proxy_resumed"))
print(f"{res}/{enc}")' "$before" "$after")"
	fi
}

measure() {
	local name=$1
	throughput "$name" 1
	throughput "$name" 4
}

for round in $(seq "$ROUNDS"); do
	progress "round $round of $ROUNDS: plain TCP (no tcpincd)"
	measure plain
	conns plain 1 none
	conns plain 16 worker

	if have_mode divert; then
		progress "round $round of $ROUNDS: divert mode at both ends"
		start_daemons divert cs
		measure divert
		# -spread conn: a new destination per connection, nothing to resume.
		conns divert-full 1 conn
		conns divert-full 16 conn
		# One destination per worker: after its first connection, each
		# worker resumes the session chain of its previous one.
		conns divert-resumed 1 none
		conns divert-resumed 16 worker
		stop_daemons

		progress "round $round of $ROUNDS: divert mode at the client only (connections stay plain)"
		start_daemons divert c
		measure divert-oneside
		conns divert-oneside 1 none
		conns divert-oneside 16 worker
		stop_daemons
	else
		[ "$round" -gt 1 ] || echo "bench: tcpincd has no divert mode: $mode_line" >&2
	fi

	if have_mode redirect; then
		progress "round $round of $ROUNDS: redirect mode at both ends"
		start_daemons redirect cs
		measure redirect
		conns redirect-full 1 conn
		conns redirect-full 16 conn
		conns redirect-resumed 1 none
		conns redirect-resumed 16 worker
		stop_daemons
	else
		[ "$round" -gt 1 ] || echo "bench: redirect mode not measured: tcpincd run --help says: $(echo "$mode_line" | sed 's/^ *//')" >&2
	fi

done

progress "writing $OUT"
GO=$GO python3 - "$results" "$OUT" "$SECS" "$CONNS" "$ROUNDS" <<'PY'
import os, platform, statistics, subprocess, sys, datetime
results, out, secs, conns, rounds = sys.argv[1:6]
# Every round's figures, then one value per key: the median of the
# numbers, the sums of "resumed a/b" and of failure counts, or "failed"
# if no round could measure it.
runs = {}
for line in open(results):
    _, k, v = line.rstrip("\n").split("\t")
    runs.setdefault(k, []).append(v)
r = {}
for k, vs in runs.items():
    if k.startswith("resumed"):
        a = sum(int(v.split("/")[0]) for v in vs)
        b = sum(int(v.split("/")[1]) for v in vs)
        r[k] = f"{a}/{b}"
        continue
    nums = []
    for v in vs:
        try:
            nums.append(float(v))
        except ValueError:
            pass
    if k.startswith("failed"):
        r[k] = str(int(sum(nums)))
    elif nums:
        r[k] = str(statistics.median(nums))
        if len(nums) > 1:
            r["spread:" + k] = (min(nums), max(nums))
    else:
        r[k] = "failed"

def num(k):
    try:
        return float(r[k])
    except (KeyError, ValueError):
        return None

def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return "?"

cpu = "?"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break

rows = []  # (what, configuration, value, range, unit, ratio, target)
def row(what, key, base, label, unit, target="", fmt="{:.2f}"):
    v, b = num(key), num(base) if base else None
    if key not in r:
        return
    val = fmt.format(v) if v is not None else r[key]
    ratio = f"{v / b:.2f}×" if v is not None and b else ""
    extra = ""
    res = r.get(key.replace("cps", "resumed"))
    if key.startswith("cps") and res:
        extra = f" (resumed {res})"
    bad = r.get(key.replace("cps", "failed"), "0")
    if key.startswith("cps") and bad != "0":
        extra += f" ({bad} connections failed)"
    lo_hi = r.get("spread:" + key)
    spread = f"{fmt.format(lo_hi[0])}–{fmt.format(lo_hi[1])}" if lo_hi else ""
    rows.append((what, label + extra, val, spread, unit, ratio, target))

for s in ("1", "4"):
    what = f"iperf3, {s} stream" + ("s" if s != "1" else "")
    base = f"tput{s}/plain"
    row(what, base, base, "plain TCP", "Gbit/s")
    row(what, f"tput{s}/divert", base, "divert", "Gbit/s", "≥ 0.5×")
    row(what, f"tput{s}/redirect", base, "redirect", "Gbit/s", "≥ 0.4×")
    row(what, f"tput{s}/divert-oneside", base, "plain peer, tcpincd (divert) at one end", "Gbit/s", "≥ 0.95×")
for p, label in (("1", "connections/s, sequential"), ("16", "connections/s, 16 parallel")):
    base = f"cps{p}/plain"
    row(label, base, base, "plain TCP", "conn/s", fmt="{:.0f}")
    row(label, f"cps{p}/divert-full", base, "divert, full handshake", "conn/s", "≥ 0.5×", "{:.0f}")
    row(label, f"cps{p}/divert-resumed", base, "divert, resumed", "conn/s", "≥ 0.8×", "{:.0f}")
    row(label, f"cps{p}/redirect-full", base, "redirect, full handshake", "conn/s", "", "{:.0f}")
    row(label, f"cps{p}/redirect-resumed", base, "redirect, resumed", "conn/s", "", "{:.0f}")
    row(label, f"cps{p}/divert-oneside", base, "plain peer, tcpincd (divert) at one end", "conn/s", "≥ 0.95×", "{:.0f}")
row("tcpincd CPU (both ends), 1 stream", "cpu/divert", None, "divert", "CPU s/GB")
row("tcpincd CPU (both ends), 1 stream", "cpu/redirect", None, "redirect", "CPU s/GB")
row("tcpincd CPU (one end), 1 stream", "cpu/divert-oneside", None, "plain peer, divert at one end", "CPU s/GB")

table = ["| measurement | configuration | median | range | unit | × plain TCP | target |",
         "|---|---|---:|---:|---|---:|---|"]
for what, label, val, spread, unit, ratio, target in rows:
    table.append(f"| {what} | {label} | {val} | {spread} | {unit} | {ratio} | {target} |")

missing = []
if "tput1/redirect" not in r:
    missing.append("redirect mode: not measured (this tcpincd does not offer --mode redirect)")
for k, v in sorted(r.items()):
    if v == "failed":
        missing.append(f"{k}: the measurement failed in every round (see the bench output)")

print()
print("\n".join(table))
for m in missing:
    print("note:", m)

commit = sh("git", "describe", "--always", "--dirty")
doc = f"""# Benchmarks

Written by `make bench` (`scripts/bench.sh`); rerun it to refresh. Every
figure comes from one run on one veth pair between two network
namespaces of this machine: {rounds} rounds, each measuring every
configuration, plain TCP included; the table gives each figure's median
and range over the rounds. The ratios to plain TCP (of the medians) are
what matters, not the absolute numbers.

## Machine

| | |
|---|---|
| date | {datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")} |
| commit | {commit} |
| CPU | {cpu}, {os.cpu_count()} cores (nproc {sh("nproc")}) |
| kernel | {platform.release()} |
| Go | {sh(os.environ.get("GO", "go"), "version")} |
| iperf3 | {sh("iperf3", "--version").splitlines()[0]} |

## Results

{chr(10).join(table)}

{chr(10).join("- " + m for m in missing)}

## Method

- Topology: client namespace `tcie-bench-c-<pid>` and server namespace
  `tcie-bench-s-<pid>` joined by one veth pair; the server also answers
  for all of 10.232.0.0/15 (`ip route add local`). Nothing else runs in
  them, but the machine itself may be busy: compare the ranges.
- Configurations: *plain TCP* without tcpincd; *divert* and *redirect*
  with `tcpincd run --mode divert|redirect` at both ends; *plain peer*
  with tcpincd (divert) at the client only, so its connections are
  negotiated, found plain and left alone (the cost of running tcpincd
  for peers without tcpinc).
- Throughput: `iperf3 -t {secs} [-P 4]`, the receiver's rate; with
  tcpincd at both ends a figure counts only if tcpincd encrypted every
  iperf3 connection.
- Connections per second: `tcpinc-load run -n {conns} -c 1|16 -size 64`
  (tests/e2e/cmd/tcpinc-load), stopped after {secs} s; each connection
  sends 64 bytes, half-closes and checks the echo byte for byte. *Full
  handshake* gives every connection its own destination address, so the
  client has no resumption secret for it; *resumed* gives each worker one
  destination, so each connection after a worker's first resumes the
  session of the previous one. "resumed a/b" is the client tcpincd's
  count of resumed among encrypted connections in that measurement, over
  all rounds; "N connections failed" counts connections that did not
  complete their echo intact (reset, timeout or different bytes), over
  all rounds; the rate counts only intact ones.
- CPU: utime+stime of both tcpincd processes (`/proc/<pid>/stat`) over
  the 1-stream iperf3 run, divided by the gigabytes received.
- Targets are the issue's (ratios to plain TCP on this 2-core VM).
"""
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
with open(out, "w") as f:
    f.write(doc)
print(f"\nwritten to {out}")
PY

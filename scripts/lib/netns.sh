# shellcheck shell=bash
# Sourced by the scripts that run processes in throwaway network
# namespaces (demo.sh, perf-divert.sh): one exit path that stops what
# they started and removes what they created, whether they finish, fail
# under set -e, or are interrupted.
#
# Append the pid of every background process to pids; then
#   netns_cleanup_on_exit DIR NS...
# makes the exit stop those processes (TERM, up to 5 s, then KILL),
# delete the namespaces NS... and remove the work directory DIR, and
# keeps the script's exit status (130 and 143 for INT and TERM).

pids=()

netns_cleanup_on_exit() {
	_netns_dir=$1
	shift
	_netns_names=("$@")
	trap _netns_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

_netns_cleanup() {
	local rc=$? p ns
	trap - EXIT INT TERM
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	for ns in "${_netns_names[@]}"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	rm -rf "$_netns_dir"
	exit "$rc"
}

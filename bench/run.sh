#!/usr/bin/env bash
# `bun run bench`: raise the open-file limit as far as this machine allows, then run the suite
# (bench/main.ts; arguments pass through, e.g. `bun run bench -- --quick --only=fanout`).
# Whatever main.ts leaves behind on a hard failure (a process it started) is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

hard="$(ulimit -Hn)"
[ "$hard" = "unlimited" ] && hard=1048576
ulimit -n "$hard" 2>/dev/null || true
export BENCH_NOFILE="$(ulimit -n)"
# One temp dir for the whole run (data dirs, config, the pid list), removed on exit whatever happens.
export BENCH_TMPDIR="$(mktemp -d "${TMPDIR:-/tmp}/agentkit-bench.XXXXXX")"
export BENCH_PIDFILE="$BENCH_TMPDIR/pids"

# The connection scenario may widen the ephemeral port range (and puts it back); if the run dies
# before it can, put it back here.
port_range_file=/proc/sys/net/ipv4/ip_local_port_range
port_range="$(cat "$port_range_file" 2>/dev/null || true)"

cleanup() {
  if [ -s "$BENCH_PIDFILE" ]; then
    # Only processes of this bench (a pid may have been reused since it was written).
    while read -r pid; do
      if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qE 'dist/agentkit|agentkit|bench/(client|bare-pubsub)\.ts'; then
        kill -9 "$pid" 2>/dev/null || true
      fi
    done <"$BENCH_PIDFILE"
  fi
  rm -rf "$BENCH_TMPDIR"
  if [ -n "$port_range" ] && [ "$(cat "$port_range_file" 2>/dev/null)" != "$port_range" ]; then
    echo "$port_range" >"$port_range_file" 2>/dev/null || true
  fi
}
trap cleanup EXIT

bun bench/main.ts "$@"

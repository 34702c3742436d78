#!/usr/bin/env bash
# bench/ws_bench.sh [BUILD_DIR]: WebSocket echo benchmark, ra-hello's WS
# /echo against the npm `ws` package's server, in the same run, on loopback.
# Two drivers each: our C client (ws-client-check --bench) and the npm ws
# client (bench/ws_bench.js). Sequential round trips (one message in flight):
# small messages measure round trips/s, 1 MiB messages measure MB/s.
# Each figure is the best of REPEAT runs (other load on the machine only
# ever slows a run down).
# Environment: SMALL_N (20000), BIG_N (300), SMALL (32 bytes), BIG (1 MiB),
# REPEAT (3).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
bin=$build/bin
small_n=${SMALL_N:-20000} big_n=${BIG_N:-300} small=${SMALL:-32} big=${BIG:-1048576}
repeat=${REPEAT:-3}
[ -x "$bin/ra-hello" ] && [ -x "$bin/ws-client-check" ] || { echo "build first: $bin/ra-hello, $bin/ws-client-check" >&2; exit 1; }
[ -d "$src/tests/node_modules/ws" ] || "$src/scripts/deps.sh"
export NODE_PATH=$src/tests/node_modules
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
wait_port() {
  for _ in $(seq 1 100); do
    p=$(grep -Eo "$2[0-9]+" "$1" | grep -Eo "[0-9]+$" | head -1 || true)
    [ -n "$p" ] && { echo "$p"; return 0; }
    sleep 0.05
  done
  return 1
}
"$bin/ra-hello" --listen 127.0.0.1:0 --quiet >"$tmp/h.out" 2>"$tmp/h.err" &
pids+=($!)
node "$src/tests/ws/echo_server.js" >"$tmp/n.out" 2>&1 &
pids+=($!)
hp=$(wait_port "$tmp/h.out" "listening on http://127.0.0.1:")
np=$(wait_port "$tmp/n.out" "port ")
# best CMD...: runs CMD $repeat times, prints the line with the most rt/s
best() {
  for _ in $(seq 1 "$repeat"); do "$@"; done | sort -t: -k2 -g -r | head -1
}
echo "# WebSocket echo benchmark ($(nproc) CPUs, $(uname -r)); sequential round trips, best of $repeat"
echo "# server            client     result"
for srv in raloop ws-npm; do
  if [ $srv = raloop ]; then url="ws://127.0.0.1:$hp/echo"; else url="ws://127.0.0.1:$np/echo"; fi
  for spec in "$small_n $small" "$big_n $big"; do
    set -- $spec
    printf "%-18s  %-9s  %s\n" "$srv" "C" "$(best "$bin/ws-client-check" "$url" --bench "$1" "$2")"
    printf "%-18s  %-9s  %s\n" "$srv" "node-ws" "$(best node "$src/bench/ws_bench.js" "$url" "$1" "$2")"
  done
done

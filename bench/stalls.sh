#!/usr/bin/env bash
# bench/stalls.sh [BUILD_DIR] [RUNS] [ROUNDS] [SCENARIO]: where ra-bench's
# multi-millisecond rounds come from (issue 18). RUNS times (default 6): a
# fresh ra-hello --tee sim on core 0, `ra-bench --both --scenario SCENARIO
# (concurrent) --rounds ROUNDS (5) --per-round --server-pid PID` on core 1;
# each round's max latency beside the time the client and the server spent
# runnable but waiting for a CPU (run-queue delay, /proc/PID/schedstat).
# Prints the rounds and a 2 x 2 count: stalled (max > 2 ms) or not, against
# waited (client + server > 1 ms) or not.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
runs=${2:-6} rounds=${3:-5} scenario=${4:-concurrent}
pin0=() pin1=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin0=(taskset -c 0) pin1=(taskset -c 1); fi
. "$here/tests/lib.sh"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq 1 "$runs"); do
  : >"$tmp/log"
  "${pin0[@]}" "$build/bin/ra-hello" --listen 127.0.0.1:0 --quiet --tee sim --sim-dir "$tmp/sim$i" \
    >"$tmp/log" 2>&1 &
  srv=$!
  pids=("$srv")
  await_port "$tmp/log" "$tmp/log" "$srv" ra-hello
  "${pin1[@]}" "$build/bin/ra-bench" --both --trust-sim "$tmp/sim$i" --quiet --scenario "$scenario" \
    --rounds "$rounds" --per-round --server-pid "$srv" --format csv "http://127.0.0.1:$port" \
    2>&1 >/dev/null | sed "s/^/run $i /" | tee -a "$tmp/rounds"
  kill "$srv"; wait "$srv" 2>/dev/null || true
  pids=()
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
awk '/^run .* round / {
  max = 0; wc = 0; ws = 0
  for (i = 1; i <= NF; i++) {
    if ($i == "max") max = $(i + 1)
    if ($i == "client") wc = $(i + 1)
    if ($i == "server") ws = $(i + 1)
  }
  s = max > 2.0; w = wc + ws > 1.0; n[s, w]++; t++
}
END {
  printf "rounds: %d\n", t
  printf "max > 2 ms, waited > 1 ms: %d   max > 2 ms, no wait: %d\n", n[1, 1], n[1, 0]
  printf "max <= 2 ms, waited > 1 ms: %d  max <= 2 ms, no wait: %d\n", n[0, 1], n[0, 0]
}' "$tmp/rounds"

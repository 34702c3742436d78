#!/usr/bin/env bash
# bench/idle_bench.sh [BUILD_DIR] [N] [HOLD_SECONDS]: the server's resident
# memory per idle attested tunnel and per idle plain keep-alive connection
# (issue 18: <= 4 KiB per tunnel, <= 1 KiB per connection, N = 10,000).
# For each mode a fresh `ra-hello --tee sim` (pinned to core 0 when taskset
# exists); `ra-bench --scenario idle --tunnels N --hold S` (core 1) opens N
# tunnels / connections (each answers one GET /hello, so everything a
# request grows has grown), holds them idle; the server's VmRSS is read
# before the first one opens, just after all N are open, and near the end
# of the hold (>= 12 s: the tunnel server trims a tunnel idle for 5-10 s);
# the figure is (RSS idle - RSS before) / N. Then they close, and the RSS after close
# shows what the server keeps. Reported, not a timed test.
# RA_HELLO=PATH measures another build's server with this build's ra-bench
# (e.g. before/after a change).
set -euo pipefail
build=${1:-build}
n=${2:-10000}
hold=${3:-15}
bin=$build/bin
hello=${RA_HELLO:-$bin/ra-hello}
[ -x "$hello" ] && [ -x "$bin/ra-bench" ] || { echo "build first ($bin)" >&2; exit 2; }
# every tunnel is one socket on each side, both processes are ours
ulimit -n $((n * 2 + 1000)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((n + 200)) ] || { echo "ulimit -n ($(ulimit -n)) too low for $n" >&2; exit 1; }
# arrays, not a function: `taskset` execs the program, so $! is its pid
pin0=() pin1=()
if command -v taskset >/dev/null; then pin0=(taskset -c 0) pin1=(taskset -c 1); fi
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
. "$(dirname "$0")/../tests/lib.sh"

echo "== $(uname -m), $(nproc) CPU(s), load $(cut -d' ' -f1-3 /proc/loadavg), N=$n, hold ${hold}s"
for mode in plain tunnel; do
  : >"$tmp/srv.log"
  "${pin0[@]}" "$hello" --listen 127.0.0.1:0 --quiet --tee sim --sim-dir "$tmp/sim" >"$tmp/srv.log" 2>&1 &
  srv=$!
  pids=("$srv")
  await_port "$tmp/srv.log" "$tmp/srv.log" "$srv" ra-hello
  before=$(rss_kb "$srv")
  : >"$tmp/bench.err"
  "${pin1[@]}" "$bin/ra-bench" --"$mode" --scenario idle --tunnels "$n" --hold "$hold" \
    --trust-sim "$tmp/sim" --quiet --format csv "http://127.0.0.1:$port" >"$tmp/bench.csv" 2>"$tmp/bench.err" &
  b=$!
  open=
  for _ in $(seq 1 6000); do
    grep -q "open, holding" "$tmp/bench.err" && { open=1; break; }
    kill -0 "$b" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$open" ] || { cat "$tmp/bench.err" >&2; echo "ra-bench did not open $n ($mode)" >&2; exit 1; }
  sleep 0.5 # the last answers flushed
  fresh=$(rss_kb "$srv")
  # the server gives an idle tunnel's buffers back after 5-10 s without a
  # message (attest/tunnel/server.c, trim_idle): read again near the end
  sleep "$(awk -v h="$hold" 'BEGIN { s = h - 1.5; print (s > 0 ? s : 0) }')"
  during=$(rss_kb "$srv")
  wait "$b" || { cat "$tmp/bench.err" >&2; exit 1; }
  sleep 0.5
  after=$(rss_kb "$srv")
  per=$(( (during - before) * 1024 / n ))
  per_fresh=$(( (fresh - before) * 1024 / n ))
  open_line=$(grep "^idle," "$tmp/bench.csv" || true)
  what=$([ $mode = tunnel ] && echo tunnel || echo connection)
  echo "$mode: server VmRSS before ${before} KiB; $n just opened ${fresh} KiB (${per_fresh} B per $what);" \
       "idle ${hold}s ${during} KiB: ${per} B per idle $what; after close ${after} KiB"
  echo "  ra-bench (scenario,mode,n,avg_ms,p50,p90,p99,max,opened/s): $open_line"
  kill "$srv" 2>/dev/null || true
  wait "$srv" 2>/dev/null || true
  pids=()
done

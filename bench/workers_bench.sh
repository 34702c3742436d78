#!/usr/bin/env bash
# bench/workers_bench.sh BUILD_DIR [SECONDS]   (env: ROUNDS=3)
#
# ra-hello GET /hello with 1 and with 2 worker processes (serve/workers.h),
# wrk with 100 keep-alive connections:
#   1 worker   ra-hello (no supervisor) pinned to core 0, wrk -t1 pinned to core 1
#              (as bench/http_bench.sh)
#   2 workers  ra-hello --workers 2 on cores 0-1, wrk -t2 on cores 0-1 too: on
#              a 2-core machine the load generator competes with the workers,
#              so the figure is a floor, not what 2 cores serve
# For each: requests/s (best round), p50/p99, and the server's CPU use
# (user+system of every ra-hello process over the run, from /proc) to give
# requests per server CPU-second: the per-core efficiency, which should stay
# flat if workers share nothing. Then 1 worker with --metrics (the cost of
# the counters on the request path). Needs: wrk, taskset, curl.
set -euo pipefail
build=$(cd "${1:?usage: workers_bench.sh BUILD_DIR [SECONDS]}" && pwd)
secs=${2:-10}
rounds=${ROUNDS:-3}
hello=$build/bin/ra-hello
[ -x "$hello" ] || { echo "no $hello: build first" >&2; exit 1; }
for t in wrk taskset curl; do command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }; done
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
hz=$(getconf CLK_TCK)

# cpu_ticks PID: utime+stime of PID and its children processes now alive
cpu_ticks() {
  local t=0 p
  for p in $1 $(pgrep -P "$1" || true); do
    [ -r "/proc/$p/stat" ] || continue
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}

start() { # start WORKERS CPUS [FLAGS...]: sets pid, port
  local out=$dir/hello.out w=$1 c=$2
  shift 2
  taskset -c "$c" "$hello" --listen 127.0.0.1:0 --quiet --no-tunnel --workers "$w" "$@" >"$out" 2>"$dir/hello.err" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do grep -q '^listening on' "$out" 2>/dev/null && break; sleep 0.05; done
  port=$(sed -n 's/^listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out")
  [ -n "$port" ] || { echo "ra-hello did not start" >&2; cat "$dir/hello.err" >&2; exit 1; }
  sleep 0.2
}

run() { # run WORKERS SERVER_CPUS WRK_CPUS WRK_THREADS [FLAGS...] -> "RPS P50 P99 RPS_PER_CPU_S CPU_USED"
  start "$1" "$2" "${@:5}"
  taskset -c "$3" wrk -t"$4" -c100 -d1s "http://127.0.0.1:$port/hello" >/dev/null
  local c0 c1 out
  c0=$(cpu_ticks "$pid")
  out=$(taskset -c "$3" wrk -t"$4" -c100 -d"${secs}s" --latency "http://127.0.0.1:$port/hello")
  c1=$(cpu_ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local rps p50 p99
  rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  awk -v r="$rps" -v p50="$p50" -v p99="$p99" -v t=$((c1 - c0)) -v hz="$hz" -v s="$secs" \
    'BEGIN { cpu = t / hz; printf "%s %s %s %.0f %.2f\n", r, p50, p99, r * s / cpu, cpu / s }'
}

echo "# GET /hello, wrk -c100, ${secs}s x $rounds rounds (best kept), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
best1="0" best2="0" bestm="0"
better() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }
for r in $(seq "$rounds"); do
  read -r a b c d e < <(run 1 0 1 1)
  echo "  round $r 1 worker  $a req/s ($e cores busy)" >&2
  if better "$a" "$best1"; then best1=$a; l1="$a $b $c $d $e"; fi
  read -r a b c d e < <(run 2 0-1 0-1 2)
  echo "  round $r 2 workers $a req/s ($e cores busy)" >&2
  if better "$a" "$best2"; then best2=$a; l2="$a $b $c $d $e"; fi
  read -r a b c d e < <(run 1 0 1 1 --metrics)
  echo "  round $r 1 worker --metrics $a req/s ($e cores busy)" >&2
  if better "$a" "$bestm"; then bestm=$a; lm="$a $b $c $d $e"; fi
done
printf '%-34s %10s %9s %9s %14s %11s\n' setup req/s p50 p99 "req/server-s" "server cores"
read -r a b c d e <<<"$l1"
printf '%-34s %10s %9s %9s %14s %11s\n' "1 worker (core 0; wrk core 1)" "$a" "$b" "$c" "$d" "$e"
read -r a b c d e <<<"$l2"
printf '%-34s %10s %9s %9s %14s %11s\n' "2 workers (cores 0-1, wrk shares)" "$a" "$b" "$c" "$d" "$e"
read -r a b c d e <<<"$lm"
printf '%-34s %10s %9s %9s %14s %11s\n' "1 worker --metrics" "$a" "$b" "$c" "$d" "$e"
awk -v a="$best2" -v b="$best1" 'BEGIN { printf "2 workers / 1 worker: %.2f\n", a / b }'
awk -v a="$bestm" -v b="$best1" 'BEGIN { printf "--metrics / none: %.2f\n", a / b }'

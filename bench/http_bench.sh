#!/usr/bin/env bash
# bench/http_bench.sh BUILD_DIR [SECONDS]   (env: ROUNDS=3, IDLE_CONNS=10000)
#
# ra-hello against nginx on GET /hello ("world"), both loopback-only and
# single-process: the server pinned to core 0, wrk pinned to core 1, 100
# keep-alive connections, alternating the two servers for ROUNDS rounds and
# keeping each one's best round. Prints requests/s, p50/p99 latency and the
# ra-hello/nginx ratio; then the resident memory per idle keep-alive
# connection with 10,000 idle connections open (server VmRSS before and
# after, divided by the count). Builds nothing: BUILD_DIR must hold
# bin/ra-hello; the nginx config is generated under BUILD_DIR/bench-nginx.
# Needs: nginx (nginx-light), wrk, taskset, node, 2+ cores.
set -euo pipefail
build=$(cd "${1:?usage: http_bench.sh BUILD_DIR [SECONDS]}" && pwd)
secs=${2:-10}
rounds=${ROUNDS:-3}
idle=${IDLE_CONNS:-10000}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../tests/nginx_conf.sh"
hello=$build/bin/ra-hello
[ -x "$hello" ] || { echo "no $hello: build first" >&2; exit 1; }
for t in nginx wrk taskset node; do
  command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || { echo "missing $t" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
ulimit -n $((idle * 2 + 1000)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((idle + 100)) ] || { echo "ulimit -n too low for $idle connections" >&2; exit 1; }

dir=$build/bench-nginx
mkdir -p "$dir/logs" "$dir/tmp"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

start_hello() { # sets hello_pid, hello_port
  local out=$dir/hello.out
  taskset -c 0 "$hello" --listen 127.0.0.1:0 --quiet >"$out" 2>"$dir/hello.err" &
  hello_pid=$!
  pids+=("$hello_pid")
  for _ in $(seq 100); do grep -q '^listening on' "$out" 2>/dev/null && break; sleep 0.05; done
  hello_port=$(sed -n 's/^listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out")
  [ -n "$hello_port" ] || { echo "ra-hello did not start" >&2; cat "$dir/hello.err" >&2; exit 1; }
}

start_nginx() { # sets nginx_pid (the worker), nginx_port
  nginx_port=$(free_port)
  {
    nginx_main "$dir" "worker_connections $((idle + 1000)); multi_accept on;"
    cat <<CONF
http {
  access_log off;
  keepalive_timeout 120s;
  keepalive_requests 100000000;
$(nginx_temp_paths "$dir")
  server {
    listen 127.0.0.1:$nginx_port;
    location = /hello { default_type text/plain; return 200 "world"; }
  }
}
CONF
  } >"$dir/nginx.conf"
  taskset -c 0 "$NGINX" -p "$dir" -c "$dir/nginx.conf" &
  nginx_pid=$!
  pids+=("$nginx_pid")
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$nginx_port/hello" && break; sleep 0.05; done
  [ "$(curl -s "http://127.0.0.1:$nginx_port/hello")" = world ] || { echo "nginx did not start" >&2; cat "$dir/logs/error.log" >&2; exit 1; }
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# wrk: -> "RPS P50_MS P99_MS"
run_wrk() {
  local port=$1
  taskset -c 1 wrk -t1 -c100 -d1s "http://127.0.0.1:$port/hello" >/dev/null # warm-up
  local out
  out=$(taskset -c 1 wrk -t1 -c100 -d"${secs}s" --latency "http://127.0.0.1:$port/hello")
  echo "$out" >"$dir/wrk-$port.txt"
  local rps p50 p99
  rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  local errs
  errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}')
  [ -z "$errs" ] || echo "  wrk reported: $errs" >&2
  echo "$rps $p50 $p99"
}

# -> "KB_BEFORE KB_AFTER BYTES_PER_CONN"
idle_rss() {
  local pid=$1 port=$2
  local before after
  sleep 0.2
  before=$(rss_kb "$pid")
  coproc IDLE { node "$here/idle_conns.js" "$port" "$idle"; }
  local line
  read -r line <&"${IDLE[0]}"
  case $line in "ready $idle failed 0") ;; *) echo "idle clients: $line" >&2 ;; esac
  sleep 0.5
  after=$(rss_kb "$pid")
  kill "$IDLE_PID" 2>/dev/null || true
  wait "$IDLE_PID" 2>/dev/null || true
  echo "$before $after $(( (after - before) * 1024 / idle ))"
}

echo "# GET /hello, 100 connections, ${secs}s x $rounds rounds (best kept), server on core 0, wrk on core 1 ($(nproc) cores)"
h_rps=0 n_rps=0
better() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }
for r in $(seq "$rounds"); do
  # interleaved, so that a noisy neighbour hurts both alike
  start_hello
  read -r rps p50 p99 < <(run_wrk "$hello_port")
  stop "$hello_pid"
  echo "  round $r ra-hello $rps req/s" >&2
  if better "$rps" "$h_rps"; then h_rps=$rps h_p50=$p50 h_p99=$p99; fi
  start_nginx
  read -r rps p50 p99 < <(run_wrk "$nginx_port")
  stop "$nginx_pid"
  echo "  round $r nginx    $rps req/s" >&2
  if better "$rps" "$n_rps"; then n_rps=$rps n_p50=$p50 n_p99=$p99; fi
done
printf '%-10s %12s %10s %10s\n' server req/s p50 p99
printf '%-10s %12s %10s %10s\n' ra-hello "$h_rps" "$h_p50" "$h_p99"
printf '%-10s %12s %10s %10s\n' nginx "$n_rps" "$n_p50" "$n_p99"
awk -v a="$h_rps" -v b="$n_rps" 'BEGIN { printf "ratio ra-hello/nginx: %.2f\n", a / b }'

echo "# resident memory per idle keep-alive connection ($idle connections, one request each)"
start_hello
read -r hb ha hper < <(idle_rss "$hello_pid" "$hello_port")
stop "$hello_pid"
start_nginx
read -r nb na nper < <(idle_rss "$nginx_pid" "$nginx_port")
stop "$nginx_pid"
printf '%-10s %10s %10s %14s\n' server "RSS before" "RSS after" "bytes/conn"
printf '%-10s %8s kB %8s kB %14s\n' ra-hello "$hb" "$ha" "$hper"
printf '%-10s %8s kB %8s kB %14s\n' nginx "$nb" "$na" "$nper"

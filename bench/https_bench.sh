#!/usr/bin/env bash
# bench/https_bench.sh BUILD_DIR [SECONDS]   (env: ROUNDS=3)
#
# HTTPS on the reactor against nginx, same certificate (ECDSA P-256, made
# here), both single-process on loopback, the server pinned to core 0 and the
# load to core 1, alternating the two servers round by round:
#  1. keep-alive GET /hello with wrk (100 connections): requests/s, and the
#     server's CPU time per request (utime+stime of the server process over
#     the run, from /proc, divided by the requests wrk counted);
#  2. TLS handshakes with `openssl s_time` (one at a time): full (-new, TLS
#     1.3) and resumed (-reuse, TLS 1.2: s_time cannot resume 1.3), each for
#     SECONDS/2: the rate
#     (client-bound on two cores) and the server's CPU time per handshake.
# Every figure is printed per round, then as min/median/max over the rounds,
# and the ra-hello/nginx ratio of the medians. Builds nothing: BUILD_DIR must
# hold bin/ra-hello. Needs nginx (nginx-light), wrk, openssl, taskset.
set -euo pipefail
build=$(cd "${1:?usage: https_bench.sh BUILD_DIR [SECONDS]}" && pwd)
secs=${2:-10}
rounds=${ROUNDS:-3}
hello=$build/bin/ra-hello
[ -x "$hello" ] || { echo "no $hello: build first" >&2; exit 1; }
for t in wrk taskset openssl; do command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }; done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "missing nginx" >&2; exit 1; }
dir=$build/bench-https
rm -rf "$dir"; mkdir -p "$dir/logs" "$dir/tmp"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_up() { for _ in $(seq 200); do curl -sk -o /dev/null "https://127.0.0.1:$1/hello" && return 0; sleep 0.05; done; return 1; }

start_hello() { # sets srv_pid srv_port
  local port; port=$(free_port)
  taskset -c 0 "$hello" --listen-tls "127.0.0.1:$port" --cert "$dir/cert.pem" --key "$dir/key.pem" \
    --no-tunnel --quiet >"$dir/hello.out" 2>"$dir/hello.err" &
  srv_pid=$! srv_port=$port; pids+=("$srv_pid")
  wait_up "$port" || { cat "$dir/hello.err" >&2; echo "ra-hello did not start" >&2; exit 1; }
}
start_nginx() { # sets srv_pid srv_port (master_process off: the one process serves)
  local port; port=$(free_port)
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; multi_accept on; }
http {
  access_log off;
  keepalive_timeout 120s;
  keepalive_requests 100000000;
  ssl_session_cache shared:SSL:10m;
  ssl_session_tickets on;
  ssl_protocols TLSv1.2 TLSv1.3;
  client_body_temp_path $dir/tmp;
  proxy_temp_path $dir/tmp;
  fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp;
  scgi_temp_path $dir/tmp;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $dir/cert.pem;
    ssl_certificate_key $dir/key.pem;
    location = /hello { default_type text/plain; return 200 "world"; }
  }
}
CONF
  taskset -c 0 "$NGINX" -p "$dir" -c "$dir/nginx.conf" 2>"$dir/nginx.err" &
  srv_pid=$! srv_port=$port; pids+=("$srv_pid")
  wait_up "$port" || { cat "$dir/nginx.err" "$dir/logs/error.log" >&2; echo "nginx did not start" >&2; exit 1; }
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# keep-alive: -> "RPS CPU_US_PER_REQ"
run_wrk() {
  local pid=$1 port=$2 out t0 t1 reqs hz
  hz=$(getconf CLK_TCK)
  taskset -c 1 wrk -t1 -c100 -d1s "https://127.0.0.1:$port/hello" >/dev/null
  t0=$(cpu_ticks "$pid")
  out=$(taskset -c 1 wrk -t1 -c100 -d"${secs}s" "https://127.0.0.1:$port/hello")
  t1=$(cpu_ticks "$pid")
  echo "$out" | grep -E "Non-2xx|Socket errors" >&2 || true
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  awk -v o="$out" -v r="$reqs" -v d=$((t1 - t0)) -v hz="$hz" 'BEGIN {
    n = split(o, l, "\n"); for (i = 1; i <= n; i++) if (l[i] ~ /^Requests\/sec:/) { split(l[i], f, " "); rps = f[2] }
    printf "%s %.2f\n", rps, d / hz * 1e6 / r }'
}
# handshakes with openssl s_time, one connection at a time: -> "FULL_PER_S
# FULL_CPU_US RESUMED_PER_S RESUMED_CPU_US". The client does as much work
# per full handshake as the server, so on two cores the rate is bounded by
# the client; the server's CPU time per handshake is the figure that
# compares servers.
hs_one() { # hs_one PID PORT S_TIME_ARGS... -> "PER_S CPU_US"
  local pid=$1 port=$2 t=$(( secs / 2 > 0 ? secs / 2 : 1 )) t0 t1 out
  shift 2
  t0=$(cpu_ticks "$pid")
  out=$(taskset -c 1 openssl s_time -connect "127.0.0.1:$port" "$@" -time "$t" 2>/dev/null || true)
  t1=$(cpu_ticks "$pid")
  echo "$out" | awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" '
    /connections in [0-9.]+ real seconds/ { n = $1; s = $4 }
    END { if (n > 0) printf "%.0f %.1f\n", n / s, d / hz * 1e6 / n; else print "0 0" }'
}
run_s_time() {
  local pid=$1 port=$2
  # full: TLS 1.3 as negotiated; resumed: TLS 1.2 (s_time reconnects
  # before a TLS 1.3 ticket can arrive, so its -reuse never resumes 1.3)
  echo "$(hs_one "$pid" "$port" -new) $(hs_one "$pid" "$port" -reuse -tls1_2)"
}

declare -A v
echo "# HTTPS GET /hello, 100 keep-alive connections, ${secs}s; handshakes with openssl s_time $((secs/2))s each;"
echo "# $rounds rounds alternating ra-hello and nginx; server on core 0, load on core 1 ($(nproc) cores)"
for r in $(seq "$rounds"); do
  for s in hello nginx; do
    start_$s
    read -r rps cpu < <(run_wrk "$srv_pid" "$srv_port")
    read -r full fcpu res rcpu < <(run_s_time "$srv_pid" "$srv_port")
    stop "$srv_pid"
    v[$s.rps]+="$rps "; v[$s.cpu]+="$cpu "; v[$s.full]+="$full "; v[$s.res]+="$res "
    v[$s.fcpu]+="$fcpu "; v[$s.rcpu]+="$rcpu "
    printf '  round %d %-6s %8.0f req/s %6.2f us/req | full %5.0f hs/s %6.1f us | resumed %5.0f hs/s %6.1f us\n' \
      "$r" "$s" "$rps" "$cpu" "$full" "$fcpu" "$res" "$rcpu" >&2
  done
done
stats() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {
  m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.2f %.2f %.2f\n", a[1], m, a[NR] }'; }
printf '%-22s %-34s %-34s %s\n' metric "ra-hello min/median/max" "nginx min/median/max" "ratio (medians)"
for m in rps cpu full fcpu res rcpu; do
  read -r hmin hmed hmax < <(echo "${v[hello.$m]}" | stats)
  read -r nmin nmed nmax < <(echo "${v[nginx.$m]}" | stats)
  case $m in rps) name="keep-alive req/s";; cpu) name="server CPU us/req";; full) name="full handshakes/s";; res) name="resumed handshakes/s";;
    fcpu) name="server CPU us/full hs";; rcpu) name="server CPU us/resumed hs";; esac
  printf '%-22s %-34s %-34s %.2f\n' "$name" "$hmin / $hmed / $hmax" "$nmin / $nmed / $nmax" \
    "$(awk -v a="$hmed" -v b="$nmed" 'BEGIN { print (b > 0 ? a / b : 0) }')"
done

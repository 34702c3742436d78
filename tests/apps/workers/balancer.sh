#!/usr/bin/env bash
# A real L4 balancer in front of two ra-hello processes on loopback
# (different ports), the configurations the README documents:
#  - HAProxy (Debian's, TCP mode, roundrobin, health checks, redispatch):
#    ra-curl through it, one tunnel per process, lands on both backends
#    (their JSON access logs); then lb_tunnels.js holds many tunnels with
#    the reference-compatible Node client, backend A is killed: only A's
#    tunnels fail, they reconnect through HAProxy and rekey on B, B's
#    tunnels never notice;
#    the C tunnel client (lb_c_client.c, reconnect on) the same way;
#  - nginx `stream` (the dynamic module of Debian's nginx,
#    libnginx-mod-stream), the same run, when the module is installed (else
#    a printed skip).
set -euo pipefail
: "${RA_BIN:?RA_BIN must point at the bin folder of the build}"
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
. "$here/../../nginx_conf.sh"
sim="$tmp/sim"
c_client=${1:-} # tests/apps/workers/lb_c_client.c, built by CMake

# start_backend NAME [PORT]: sets $be_port, $be_pid; JSON access log in $tmp/NAME.out
start_backend() {
  "$RA_BIN/ra-hello" --listen "127.0.0.1:${2:-0}" --tee sim --sim-dir "$sim" --access-log json \
    >"$tmp/$1.out" 2>"$tmp/$1.err" &
  be_pid=$!
  pids+=("$be_pid")
  for _ in $(seq 1 200); do grep -q '^listening on' "$tmp/$1.out" && break; sleep 0.05; done
  be_port=$(sed -n 's/^listening on http:\/\/127.0.0.1:\([0-9]*\)$/\1/p' "$tmp/$1.out")
  [ -n "$be_port" ] || { cat "$tmp/$1.err"; echo "FAIL backend $1 did not start"; exit 1; }
}
tunnel_lines() { cat "$tmp/$1"*.out | grep -c '"tunnel":true' || true; }

# run_balancer NAME PORT: the checks through a balancer listening on PORT
# in front of backends a and b (started by the caller).
run_balancer() {
  local name=$1 lbp=$2
  for _ in $(seq 1 100); do curl -s --max-time 1 "http://127.0.0.1:$lbp/hello" >/dev/null && break; sleep 0.05; done
  local a0 b0
  a0=$(tunnel_lines a); b0=$(tunnel_lines b)
  local good=0
  for _ in $(seq 1 8); do
    [ "$("$RA_BIN/ra-curl" --trust-sim "$sim" --max-time 10 "http://127.0.0.1:$lbp/hello")" = world ] && good=$((good + 1))
  done
  expect "$name: 8 ra-curl tunnels through the balancer" 8 "$good"
  local da=$(($(tunnel_lines a) - a0)) db=$(($(tunnel_lines b) - b0))
  [ "$da" -gt 0 ] && [ "$db" -gt 0 ] && ok "$name: spread over both backends (A $da, B $db)" \
    || bad "$name: not spread (A $da, B $db)"
  local r
  if r=$(node "$here/lb_tunnels.js" "http://127.0.0.1:$lbp" "http://127.0.0.1:$port_a" \
      "http://127.0.0.1:$port_b" "$pid_a" 12 2>"$tmp/$name.node.err"); then
    ok "$name: backend A killed: only its tunnels failed, reconnected and rekeyed on B: $r"
  else
    bad "$name: $r"; tail -5 "$tmp/$name.node.err"
  fi
  # the C client (reconnect on) through the same balancer: A again first
  if [ -n "$c_client" ]; then
    start_backend "a-$name" "$port_a"; pid_a=$be_pid # on A's port, where the balancer looks
    sleep 1.5 # the balancer sees A up again (health check; nginx: fail_timeout)
    if r=$("$c_client" "http://127.0.0.1:$lbp" "http://127.0.0.1:$port_a" "http://127.0.0.1:$port_b" \
        "$pid_a" "$sim" 8 2>&1); then
      ok "$name: $r"
    else
      bad "$name: $r"
    fi
  fi
}

start_backend a; port_a=$be_port; pid_a=$be_pid
start_backend b; port_b=$be_port; pid_b=$be_pid

# --- HAProxy ----------------------------------------------------------------------
if HAPROXY=$(command -v haproxy || ls /usr/sbin/haproxy 2>/dev/null); then
  hp=$(free_port)
  cat >"$tmp/haproxy.cfg" <<CONF
global
  maxconn 4096
defaults
  mode tcp
  timeout connect 2s
  timeout client 1h
  timeout server 1h
  retries 3
  option redispatch
frontend ra
  bind 127.0.0.1:$hp
  default_backend ra_hello
backend ra_hello
  balance roundrobin
  server a 127.0.0.1:$port_a check inter 200ms fall 1 rise 2
  server b 127.0.0.1:$port_b check inter 200ms fall 1 rise 2
CONF
  "$HAPROXY" -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
  pids+=($!)
  run_balancer haproxy "$hp"
else
  bad "haproxy not installed (scripts/deps.sh installs it)"
fi

# --- nginx stream -------------------------------------------------------------------
ngx_mod=/usr/lib/nginx/modules/ngx_stream_module.so
if NGINX=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null) && [ -f "$ngx_mod" ]; then
  start_backend a2; port_a=$be_port; pid_a=$be_pid # A again (killed above)
  sleep 0.5
  np=$(free_port)
  mkdir -p "$tmp/nginx/logs"
  {
    echo "load_module $ngx_mod;"
    nginx_main "$tmp/nginx" "worker_connections 1024;"
    cat <<CONF
stream {
  upstream ra_hello {
    server 127.0.0.1:$port_a max_fails=1 fail_timeout=1s;
    server 127.0.0.1:$port_b max_fails=1 fail_timeout=1s;
  }
  server {
    listen 127.0.0.1:$np;
    proxy_pass ra_hello;
    proxy_connect_timeout 1s;
    proxy_next_upstream on;
    proxy_timeout 1h;
  }
}
CONF
  } >"$tmp/nginx/nginx.conf"
  "$NGINX" -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx" 2>"$tmp/nginx.err" &
  pids+=($!)
  run_balancer nginx-stream "$np"
else
  echo "skip nginx stream: nginx or its stream module ($ngx_mod, Debian libnginx-mod-stream) is not installed"
fi

if [ "$fails" -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "all passed"

#!/usr/bin/env bash
# ra-proxy end to end, with upstreams this script starts on loopback and a
# unix socket: ra-hello and curl through the proxy (TCP -> TCP, TCP ->
# unix), a WebSocket echo (Node ws), TLS passed through untouched (curl
# verifies openssl s_server's certificate through the proxy); a raw echo upstream (tool.py) for byte-exactness of a few MiB both
# ways with half-close; TCP -> vsock when the kernel's vsock loopback works
# (else a printed skip); 1,000 concurrent proxied connections; a slow
# reader does not grow ra-proxy's RSS; the connection cap; the idle
# timeout; the PROXY v2 header as the upstream sees it (decoded by tool.py
# and by nginx's $proxy_protocol_addr); the environment variables of the
# HTTP Enclave design; bad flags; SIGTERM; and a raloop server with
# ra_http_server_opts.proxy_protocol behind ra-proxy and HAProxy
# (send-proxy-v2, send-proxy), given as $1 (tests/apps/proxy/pp_server.c).
set -euo pipefail
: "${RA_BIN:?RA_BIN must point at the bin folder of the build}"
here=$(cd "$(dirname "$0")" && pwd)
tool=(python3 -u "$here/tool.py")
. "$here/../../lib.sh"
. "$here/../../nginx_conf.sh"
run() { # run NAME CMD...: passes if CMD exits 0, shows its output
  local name=$1; shift
  if out=$("$@" 2>&1); then ok "$name: ${out##*$'\n'}"; else bad "$name"; echo "$out" | sed 's/^/     /' | tail -5; fi
}
# start_proxy NAME ARGS...: runs ra-proxy, sets $px_port and $px_pid
start_proxy() {
  local name=$1; shift
  "$RA_BIN/ra-proxy" "$@" >"$tmp/$name.out" 2>"$tmp/$name.out.err" &
  px_pid=$!
  pids+=("$px_pid")
  wait_for "$tmp/$name.out" '^listening on' "$px_pid" "ra-proxy ($name)"
  px_port=$(sed -n 's/^listening on .*:\([0-9]*\), forwarding.*/\1/p' "$tmp/$name.out")
}
# start_echo NAME ADDR [ARGS]: sets $echo_port
start_echo() {
  local name=$1; shift
  "${tool[@]}" echo "$@" >"$tmp/$name.out" 2>"$tmp/$name.out.err" &
  pids+=($!)
  wait_for "$tmp/$name.out" '^READY' $! "$name"
  echo_port=$(sed -n 's/^READY //p' "$tmp/$name.out")
}
CURL=(curl -s --max-time 10)

# ---- upstreams ------------------------------------------------------------
"$RA_BIN/ra-hello" --listen 127.0.0.1:0 --quiet >"$tmp/hello.out" 2>"$tmp/hello.out.err" &
pids+=($!)
wait_for "$tmp/hello.out" 'listening on' $! ra-hello
hello_port=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$tmp/hello.out" | head -1)
"$RA_BIN/ra-hello" --listen "unix:$tmp/hello.sock" --quiet >"$tmp/hellou.out" 2>"$tmp/hellou.out.err" &
pids+=($!)
wait_for "$tmp/hellou.out" 'listening on' $! ra-hello-unix
start_echo echo tcp:127.0.0.1:0
echo_tcp=$echo_port
start_echo echou "unix:$tmp/echo.sock"
start_echo source tcp:127.0.0.1:0 --source $((200 << 20))
source_port=$echo_port
start_echo pp tcp:127.0.0.1:0 --proxy-v2 "$tmp/pp.log"
pp_port=$echo_port

# ---- TCP -> TCP ---------------------------------------------------------------
start_proxy tcp --listen 127.0.0.1:0 --to "tcp:127.0.0.1:$hello_port" -v
expect "tcp->tcp: curl /hello through ra-proxy" world "$("${CURL[@]}" "http://127.0.0.1:$px_port/hello")"
if [ -d "$here/../../node_modules/ws" ]; then
  ws_got=$(NODE_PATH="$here/../../node_modules" timeout 20 node -e '
    const WebSocket = require("ws");
    const ws = new WebSocket("ws://127.0.0.1:" + process.argv[1] + "/echo");
    const big = Buffer.alloc(1 << 20, 7);
    let n = 0;
    ws.on("open", () => { ws.send("hello through ra-proxy"); ws.send(big); });
    ws.on("message", (m, bin) => {
      if (++n === 1) console.log(m.toString());
      else { console.log(bin && Buffer.compare(m, big) === 0 ? "1 MiB binary echoed" : "binary differs"); ws.close(); }
    });
    ws.on("error", (e) => { console.log("error " + e.message); process.exit(1); });
  ' "$px_port" | tr '\n' '|')
  expect "tcp->tcp: WebSocket /echo through ra-proxy (Node ws)" "hello through ra-proxy|1 MiB binary echoed|" "$ws_got"
else
  echo "skip WebSocket through ra-proxy: no tests/node_modules/ws (scripts/deps.sh)"
fi
head -c 3000000 /dev/urandom >"$tmp/body.bin"
"${CURL[@]}" --data-binary "@$tmp/body.bin" -H 'Content-Type: application/octet-stream' \
  "http://127.0.0.1:$px_port/echo" -o "$tmp/body.back"
if cmp -s "$tmp/body.bin" "$tmp/body.back"; then ok "tcp->tcp: 3 MB POST /echo byte-exact"; else bad "tcp->tcp: POST /echo differs"; fi
# keep-alive: several requests on one proxied connection
n=$("${CURL[@]}" "http://127.0.0.1:$px_port/hello" "http://127.0.0.1:$px_port/hello" "http://127.0.0.1:$px_port/hello" -w '\n' | grep -c world)
expect "tcp->tcp: 3 keep-alive requests on one connection" 3 "$n"
sleep 0.1
if grep -q "debug ra-proxy: 127.0.0.1:[0-9]* -> tcp:127.0.0.1:$hello_port: [0-9]* B up, [0-9]* B down" "$tmp/tcp.out.err"; then
  ok "tcp->tcp: one debug line per connection"; else bad "tcp->tcp: no per-connection line"; cat "$tmp/tcp.out.err"; fi
kill -TERM "$px_pid"; wait "$px_pid" && rc=0 || rc=$?
expect "SIGTERM with no connection: exit 0" 0 "$rc"

start_proxy raw --listen 127.0.0.1:0 --to "tcp:127.0.0.1:$echo_tcp"
run "tcp->tcp: 8 MiB echoed byte-exact, half-close" "${tool[@]}" client "127.0.0.1:$px_port" $((8 << 20))
run "tcp->tcp: 1,000 concurrent connections" "${tool[@]}" many "127.0.0.1:$px_port" 1000
raw_port=$px_port raw_pid=$px_pid

# ---- TCP -> unix --------------------------------------------------------------
start_proxy unix --listen 127.0.0.1:0 --to "unix:$tmp/hello.sock"
expect "tcp->unix: curl /hello through ra-proxy" world "$("${CURL[@]}" "http://127.0.0.1:$px_port/hello")"
start_proxy unixe --listen 127.0.0.1:0 --to "unix:$tmp/echo.sock"
run "tcp->unix: 8 MiB echoed byte-exact, half-close" "${tool[@]}" client "127.0.0.1:$px_port" $((8 << 20))

# ---- TLS passes through untouched (the HTTP Enclave's case) ----------------------
if command -v openssl >/dev/null; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
  tls_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  openssl s_server -accept "127.0.0.1:$tls_port" -cert "$tmp/cert.pem" -key "$tmp/key.pem" -www -quiet \
    >/dev/null 2>&1 </dev/null &
  pids+=($!)
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$tls_port") 2>/dev/null && break; sleep 0.05; done
  start_proxy tls --listen 127.0.0.1:0 --to "tcp:127.0.0.1:$tls_port"
  got=$(curl -s --max-time 10 --cacert "$tmp/cert.pem" --resolve "localhost:$px_port:127.0.0.1" \
    "https://localhost:$px_port/" | grep -c "^s_server -accept" || true)
  expect "TLS through ra-proxy: curl verifies the upstream's own certificate" 1 "$got"
else
  echo "skip TLS passthrough: no openssl"
fi

# ---- read/write fallback (what vsock gets when it cannot splice) ---------------
start_proxy nosplice --listen 127.0.0.1:0 --to "tcp:127.0.0.1:$echo_tcp" --no-splice
run "tcp->tcp --no-splice: 8 MiB echoed byte-exact" "${tool[@]}" client "127.0.0.1:$px_port" $((8 << 20))

# ---- TCP -> vsock -------------------------------------------------------------
vsock_port=$((20000 + RANDOM % 20000))
why=$(python3 - "$vsock_port" <<'PY' 2>&1
import socket, sys
try:
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.bind((socket.VMADDR_CID_ANY, int(sys.argv[1]))); s.listen(1)
    c = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM); c.settimeout(1)
    c.connect((1, int(sys.argv[1])))
except Exception as e:
    print("%s: %s" % (type(e).__name__, e)); sys.exit(1)
PY
) && vs=yes || vs=no
if [ "$vs" = yes ]; then
  start_echo echov "vsock:4294967295:$((vsock_port + 1))"
  start_proxy vsock --listen 127.0.0.1:0 --to "vsock:1:$((vsock_port + 1))"
  run "tcp->vsock: 4 MiB echoed byte-exact" "${tool[@]}" client "127.0.0.1:$px_port" $((4 << 20))
else
  echo "skip tcp->vsock: the kernel's vsock loopback (CID 1) does not work here ($why; modprobe vsock_loopback needs the host)"
fi

# ---- slow reader: bounded memory ------------------------------------------------
start_proxy slow --listen 127.0.0.1:0 --to "tcp:127.0.0.1:$source_port"
run "slow reader: 200 MiB pushed, RSS flat" "${tool[@]}" slow "127.0.0.1:$px_port" $((200 << 20)) "$px_pid"
start_proxy slownos --listen 127.0.0.1:0 --to "tcp:127.0.0.1:$source_port" --no-splice
run "slow reader (--no-splice): 200 MiB pushed, RSS flat" "${tool[@]}" slow "127.0.0.1:$px_port" $((200 << 20)) "$px_pid"

# ---- connection cap, idle timeout --------------------------------------------------
start_proxy cap --listen 127.0.0.1:0 --to "tcp:127.0.0.1:$echo_tcp" --max-conns 5
run "--max-conns 5: the 6th is closed at once" "${tool[@]}" cap "127.0.0.1:$px_port" 5
start_proxy idle --listen 127.0.0.1:0 --to "tcp:127.0.0.1:$echo_tcp" --idle-timeout 400ms
run "--idle-timeout 400ms" "${tool[@]}" idle "127.0.0.1:$px_port" 400

# ---- PROXY protocol v2 ---------------------------------------------------------
start_proxy pp --listen 127.0.0.1:0 --to "tcp:127.0.0.1:$pp_port" --proxy-protocol
me=$("${tool[@]}" whoami "127.0.0.1:$px_port")
expect "--proxy-protocol: the payload follows the header" hello "${me#* }"
sleep 0.1
expect "--proxy-protocol: the upstream decodes the client's address" \
  "PROXY ${me%% *} 127.0.0.1:$px_port" "$(tail -1 "$tmp/pp.log")"
if NGINX=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null); then
  ng_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$tmp/nginx/logs" "$tmp/nginx/tmp"
  {
    nginx_main "$tmp/nginx" "worker_connections 64;"
    cat <<CONF
http {
  log_format pp '\$proxy_protocol_addr:\$proxy_protocol_port \$remote_addr "\$request" \$status';
  access_log $tmp/nginx/logs/access.log pp;
$(nginx_temp_paths "$tmp/nginx")
  server {
    listen 127.0.0.1:$ng_port proxy_protocol;
    location / { return 200 "nginx saw \$proxy_protocol_addr\n"; }
  }
}
CONF
  } >"$tmp/nginx/nginx.conf"
  "$NGINX" -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx" 2>"$tmp/nginx.err" &
  pids+=($!)
  for _ in $(seq 1 100); do [ -f "$tmp/nginx/nginx.pid" ] && break; sleep 0.05; done
  sleep 0.2
  start_proxy ppn --listen 127.0.0.1:0 --to "tcp:127.0.0.1:$ng_port" --proxy-protocol
  expect "--proxy-protocol into nginx (listen ... proxy_protocol)" "nginx saw 127.0.0.4" \
    "$("${CURL[@]}" --interface 127.0.0.4 "http://127.0.0.1:$px_port/x")"
  sleep 0.2
  if grep -q "^127.0.0.4:[1-9][0-9]* 127.0.0.1 \"GET /x HTTP/1.1\" 200" "$tmp/nginx/logs/access.log"; then
    ok "nginx logs the client's address and port from the PROXY v2 header"
  else bad "nginx access log"; cat "$tmp/nginx/logs/access.log" "$tmp/nginx.err"; fi
else
  echo "skip PROXY v2 into nginx: nginx not installed"
fi

# ---- a raloop server with proxy_protocol behind ra-proxy and HAProxy ------------
pp_server=${1:-}
if [ -n "$pp_server" ] && [ -x "$pp_server" ]; then
  "$pp_server" 127.0.0.1:0 >"$tmp/pps.out" 2>"$tmp/pps.out.err" &
  pids+=($!)
  wait_for "$tmp/pps.out" '^listening on' $! pp_server
  pps_port=$(sed -n 's/^listening on //p' "$tmp/pps.out")
  start_proxy pps --listen 127.0.0.1:0 --to "tcp:127.0.0.1:$pps_port" --proxy-protocol
  # the client from 127.0.0.5: the server's socket peer is ra-proxy's 127.0.0.1
  expect "ra-proxy --proxy-protocol -> ra_http_server proxy_protocol: ra_req_peer" "peer=127.0.0.5" \
    "$("${CURL[@]}" --interface 127.0.0.5 "http://127.0.0.1:$px_port/peer")"
  code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' "http://127.0.0.1:$pps_port/peer") && crc=0 || crc=$?
  expect "a direct connection without the header is refused" 000 "$code"
  # closed after connecting (52 empty reply, 56 reset), not refused by a dead server (7)
  case $crc in 52|56) ok "  curl: connected, then closed (exit $crc)";; *) bad "  curl exit $crc, want 52 or 56";; esac
  if HAPROXY=$(command -v haproxy || ls /usr/sbin/haproxy 2>/dev/null); then
    free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
    h2=$(free) h1=$(free)
    cat >"$tmp/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 100
defaults
  mode tcp
  timeout connect 5s
  timeout client 10s
  timeout server 10s
listen v2
  bind 127.0.0.2:$h2
  server s 127.0.0.1:$pps_port send-proxy-v2
listen v1
  bind [::1]:$h1
  server s 127.0.0.1:$pps_port send-proxy
CONF
    "$HAPROXY" -f "$tmp/haproxy.cfg" -db >"$tmp/haproxy.out" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.2/$h2") 2>/dev/null && break; sleep 0.05; done
    expect "HAProxy send-proxy-v2 -> ra_http_server: the client's address" "peer=127.0.0.3" \
      "$("${CURL[@]}" --interface 127.0.0.3 "http://127.0.0.2:$h2/peer")"
    if (exec 3<>"/dev/tcp/::1/$h1") 2>/dev/null; then
      expect "HAProxy send-proxy (v1, IPv6 client) -> ra_http_server" "peer=::1" "$("${CURL[@]}" "http://[::1]:$h1/peer")"
    else
      echo "skip HAProxy send-proxy over IPv6: no ::1 here"
    fi
  else
    echo "skip HAProxy -> ra_http_server: haproxy not installed (scripts/deps.sh)"
  fi
else
  echo "skip ra_http_server proxy_protocol: no pp_server given"
fi

# ---- environment (the HTTP Enclave design), bad flags ------------------------------
env_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BIND_ADDR=127.0.0.1:$env_port ENCLAVE_CID=7 ENCLAVE_PORT=6006 start_proxy env
expect "BIND_ADDR, ENCLAVE_CID, ENCLAVE_PORT" "listening on 127.0.0.1:$env_port, forwarding to vsock:7:6006" \
  "$(head -1 "$tmp/env.out")"
BIND_ADDR=127.0.0.1:0 start_proxy envd
expect "defaults: vsock CID 16 port 5005" "forwarding to vsock:16:5005" "$(sed 's/.*, //' "$tmp/envd.out")"
for args in "--to bogus:1" "--to tcp:127.0.0.1" "--to vsock:x:1" "--max-conns 0" "--idle-timeout soon" \
            "--listen nonsense" "--frobnicate" "--to"; do
  # shellcheck disable=SC2086
  "$RA_BIN/ra-proxy" --listen 127.0.0.1:0 $args >/dev/null 2>"$tmp/bad.err" && rc=0 || rc=$?
  if [ "$rc" = 2 ] && grep -q "ra-proxy: " "$tmp/bad.err"; then ok "bad flags '$args': exit 2, $(head -1 "$tmp/bad.err")"
  else bad "bad flags '$args': exit $rc"; cat "$tmp/bad.err"; fi
done
ENCLAVE_CID=abc "$RA_BIN/ra-proxy" --listen 127.0.0.1:0 >/dev/null 2>"$tmp/bad.err" && rc=0 || rc=$?
expect "ENCLAVE_CID=abc: exit 2" 2 "$rc"
"$RA_BIN/ra-proxy" --listen 127.0.0.1:$hello_port --to tcp:127.0.0.1:1 >/dev/null 2>"$tmp/bad.err" && rc=0 || rc=$?
expect "port in use: exit 1" 1 "$rc"

# ---- upstream down, SIGTERM with a connection open -------------------------------
dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_proxy down --listen 127.0.0.1:0 --to "tcp:127.0.0.1:$dead"
code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' "http://127.0.0.1:$px_port/") && crc=0 || crc=$?
expect "upstream down: the client's connection is closed" 000 "$code"
case $crc in 52|56) ok "  curl: ra-proxy accepted, then closed (exit $crc)";; *) bad "  curl exit $crc, want 52 or 56";; esac
sleep 0.1
if grep -q "warn.*upstream tcp:127.0.0.1:$dead: Connection refused" "$tmp/down.out.err"; then ok "upstream down: a warning"; else bad "upstream down: no warning"; cat "$tmp/down.out.err"; fi

start_proxy grace --listen 127.0.0.1:0 --to "tcp:127.0.0.1:$echo_tcp" --grace 300ms
python3 -u -c "import socket,time; s=socket.create_connection(('127.0.0.1',$px_port)); s.sendall(b'x'); s.recv(1); print('held', flush=True); time.sleep(5)" >"$tmp/holder.out" &
holder=$!
wait_for "$tmp/holder.out" '^held' "$holder" holder
t0=$(date +%s%N)
kill -TERM "$px_pid"; wait "$px_pid" && rc=0 || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
kill "$holder" 2>/dev/null || true; wait "$holder" 2>/dev/null || true
if [ "$rc" = 0 ] && [ "$ms" -ge 250 ] && [ "$ms" -lt 3000 ]; then ok "SIGTERM with a connection open: exit 0 after the grace period (${ms} ms)"
else bad "SIGTERM with a connection: exit $rc after $ms ms"; fi

kill -TERM "$raw_pid"; wait "$raw_pid" && rc=0 || rc=$?
expect "ra-proxy after 1,000 connections: SIGTERM exit 0" 0 "$rc"
if [ -s "$tmp/raw.out.err" ] && grep -v "stopping\|debug" "$tmp/raw.out.err" | grep -q .; then
  bad "unexpected log lines"; cat "$tmp/raw.out.err"; else ok "no warning in the bulk runs"; fi

if [ "$fails" -gt 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "all ra-proxy checks passed"

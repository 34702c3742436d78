#!/usr/bin/env bash
# ra-gateway (http/proxy.c) against upstreams this script starts on
# loopback and a unix socket: Python's http.server (static files, HEAD,
# 404), a Node upstream (upstream.js: large and binary POST echo, chunked,
# slow, stalled and abruptly closed answers, hop-by-hop headers) and nginx
# serving a file; in plaintext with curl and through the attested tunnel
# with ra-curl / ra-bench (simulated TEE). Policy: attested-only (403 in
# plaintext, never reaching the upstream: its log shows it), refused
# prefixes, spoofed X-Attested stripped; upstream down -> 502, stall -> 504;
# 1,000 tunnelled requests in flight; a 1 GiB response streamed in bounded
# memory, also to a slow reader; WebSockets relayed (ws_check.js).
set -euo pipefail
: "${RA_BIN:?RA_BIN must point at the bin folder of the build}"
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
. "$here/../../nginx_conf.sh"
# case-insensitive: header names
has() { # has NAME PATTERN FILE
  if grep -qi -- "$2" "$3"; then ok "$1"; else bad "$1: no '$2' in $3"; sed 's/^/     /' "$3" | head -20; fi
}
hasnt() { # hasnt NAME PATTERN FILE
  if grep -qi -- "$2" "$3"; then bad "$1: '$2' in $3"; sed 's/^/     /' "$3" | head -20; else ok "$1"; fi
}
sim="$tmp/sim"
CURL=(curl -s --max-time 20)
RACURL=("$RA_BIN/ra-curl" --trust-sim "$sim" --max-time 20)

# ---- upstreams ----------------------------------------------------------------
mkdir -p "$tmp/www/dir"
echo "hello from python" >"$tmp/www/a.txt"
head -c 3000000 /dev/urandom >"$tmp/www/blob.bin"
py_port=$(free_port)
python3 -u -m http.server "$py_port" --bind 127.0.0.1 -d "$tmp/www" >"$tmp/py.out" 2>"$tmp/py.log" &
pids+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$py_port/" && break; sleep 0.05; done

node "$here/upstream.js" "$tmp/up.log" 0 >"$tmp/up.out" 2>"$tmp/up.out.err" &
pids+=($!)
wait_for "$tmp/up.out" '^PORT ' $! upstream
up_port=$(sed -n 's/^PORT //p' "$tmp/up.out")
node "$here/upstream.js" "$tmp/upu.log" "unix:$tmp/up.sock" >"$tmp/upu.out" 2>"$tmp/upu.out.err" &
pids+=($!)
wait_for "$tmp/upu.out" '^UNIX ' $! upstream-unix

nginx_port=
if NGINX=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null); then
  nginx_port=$(free_port)
  mkdir -p "$tmp/nginx/logs" "$tmp/nginx/tmp" "$tmp/nginx/www"
  head -c 200000 /dev/urandom >"$tmp/nginx/www/file.bin"
  {
    nginx_main "$tmp/nginx" "worker_connections 256;"
    cat <<CONF
http {
  access_log off;
$(nginx_temp_paths "$tmp/nginx")
  server {
    listen 127.0.0.1:$nginx_port;
    root $tmp/nginx/www;
  }
}
CONF
  } >"$tmp/nginx/nginx.conf"
  "$NGINX" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" 2>"$tmp/nginx/stderr" &
  pids+=($!)
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$nginx_port/file.bin" && break; sleep 0.05; done
fi

# ---- gateways -------------------------------------------------------------------
# start NAME UPSTREAM ARGS...: sets NAME_port
start_gw() {
  local name=$1 up=$2; shift 2
  "$RA_BIN/ra-gateway" --listen 127.0.0.1:0 --upstream "$up" --tee sim --sim-dir "$sim" "$@" \
    >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
  eval "${name}_pid=$!"
  wait_for "$tmp/$name.out" '^listening on http://' $! "$name"
  eval "${name}_port=$(sed -n 's/^listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/$name.out")"
}
start_gw gn "http://127.0.0.1:$up_port" --attested-only /private --refuse /admin --plain /private/health \
  --timeout-ms 1500 --connect-timeout-ms 1000
start_gw gu "unix:$tmp/up.sock" --max-body $((32 * 1024 * 1024))
start_gw gp "http://127.0.0.1:$py_port"
dead_port=$(free_port)
start_gw gd "http://127.0.0.1:$dead_port" --connect-timeout-ms 1000
N="http://127.0.0.1:$gn_port" U="http://127.0.0.1:$gu_port" P="http://127.0.0.1:$gp_port"

# ---- Python http.server -----------------------------------------------------------
expect "python: GET a static file" "hello from python" "$("${CURL[@]}" "$P/a.txt")"
"${CURL[@]}" "$P/blob.bin" -o "$tmp/blob.got"
cmp -s "$tmp/blob.got" "$tmp/www/blob.bin" && ok "python: 3 MB binary file" || bad "python: 3 MB binary file differs"
"${CURL[@]}" -I "$P/a.txt" >"$tmp/head.txt"
has "python: HEAD 200" "^HTTP/1.1 200" "$tmp/head.txt"
has "python: HEAD keeps Content-Length" "^Content-Length: 18" "$tmp/head.txt"
expect "python: 404" 404 "$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$P/missing")"
expect "python: directory listing" 200 "$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$P/")"
expect "python: through the tunnel (ra-curl)" "hello from python" "$("${RACURL[@]}" "$P/a.txt")"
"${RACURL[@]}" -o "$tmp/blob.t" "$P/blob.bin"
cmp -s "$tmp/blob.t" "$tmp/www/blob.bin" && ok "python: binary file through the tunnel" || bad "python: binary file through the tunnel differs"

# ---- Node upstream: bodies ----------------------------------------------------------
head -c $((8 * 1024 * 1024)) /dev/urandom >"$tmp/big.bin"
sum=$(sha256sum "$tmp/big.bin" | cut -d' ' -f1)
"${CURL[@]}" -H 'Content-Type: application/x-test' --data-binary @"$tmp/big.bin" -D "$tmp/echo.h" "$N/echo" -o "$tmp/echo.out"
cmp -s "$tmp/echo.out" "$tmp/big.bin" && ok "node: 8 MiB binary POST echo" || bad "node: 8 MiB POST echo differs"
has "node: upstream saw the same 8 MiB" "x-body-sha256: $sum" "$tmp/echo.h"
has "node: Content-Type passed both ways" "content-type: application/x-test" "$tmp/echo.h"
"${CURL[@]}" --data-binary @"$tmp/big.bin" "$U/echo" -o "$tmp/echo.u"
cmp -s "$tmp/echo.u" "$tmp/big.bin" && ok "unix socket upstream: 8 MiB POST echo" || bad "unix upstream: echo differs"
cat "$tmp/big.bin" "$tmp/big.bin" "$tmp/big.bin" >"$tmp/big24.bin"
"${CURL[@]}" --data-binary @"$tmp/big24.bin" "$U/echo" -o "$tmp/echo24.u"
cmp -s "$tmp/echo24.u" "$tmp/big24.bin" && ok "--max-body 32 MiB: 24 MiB POST echo" || bad "24 MiB echo differs"
expect "over the default body limit: 413" 413 "$("${CURL[@]}" -o /dev/null -w '%{http_code}' --data-binary @"$tmp/big24.bin" "$N/echo")"
rm -f "$tmp/big24.bin" "$tmp/echo24.u"
head -c $((1024 * 1024)) /dev/urandom >"$tmp/m.bin"
"${RACURL[@]}" --data-binary @"$tmp/m.bin" -o "$tmp/echo.t" "$N/echo"
cmp -s "$tmp/echo.t" "$tmp/m.bin" && ok "node: 1 MiB binary POST echo through the tunnel" || bad "node: tunnel echo differs"
printf 'a\0b\r\n\xff' >"$tmp/nul.bin"
"${CURL[@]}" --data-binary @"$tmp/nul.bin" "$N/echo" -o "$tmp/nul.out"
cmp -s "$tmp/nul.out" "$tmp/nul.bin" && ok "node: NUL/CR/LF bytes echoed" || bad "node: binary bytes differ"
expect "node: empty POST" "" "$("${CURL[@]}" -X POST "$N/echo")"
expect "node: chunked answer (1000 chunks)" 1000 "$("${CURL[@]}" "$N/chunked?n=1000" | grep -c '^chunk ')"
expect "node: chunked answer through the tunnel" 200 "$("${RACURL[@]}" "$N/chunked?n=200" | grep -c '^chunk ')"
expect "node: slow answer (400 ms)" slow "$("${CURL[@]}" "$N/slow?ms=400")"
# keep-alive: several requests on one client connection, the pool reused
"${CURL[@]}" "$N/hello" "$N/hello" "$N/hello" >"$tmp/ka.out"
expect "node: keep-alive, three requests" worldworldworld "$(cat "$tmp/ka.out")"

# ---- headers ------------------------------------------------------------------------
"${CURL[@]}" -H 'X-Attested: 1' -H 'x-attested: yes' -H 'Connection: X-Secret' -H 'X-Secret: s' \
  -H 'TE: trailers' -H 'Proxy-Authorization: Basic Zm9v' -H 'X-Forwarded-For: 10.9.9.9' "$N/headers" >"$tmp/h.json"
hasnt "spoofed X-Attested stripped (plaintext)" '"x-attested"' "$tmp/h.json"
hasnt "header named by Connection stripped" '"x-secret"' "$tmp/h.json"
hasnt "TE stripped" '"te"' "$tmp/h.json"
hasnt "Proxy-Authorization stripped" '"proxy-authorization"' "$tmp/h.json"
has "X-Forwarded-For appended" '"x-forwarded-for":"10.9.9.9, 127.0.0.1"' "$tmp/h.json"
has "Forwarded added" '"forwarded":"for=127.0.0.1;host=' "$tmp/h.json"
has "X-Forwarded-Proto" '"x-forwarded-proto":"http"' "$tmp/h.json"
"${RACURL[@]}" -H 'X-Attested: 0' "$N/headers" >"$tmp/ht.json"
has "tunnelled: X-Attested: 1 (client's value replaced)" '"x-attested":"1"' "$tmp/ht.json"
"${CURL[@]}" -i "$N/hop" >"$tmp/hop.txt"
has "hop: end-to-end header kept" '^X-End-To-End: kept' "$tmp/hop.txt"
for h in X-Hop-Custom Keep-Alive Proxy-Authenticate Trailer Upgrade; do
  hasnt "hop: $h removed from the answer" "^$h:" "$tmp/hop.txt"
done

# ---- policy ---------------------------------------------------------------------------
before=$(grep -c '"/private' "$tmp/up.log" || true)
expect "attested-only in plaintext: 403" 403 "$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$N/private")"
expect "attested-only subpath in plaintext: 403" 403 "$("${CURL[@]}" -o /dev/null -w '%{http_code}' -X POST -d x "$N/private/x")"
expect "attested-only, dot segments do not escape: 403 or 400" 1 \
  "$("${CURL[@]}" --path-as-is -o /dev/null -w '%{http_code}' "$N/public/../private" | grep -c '^40[03]$')"
after=$(grep -c '"/private' "$tmp/up.log" || true)
expect "plaintext attested-only requests never reached the upstream" "$before" "$after"
expect "attested-only through the tunnel" "attested=1" "$("${RACURL[@]}" "$N/private")"
expect "plain prefix under an attested-only one" 404 "$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$N/private/health")"
expect "refused prefix: 404" 404 "$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$N/admin/x")"
hasnt "refused prefix never reached the upstream" '"/admin' "$tmp/up.log"
expect "a prefix is segment-wise (/administrator passes)" 404 "$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$N/administrator")"
has "/administrator reached the upstream" '"/administrator' "$tmp/up.log"

# ---- failures ----------------------------------------------------------------------------
code=$("${CURL[@]}" -o "$tmp/down.txt" -w '%{http_code}' "http://127.0.0.1:$gd_port/x")
expect "upstream down: 502" 502 "$code"
has "upstream down: a clear body" "bad gateway: cannot connect to the upstream" "$tmp/down.txt"
t0=$(date +%s%N)
code=$("${CURL[@]}" -o "$tmp/stall.txt" -w '%{http_code}' "$N/stall")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect "upstream stall: 504" 504 "$code"
has "upstream stall: a clear body" "gateway timeout: the upstream did not answer" "$tmp/stall.txt"
[ "$ms" -ge 1300 ] && [ "$ms" -lt 6000 ] && ok "upstream stall: answered after the 1.5 s timeout ($ms ms)" || bad "stall took $ms ms"
expect "upstream closes without answering: 502" 502 "$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$N/close")"
rc=0; "${CURL[@]}" -o /dev/null "$N/cut" || rc=$?
[ "$rc" != 0 ] && ok "answer cut short upstream: the client sees a broken body (curl exit $rc)" || bad "cut answer looked complete"
rc=0; "${CURL[@]}" -o /dev/null "$N/cutchunked" || rc=$?
[ "$rc" != 0 ] && ok "chunked answer cut short upstream: no last chunk for the client (curl exit $rc)" || bad "cut chunked answer looked complete"
# through the tunnel: never a shorter body passed off as complete
rc=0; "${RACURL[@]}" --fail -o /dev/null "$N/cut" 2>/dev/null || rc=$?
[ "$rc" = 22 ] && ok "answer cut short upstream, through the tunnel whole: 502 (ra-curl --fail exit 22)" ||
  bad "cut answer through the tunnel: ra-curl exit $rc, want 22"
rc=0; "${RACURL[@]}" -o "$tmp/cutbig" "$N/cutbig" 2>"$tmp/cutbig.err" || rc=$?
[ "$rc" = 18 ] && ok "answer cut short upstream, streamed through the tunnel: http_cancel (ra-curl exit 18)" ||
  bad "cut streamed answer through the tunnel: ra-curl exit $rc, want 18 ($(head -c 200 "$tmp/cutbig.err"))"
expect "after the failures the gateway still answers" world "$("${CURL[@]}" "$N/hello")"
expect "upstream down through the tunnel: 502" 502 \
  "$("${RACURL[@]}" -i "http://127.0.0.1:$gd_port/x" | head -1 | awk '{print $1}')"

# ---- WebSockets -------------------------------------------------------------------------------
if node "$here/ws_check.js" "ws://127.0.0.1:$gn_port" "$tmp/up.log" >"$tmp/ws.out" 2>&1; then
  sed 's/^/  /' "$tmp/ws.out"; ok "WebSockets relayed"
else
  cat "$tmp/ws.out"; bad "WebSockets"
fi
if node "$here/ws_tunnel_check.js" "http://127.0.0.1:$gn_port" "$tmp/up.log" >"$tmp/wst.out" 2>&1; then
  sed 's/^/  /' "$tmp/wst.out"; ok "WebSocket through the tunnel relayed"
else
  cat "$tmp/wst.out"; bad "WebSocket through the tunnel"
fi
has "ws: the upstream saw X-Forwarded-For" '"UPGRADE","url":"/ws/echo","headers":{[^}]*"x-forwarded-for":"127.0.0.1"' "$tmp/up.log"

# ---- nginx ----------------------------------------------------------------------------------
if [ -n "$nginx_port" ]; then
  start_gw gx "http://127.0.0.1:$nginx_port"
  X="http://127.0.0.1:$gx_port"
  "${CURL[@]}" "$X/file.bin" -o "$tmp/nx.bin"
  cmp -s "$tmp/nx.bin" "$tmp/nginx/www/file.bin" && ok "nginx: file in plaintext" || bad "nginx: file differs"
  "${RACURL[@]}" -o "$tmp/nxt.bin" "$X/file.bin"
  cmp -s "$tmp/nxt.bin" "$tmp/nginx/www/file.bin" && ok "nginx: file through the tunnel" || bad "nginx: tunnel file differs"
  expect "nginx: 404" 404 "$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$X/none")"
else
  echo "skip nginx: not installed"
fi

# ---- 1,000 tunnelled requests in flight ---------------------------------------------------------
if "$RA_BIN/ra-bench" --scenario concurrent --tunnel --concurrent 1000 --rounds 1 --trust-sim "$sim" \
    --quiet "$N" >"$tmp/bench.out" 2>"$tmp/bench.err"; then
  ok "1,000 tunnelled requests in flight through the gateway, none lost"
else
  bad "ra-bench concurrent 1000 failed"; cat "$tmp/bench.out" "$tmp/bench.err" | tail -20
fi
hellos=$(grep -c '"/hello"' "$tmp/up.log" || true)
[ "$hellos" -ge 1000 ] && ok "the upstream saw them ($hellos GET /hello)" || bad "upstream saw only $hellos"

# ---- large streamed response, bounded memory --------------------------------------------------
hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
base=$(hwm "$gn_pid")
"${CURL[@]}" --max-time 120 "$N/big?mb=1024" -o /dev/null -w '%{size_download}\n' >"$tmp/bigsize"
expect "1 GiB streamed through the gateway" $((1024 * 1024 * 1024)) "$(cat "$tmp/bigsize")"
"${CURL[@]}" --max-time 60 --limit-rate 8M "$N/big?mb=24" -o /dev/null -w '%{size_download}\n' >"$tmp/slowsize"
expect "24 MiB to a slow reader (8 MB/s)" $((24 * 1024 * 1024)) "$(cat "$tmp/slowsize")"
grow=$(( $(hwm "$gn_pid") - base ))
[ "$grow" -lt 65536 ] && ok "gateway peak memory grew ${grow} kB (< 64 MiB) for 1 GiB + 24 MiB streamed" \
  || bad "gateway peak memory grew ${grow} kB"

# ---- graceful stop: every gateway exits 0, and (sanitizer builds) reports nothing
gws=(gn gu gp gd)
[ -n "$nginx_port" ] && gws+=(gx)
for g in "${gws[@]}"; do
  pid=$(eval echo "\$${g}_pid")
  kill -TERM "$pid"
  rc=0; wait "$pid" || rc=$?
  expect "ra-gateway ($g) stops on SIGTERM with status 0" 0 "$rc"
  hasnt "ra-gateway ($g): no sanitizer report" 'Sanitizer\|runtime error' "$tmp/$g.err"
done

echo "$fails failure(s)"
[ "$fails" = 0 ]

#!/usr/bin/env bash
# tests/tls/https.sh: ra-hello's --listen-tls with real clients. curl over
# HTTPS (GET, keep-alive, POST body, verification), openssl s_client (ALPN
# http/1.1, TLS 1.1 refused, SNI between three certificates, session
# resumption), a plain listener beside, garbage instead of a ClientHello, a
# stalled handshake closed after the timeout, SIGHUP reload while clients
# loop (no failed request, new certificate served, a bad reload keeps the
# old one), start-up errors; then WSS, the relay and the tunnel over wss://
# (tests/tls/wss.js, Node).
set -euo pipefail
BIN=${RA_BIN:?RA_BIN must point at the built programs}
SRC=${RA_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$(dirname "$0")/../lib.sh"
trap '' PIPE # a write to a socket the server closed fails (EPIPE) instead of killing the script

"$SRC/tests/tls/mkcerts.sh" "$tmp/c"
C=$tmp/c
cp "$C/server.pem" "$tmp/live.pem"
cp "$C/server.key" "$tmp/live.key"

# ---- start-up errors ---------------------------------------------------------
set +e
"$BIN/ra-hello" --no-tunnel --listen-tls 127.0.0.1:0 --cert "$C/server.pem" --key "$tmp/nope.key" \
  >/dev/null 2>"$tmp/e1"
rc1=$?
"$BIN/ra-hello" --no-tunnel --listen-tls 127.0.0.1:0 --cert "$C/server.pem" --key "$C/mismatch.key" \
  >/dev/null 2>"$tmp/e2"
rc2=$?
set -e
check "unreadable key: exit 1" [ "$rc1" = 1 ]
check "unreadable key: clear message" grep -q "TLS: cannot read $tmp/nope.key: No such file or directory" "$tmp/e1"
check "mismatched key: exit 1" [ "$rc2" = 1 ]
check "mismatched key: clear message" grep -q "TLS: $C/mismatch.key does not match $C/server.pem" "$tmp/e2"

# ---- the server ----------------------------------------------------------------
"$BIN/ra-hello" --listen 127.0.0.1:0 --listen-tls 127.0.0.1:0 \
  --cert "$tmp/live.pem" --key "$tmp/live.key" --cert "$C/a.pem" --key "$C/a.key" \
  --cert "$C/b.pem" --key "$C/b.key" --tls-handshake-timeout-ms 700 \
  --tee sim --sim-dir "$tmp/sim" >"$tmp/out" 2>"$tmp/log" &
pid=$!
pids+=("$pid")
for _ in $(seq 200); do grep -q '^listening on https' "$tmp/out" && break; sleep 0.05; done
port=$(sed -n 's/^listening on https:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/out")
pport=$(sed -n 's/^listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/out")
[ -n "$port" ] && [ -n "$pport" ] || { echo "server did not start"; cat "$tmp/out" "$tmp/log"; exit 1; }
url=https://localhost:$port
K="curl -sS --max-time 10 --cacert $C/ca.pem"

# ---- curl ----------------------------------------------------------------------
check "GET /hello over HTTPS" [ "$($K "$url/hello")" = world ]
check "plain listener beside" [ "$(curl -sS --max-time 10 "http://127.0.0.1:$pport/hello")" = world ]
$K -v "$url/hello" "$url/hello" "$url/hello" >"$tmp/ka" 2>&1
check "keep-alive: one connection" grep -q 'Re-using existing connection' "$tmp/ka"
check "keep-alive: three answers" [ "$(grep -c '^< HTTP/1.1 200' "$tmp/ka")" = 3 ]
check "curl negotiated http/1.1 by ALPN" grep -q 'ALPN.*http/1.1' "$tmp/ka"
head -c 3000000 /dev/urandom >"$tmp/blob"
$K --data-binary @"$tmp/blob" -H 'Content-Type: application/octet-stream' -o "$tmp/blob.back" "$url/echo"
check "POST 3 MB body echoed over TLS" cmp -s "$tmp/blob" "$tmp/blob.back"
check "chunked streamed response" [ "$($K "$url/stream?n=20000" | wc -l)" = 20000 ]
set +e
curl -sS --max-time 10 "$url/hello" >/dev/null 2>"$tmp/noca"; rc_noca=$?
set -e
check "curl without the CA refuses the certificate" [ "$rc_noca" = 60 ]
check "curl -k connects" [ "$(curl -sSk --max-time 10 "$url/hello")" = world ]

# ---- openssl s_client ------------------------------------------------------------
sc() { # sc ARGS...: one GET /hello through s_client; output in $tmp/sc
  printf 'GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
    timeout 10 openssl s_client -connect "127.0.0.1:$port" -CAfile "$C/ca.pem" -ign_eof "$@" \
      >"$tmp/sc" 2>&1 || true
}
sc -alpn h2,http/1.1
check "s_client: ALPN http/1.1 selected" grep -q '^ALPN protocol: http/1.1' "$tmp/sc"
check "s_client: answered" grep -q '^world' "$tmp/sc"
sc
check "s_client without ALPN accepted" grep -q '^world' "$tmp/sc"
sc -alpn h2
check "h2-only ALPN refused (no_application_protocol)" grep -qi 'no application protocol' "$tmp/sc"
# SECLEVEL=0: the client really offers TLS 1.1; the refusal must be the server's
sc -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'
check "TLS 1.1 refused by the server (protocol_version alert)" \
  bash -c "! grep -q '^world' '$tmp/sc' && grep -q 'alert protocol version' '$tmp/sc'"
sc -tls1_2
check "TLS 1.2 accepted" bash -c "grep -q 'Protocol *: TLSv1.2' '$tmp/sc' && grep -q '^world' '$tmp/sc'"
sc -tls1_3
check "TLS 1.3 accepted" bash -c "grep -q 'TLSv1.3' '$tmp/sc' && grep -q '^world' '$tmp/sc'"
sc -servername a.test
check "SNI a.test -> a's certificate" grep -q 'subject=CN = a.test' "$tmp/sc"
sc -servername b.test
check "SNI b.test -> b's certificate" grep -q 'subject=CN = b.test' "$tmp/sc"
sc -servername other.test
check "unknown SNI -> the default certificate" grep -q 'subject=CN = localhost' "$tmp/sc"
for v in -tls1_2 -tls1_3; do
  sc "$v" -sess_out "$tmp/sess"
  sc "$v" -sess_in "$tmp/sess"
  check "session resumption ($v)" bash -c "grep -q '^Reused' '$tmp/sc' && grep -q '^world' '$tmp/sc'"
done

# ---- hostile handshakes ----------------------------------------------------------
# closed_within SECONDS: reads fd 3 until the server ends the connection
# (FIN, or a reset when it closes with our bytes unread); true if in time.
closed_within() {
  local rc=0
  timeout "$1" cat <&3 >/dev/null 2>&1 || rc=$?
  [ "$rc" != 124 ]
}
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /hello HTTP/1.1\r\nHost: x\r\n\r\n' >&3 || echo "write: the server closed first"
check "garbage instead of a ClientHello: closed at once" closed_within 2
exec 3<&-
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' >&3 || echo "write: the server closed first" # the start of a ClientHello, then silence
t0=$(date +%s%N)
check "stalled handshake: closed by the timeout" closed_within 5
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
check "stalled handshake: after ~700 ms (took $ms ms)" [ "$ms" -ge 500 -a "$ms" -lt 4000 ]
exec 3<&-
check "still serving after the hostile ones" [ "$($K "$url/hello")" = world ]
check "server still running" kill -0 "$pid"

# ---- WSS, the relay and the tunnel over wss:// ---------------------------------------
if command -v node >/dev/null; then
  NODE_EXTRA_CA_CERTS="$C/ca.pem" node "$SRC/tests/tls/wss.js" "$url" "http://127.0.0.1:$pport" \
    >"$tmp/node" 2>&1 && node_ok=0 || node_ok=$?
  cat "$tmp/node"
  check "wss.js (WSS echo, relay, tunnel over wss)" [ "$node_ok" = 0 ]
else
  echo "skip wss.js: node is not installed"
fi

# ---- SIGHUP reload while clients loop ----------------------------------------------
serial() { echo | timeout 10 openssl s_client -connect "127.0.0.1:$port" 2>/dev/null |
  openssl x509 -noout -subject 2>/dev/null; }
check "before reload: localhost certificate" [ "$(serial)" = "subject=CN = localhost" ]
sc -tls1_3 -sess_out "$tmp/sess_before"
# one keep-alive connection making 8000 requests (curl's URL globbing; body
# and status per line), and fresh connections (a handshake each)
( $K -w '%{http_code}\n' "https://127.0.0.1:$port/hello?[1-8000]" >"$tmp/ka_codes" 2>"$tmp/ka_err"
  echo $? >"$tmp/ka_rc" ) &
kapid=$!
( fails=0; for _ in $(seq 60); do
    [ "$($K "https://127.0.0.1:$port/hello" 2>/dev/null)" = world ] || fails=$((fails + 1))
  done; echo "$fails" >"$tmp/new_fails" ) &
newpid=$!
sleep 0.1
cp "$C/a.pem" "$tmp/live.pem"
cp "$C/a.key" "$tmp/live.key"
kill -0 "$kapid" 2>/dev/null && ka_during=1 || ka_during=0
kill -0 "$newpid" 2>/dev/null && new_during=1 || new_during=0
kill -HUP "$pid"
sleep 0.3
cp "$C/mismatch.key" "$tmp/live.key" # a broken reload: refused, the old one stays
kill -HUP "$pid"
sleep 0.3
wait "$kapid" "$newpid"
cat "$tmp/ka_err"
check "reload: keep-alive loop, 8000 requests, none failed" \
  bash -c "[ \"\$(cat '$tmp/ka_rc')\" = 0 ] && [ \"\$(grep -c '^world200$' '$tmp/ka_codes')\" = 8000 ]"
check "reload: both client loops were running at SIGHUP" [ "$ka_during$new_during" = 11 ]
check "reload: 60 new connections, none failed" [ "$(cat "$tmp/new_fails")" = 0 ]
check "after reload: the new certificate is served" [ "$(serial)" = "subject=CN = a.test" ]
sc -tls1_3 -sess_in "$tmp/sess_before"
check "a session from before the reload resumes (ticket keys kept)" grep -q '^Reused' "$tmp/sc"
check "reload logged" grep -q 'SIGHUP: TLS certificates reloaded' "$tmp/log"
check "failed reload logged with its reason" grep -q "TLS reload failed, keeping the current certificates: .*does not match" "$tmp/log"
check "after a failed reload: still served" [ "$($K "https://127.0.0.1:$port/hello")" = world ]

# ---- stop ------------------------------------------------------------------------
kill -TERM "$pid"
set +e
wait "$pid"
rc=$?
set -e
pids=()
check "SIGTERM: clean exit" [ "$rc" = 0 ]
if [ "$fails" -ne 0 ]; then
  echo "--- server log (tail)"; tail -30 "$tmp/log"
  echo "$fails failure(s)"; exit 1
fi
echo "all passed"

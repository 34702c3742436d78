#!/usr/bin/env bash
# ra-enclave, the private-data service, as its users see it: with curl,
# POST /private-data then GET returns the same bytes; the data survives a
# restart; the store on disk never contains the plaintext; a wrong,
# missing or malformed key is refused at start-up with its exit code; a
# tampered store answers 500 with a clear log line and no data; invalid
# JSON 400, too large 413; kill -9 while a client posts in a loop, restart:
# GET returns one complete record that was posted, never a torn one; over a
# unix socket; through the attested tunnel with ra-curl (attested-only:
# 403 in plaintext); the default vsock listener (ENCLAVE_PORT).
set -euo pipefail
: "${RA_BIN:?RA_BIN must point at the bin folder of the build}"
. "$(dirname "$0")/../../lib.sh"
stop_signal=KILL
expect_clip=200 # a record can be large
has() { # has NAME PATTERN FILE
  if grep -q -- "$2" "$3"; then ok "$1"; else bad "$1: no '$2' in $3"; sed 's/^/     /' "$3" | tail -20; fi
}
ENCLAVE="$RA_BIN/ra-enclave"
KEY=$(openssl rand -base64 32)
OTHER_KEY=$(openssl rand -base64 32)
data="$tmp/data"

# The service terminates TLS itself (USE_TLS defaults to true): the tests
# run over HTTPS with curl -k and a self-signed certificate made here, as
# the README's walk-through does (USE_TLS=false in the environment: plain).
mkcert() { # mkcert DIR
  mkdir -p "$1"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1/key.pem" -out "$1/cert.pem" -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
}
mkcert "$tmp/tls"
mkcert "$tmp/tls2"
export TLS_CERT_PATH="$tmp/tls/cert.pem" TLS_KEY_PATH="$tmp/tls/key.pem"
export USE_TLS=${USE_TLS:-true}
if [ "$USE_TLS" = true ]; then SCHEME=https; else SCHEME=http; fi
echo "# USE_TLS=$USE_TLS"
CURL=(curl -sk --max-time 20)

srv_pid=
srv_out=
start() { # start NAME [args...]: ra-enclave on a free loopback port; sets URL, srv_pid
  local name=$1
  shift
  srv_out="$tmp/$name.out"
  ENCLAVE_KEY_BASE64=$KEY "$ENCLAVE" --listen 127.0.0.1:0 --data-dir "$data" "$@" >"$srv_out" 2>"$srv_out.err" &
  srv_pid=$!
  pids+=("$srv_pid")
  for _ in $(seq 1 200); do
    if grep -q '^listening on' "$srv_out" 2>/dev/null; then
      URL="$SCHEME://127.0.0.1:$(sed -n 's/^listening on .*:\([0-9]*\).*/\1/p' "$srv_out")/private-data"
      return 0
    fi
    kill -0 "$srv_pid" 2>/dev/null || { echo "ra-enclave died:" >&2; cat "$srv_out.err" >&2; exit 1; }
    sleep 0.05
  done
  echo "ra-enclave did not start" >&2
  exit 1
}
stop() { # graceful; exit 0 expected
  kill -TERM "$srv_pid"
  local rc=0
  wait "$srv_pid" || rc=$?
  [ "$rc" = 0 ] || bad "graceful stop of $srv_out: exit $rc"
}
status() { "${CURL[@]}" -o "$tmp/body" -w '%{http_code}' "$@"; }

# ---- start-up errors --------------------------------------------------------
startup() { # startup NAME WANT_EXIT PATTERN [env...] -- [args...]
  local name=$1 want=$2 pat=$3
  shift 3
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  local rc=0
  env -u ENCLAVE_KEY_BASE64 "${envs[@]}" timeout 10 "$ENCLAVE" --listen 127.0.0.1:0 --data-dir "$data" "$@" \
    >"$tmp/su.out" 2>"$tmp/su.err" || rc=$?
  expect "$name: exit $want" "$want" "$rc"
  has "$name: says why" "$pat" "$tmp/su.err"
}
startup "no key" 3 "no key: set ENCLAVE_KEY_BASE64" --
startup "malformed key (not base64)" 3 "not the base64 of 32 bytes" ENCLAVE_KEY_BASE64='not a key!' --
startup "malformed key (16 bytes)" 3 "not the base64 of 32 bytes" ENCLAVE_KEY_BASE64="$(openssl rand -base64 16)" --
head -c 31 /dev/urandom >"$tmp/short.key"
startup "malformed key file" 3 "is not a 32-byte key" -- --key-file "$tmp/short.key"
startup "missing key file" 3 "cannot read key file" -- --key-file "$tmp/nonexistent.key"
startup "bad USE_TLS" 2 "USE_TLS must be true or false" ENCLAVE_KEY_BASE64="$KEY" USE_TLS=maybe --
if [ "$USE_TLS" = true ]; then
  startup "unreadable certificate" 4 "TLS_CERT_PATH=$tmp/nope.pem" ENCLAVE_KEY_BASE64="$KEY" TLS_CERT_PATH="$tmp/nope.pem" --
  startup "key does not match the certificate" 4 "does not match" ENCLAVE_KEY_BASE64="$KEY" TLS_KEY_PATH="$tmp/tls2/key.pem" --
fi
# the key never appears in what the service prints
startup "malformed key not echoed" 3 "not the base64" ENCLAVE_KEY_BASE64='c2VjcmV0LWtleS1tYXRlcmlhbA==' --
if grep -q 'c2VjcmV0' "$tmp/su.err" "$tmp/su.out"; then bad "the key was printed"; else ok "the key is not printed"; fi

# ---- round trip, validation, limits -------------------------------------------
start first --max-body 4000
expect "GET before any POST: 404" 404 "$(status "$URL")"
secret='{"hello":"world","card":"4111-1111-1111-1111","note":"plaintext-marker-7f3a"}'
expect "POST: 200" 200 "$(status -X POST -H 'Content-Type: application/json' --data-binary "$secret" "$URL")"
has "POST answer" '"status":"stored"' "$tmp/body"
expect "GET: 200" 200 "$(status "$URL")"
expect "GET returns the posted bytes" "$secret" "$(cat "$tmp/body")"
"${CURL[@]}" -D "$tmp/head" -o /dev/null "$URL"
if grep -qi '^content-type: application/json' "$tmp/head"; then ok "GET is JSON"; else bad "GET is JSON: $(cat "$tmp/head")"; fi
expect "invalid JSON: 400" 400 "$(status -X POST --data-binary '{"hello":' "$URL")"
expect "not JSON at all: 400" 400 "$(status -X POST --data-binary 'hello world' "$URL")"
expect "duplicate keys: 400" 400 "$(status -X POST --data-binary '{"a":1,"a":2}' "$URL")"
expect "empty body: 400" 400 "$(status -X POST --data-binary '' "$URL")"
python3 -c 'import json; print(json.dumps({"pad": "x" * 5000}))' >"$tmp/big.json"
expect "too large: 413" 413 "$(status -X POST --data-binary @"$tmp/big.json" "$URL")"
expect "refused POSTs left the record alone" "$secret" "$("${CURL[@]}" "$URL")"
# writes are made off the loop, one at a time in the order they came: 4
# clients posting 5 records each at once all get 200, and the record is
# then exactly one of them, whole
writers=()
for w in 1 2 3 4; do
  ( for n in 1 2 3 4 5; do
      "${CURL[@]}" -o /dev/null -w '%{http_code}\n' -X POST --data-binary "{\"writer\":$w,\"n\":$n}" "$URL"
    done >"$tmp/writer$w" ) &
  writers+=($!)
done
wait "${writers[@]}" # not the server's
expect "concurrent writers: 20 answers 200" 20 "$(cat "$tmp"/writer? | grep -c '^200$')"
last=$("${CURL[@]}" "$URL")
if echo "$last" | grep -Eqx '\{"writer":[1-4],"n":[1-5]\}'; then ok "concurrent writers: the record is one of them, whole"; else bad "concurrent writers: record $last"; fi
expect "POST again after them: 200" 200 "$(status -X POST -H 'Content-Type: application/json' --data-binary "$secret" "$URL")"
expect "GET returns it" "$secret" "$("${CURL[@]}" "$URL")"
expect "other methods: 405" 405 "$(status -X DELETE "$URL")"

if [ "$USE_TLS" = true ]; then
  port=${URL#https://127.0.0.1:}
  port=${port%%/*}
  # nothing in plaintext: an http:// request gets no HTTP answer
  code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/private-data") && crc=0 || crc=$?
  expect "plain HTTP on the TLS port: no answer" 000 "$code"
  # the connection was accepted and then closed (52 empty reply, 56 reset), not refused (7) by a dead server
  case $crc in 52|56) ok "  curl: connected, then closed (exit $crc)";; *) bad "  curl exit $crc, want 52 or 56";; esac
  # the certificate is the one configured; SIGHUP reloads a new one from the same paths
  fp() { openssl s_client -connect "127.0.0.1:$port" -servername localhost </dev/null 2>/dev/null |
         openssl x509 -noout -fingerprint -sha256; }
  expect "serves TLS_CERT_PATH" "$(openssl x509 -in "$tmp/tls/cert.pem" -noout -fingerprint -sha256)" "$(fp)"
  cp "$tmp/tls/cert.pem" "$tmp/tls/cert.old"; cp "$tmp/tls/key.pem" "$tmp/tls/key.old"
  cp "$tmp/tls2/cert.pem" "$tmp/tls/cert.pem"; cp "$tmp/tls2/key.pem" "$tmp/tls/key.pem"
  kill -HUP "$srv_pid"
  for _ in $(seq 1 50); do grep -q 'reloaded' "$srv_out.err" && break; sleep 0.05; done
  expect "SIGHUP: the new certificate" "$(openssl x509 -in "$tmp/tls2/cert.pem" -noout -fingerprint -sha256)" "$(fp)"
  expect "SIGHUP: still serving" "$secret" "$("${CURL[@]}" "$URL")"
  mv "$tmp/tls/cert.old" "$tmp/tls/cert.pem"; mv "$tmp/tls/key.old" "$tmp/tls/key.pem"
fi

# ---- at rest: ciphertext only ------------------------------------------------
ls -A "$data" >"$tmp/ls"
has "the record is a sealed file" 'private-data.sealed' "$tmp/ls"
if grep -rqa -e 'plaintext-marker-7f3a' -e 'world' -e '4111' "$data"; then bad "plaintext found in the store"; else ok "no plaintext in the store"; fi
if grep -rqaF -- "$KEY" "$data"; then bad "the key is in the store"; else ok "no key in the store"; fi
expect "store file mode" 600 "$(stat -c %a "$data/private-data.sealed")"

# ---- restart persistence -------------------------------------------------------
stop
start second
expect "after a restart: the same data" "$secret" "$("${CURL[@]}" "$URL")"
second='{"version":2,"list":[1,2,3],"unicode":"h\u00e9llo"}'
expect "POST replaces" 200 "$(status -X POST --data-binary "$second" "$URL")"
stop
start third
expect "after another restart: the new data" "$second" "$("${CURL[@]}" "$URL")"
stop

# ---- wrong key refused at start-up; tampered store -> 500 ------------------------
rc=0
ENCLAVE_KEY_BASE64=$OTHER_KEY timeout 10 "$ENCLAVE" --listen 127.0.0.1:0 --data-dir "$data" >"$tmp/wk.out" 2>"$tmp/wk.err" || rc=$?
expect "wrong key: exit 3" 3 "$rc"
has "wrong key: says why" "sealed under another key: refusing to start" "$tmp/wk.err"
if grep -q '^listening' "$tmp/wk.out"; then bad "wrong key: it listened"; else ok "wrong key: never listened"; fi
start fourth
expect "wrong key: the record is intact" "$second" "$("${CURL[@]}" "$URL")"
# flip one byte of the ciphertext while the service runs
python3 - "$data/private-data.sealed" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2 + 10] ^= 0x01
open(p, "wb").write(bytes(b))
PY
expect "tampered store: 500" 500 "$(status "$URL")"
if grep -q 'version' "$tmp/body"; then bad "tampered: data in the answer"; else ok "tampered: no data in the answer"; fi
has "tampered: a clear log line" 'failed authentication (tampered with or corrupt): not served' "$srv_out.err"
stop
start fifth
has "tampered at start-up: logged" 'failed authentication' "$srv_out.err"
expect "tampered at start-up: 500" 500 "$(status "$URL")"
expect "a POST replaces a tampered record" 200 "$(status -X POST --data-binary "$secret" "$URL")"
expect "then GET works again" "$secret" "$("${CURL[@]}" "$URL")"
stop

# ---- crash mid-write -----------------------------------------------------------
# Four distinct 1.5 MB records; a client posts them in a loop and the server
# is killed with SIGKILL the moment a write's temp file appears in the store
# (a watcher polls the directory; the kill lands somewhere between its
# creation and its rename), after a random number of earlier writes.
# After a restart GET must return exactly one of the records posted (or the
# one from before), never a mixture or a torn file, and the leftover temp
# file is gone.
for i in 0 1 2 3; do
  python3 -c "import json,sys; print(json.dumps({'seq': $i, 'pad': chr(97 + $i) * 1500000}))" >"$tmp/rec$i.json"
done
printf '%s' "$secret" >"$tmp/before.json"
crash_ok=0 torn=0
for round in 1 2 3 4 5; do
  start "crash$round" --max-body 4000000
  (
    while true; do
      for i in 0 1 2 3; do curl -sk --max-time 5 -o /dev/null -X POST --data-binary @"$tmp/rec$i.json" "$URL" || true; done
    done
  ) &
  loop=$!
  exec 3>&2 2>/dev/null # bash reports the SIGKILL of its background job: expected here
  python3 - "$data" "$srv_pid" "$((RANDOM % 3))" <<'PY'
import os, signal, sys, time
d, pid, skip = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
seen, deadline = set(), time.time() + 10
while time.time() < deadline:
    tmps = [n for n in os.listdir(d) if ".tmp-" in n]
    new = [n for n in tmps if n not in seen]
    if new:
        if skip == 0:
            break
        skip -= 1
        seen.update(new)
os.kill(pid, signal.SIGKILL)
PY
  wait "$srv_pid" || true
  kill "$loop" || true
  wait "$loop" || true
  exec 2>&3 3>&-
  if ls -A "$data" | grep -q '\.tmp-'; then torn=$((torn + 1)); fi
  start "after$round"
  code=$(status "$URL")
  match=none
  for f in "$tmp"/rec?.json "$tmp/before.json"; do
    if cmp -s "$tmp/body" "$f"; then match=$(basename "$f"); fi
  done
  if [ "$code" = 200 ] && [ "$match" != none ]; then
    crash_ok=$((crash_ok + 1))
  else
    bad "crash round $round: GET $code, $(wc -c <"$tmp/body") bytes, matches $match"
  fi
  if ls -A "$data" | grep -q '\.tmp-'; then bad "crash round $round: a temp file survived the restart"; fi
  stop
done
expect "kill -9 mid-write, 5 rounds: each restart serves one whole record" 5 "$crash_ok"
echo "#    (in $torn of the 5 rounds the kill left a half-written temp file behind; the restart removed it)"
# put the small record back for what follows
start reset
expect "POST after the crashes" 200 "$(status -X POST --data-binary "$secret" "$URL")"
stop

# ---- a unix socket -------------------------------------------------------------
ENCLAVE_KEY_BASE64=$KEY "$ENCLAVE" --listen "unix:$tmp/enclave.sock" --data-dir "$data" >"$tmp/unix.out" 2>"$tmp/unix.err" &
upid=$!
pids+=("$upid")
for _ in $(seq 1 100); do [ -S "$tmp/enclave.sock" ] && break; sleep 0.05; done
expect "unix socket: GET" 200 "$("${CURL[@]}" --unix-socket "$tmp/enclave.sock" -o /dev/null -w '%{http_code}' "$SCHEME://localhost/private-data")"
expect "a second process on the same store is refused" 1 "$(ENCLAVE_KEY_BASE64=$KEY timeout 10 "$ENCLAVE" --listen 127.0.0.1:0 --data-dir "$data" >/dev/null 2>"$tmp/busy.err"; echo $?)"
has "... and says why" "in use by another process" "$tmp/busy.err"
kill -TERM "$upid"
wait "$upid" || true

# ---- through the attested tunnel --------------------------------------------------
# Plain HTTP outside (ra-curl speaks the tunnel over ws://), the routes
# attested-only: ra-curl verifies the simulated TEE's quote and gets the
# data; plain curl gets 403.
sim="$tmp/sim"
SCHEME_SAVED=$SCHEME
SCHEME=http
USE_TLS=false start tunnel --tee sim --sim-dir "$sim" --attested-only
SCHEME=$SCHEME_SAVED
RACURL=("$RA_BIN/ra-curl" --trust-sim "$sim" --max-time 20)
expect "tunnel: GET through ra-curl" "$secret" "$("${RACURL[@]}" "$URL")"
tsecret='{"via":"tunnel","secret":"tunnel-marker-91c2"}'
"${RACURL[@]}" -X POST -d "$tsecret" "$URL" >"$tmp/tpost"
has "tunnel: POST through ra-curl" '"status":"stored"' "$tmp/tpost"
expect "tunnel: GET returns it" "$tsecret" "$("${RACURL[@]}" "$URL")"
current=$tsecret
expect "tunnel: invalid JSON 400" 22 "$("${RACURL[@]}" --fail -X POST -d '{' "$URL" >/dev/null 2>&1; echo $?)"
expect "attested-only: plaintext GET 403" 403 "$(status "$URL")"
expect "attested-only: plaintext POST 403" 403 "$(status -X POST --data-binary '{}' "$URL")"
expect "attested-only: the record is unchanged" "$tsecret" "$("${RACURL[@]}" "$URL")"
if grep -rqa 'tunnel-marker-91c2' "$data"; then bad "tunnel: plaintext in the store"; else ok "tunnel: no plaintext in the store"; fi
# SIGUSR1: ra_serve rotates the tunnel key; new tunnels verify the new quote
kill -USR1 "$srv_pid"
for _ in $(seq 1 100); do grep -q "tunnel key rotated" "$srv_out.err" && break; sleep 0.05; done
has "SIGUSR1: the tunnel key rotated" "tunnel key rotated" "$srv_out.err"
expect "after the rotation: GET through a new tunnel" "$tsecret" "$("${RACURL[@]}" "$URL")"
stop

# ---- through the attested tunnel over wss:// (TLS on, attested-only) ------------
if [ "$USE_TLS" = true ] && command -v node >/dev/null; then
  start tunnel_tls --tee sim --sim-dir "$sim" --attested-only
  origin="https://localhost:${URL#https://127.0.0.1:}"
  origin=${origin%/private-data}
  if NODE_EXTRA_CA_CERTS="$TLS_CERT_PATH" node "$(dirname "$0")/tunnel_wss.js" "$origin" >"$tmp/wss.log" 2>&1; then
    ok "tunnel over wss: POST, GET, 400 (Node tunnel client)"
    current='{"via":"wss tunnel","marker":"wss-marker-5d1e"}' # what tunnel_wss.js stored
  else
    bad "tunnel over wss"; sed 's/^/     /' "$tmp/wss.log" | tail -20
  fi
  expect "tunnel over wss: plaintext HTTPS GET 403" 403 "$(status "$URL")"
  if grep -rqa 'wss-marker-5d1e' "$data"; then bad "wss tunnel: plaintext in the store"; else ok "wss tunnel: no plaintext in the store"; fi
  stop
elif [ "$USE_TLS" = true ]; then
  echo "skip tunnel over wss: node is not installed"
fi

# ---- the default listener: vsock ENCLAVE_PORT --------------------------------------
vport=$((20000 + RANDOM % 20000))
ENCLAVE_KEY_BASE64=$KEY USE_TLS=false ENCLAVE_PORT=$vport "$ENCLAVE" --data-dir "$data" >"$tmp/vs.out" 2>"$tmp/vs.err" &
vpid=$!
pids+=("$vpid")
for _ in $(seq 1 100); do grep -q '^listening' "$tmp/vs.out" 2>/dev/null && break; kill -0 $vpid 2>/dev/null || break; sleep 0.05; done
if grep -q "^listening on vsock:-1:$vport" "$tmp/vs.out"; then
  ok "default listener: vsock port ENCLAVE_PORT"
  # a request over vsock needs the kernel's vsock loopback (CID 1)
  got=$(python3 - "$vport" <<'PY' 2>/dev/null || true
import socket, sys
s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
s.settimeout(2)
s.connect((1, int(sys.argv[1])))
s.sendall(b"GET /private-data HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
data = b""
while True:
    c = s.recv(65536)
    if not c:
        break
    data += c
print(data.split(b"\r\n\r\n", 1)[1].decode())
PY
)
  if [ -n "$got" ]; then expect "GET over vsock" "$current" "$got"
  else echo "skip GET over vsock: the kernel's vsock loopback (CID 1) does not answer here (vsock_loopback not loaded)"; fi
elif grep -qi 'vsock\|address family' "$tmp/vs.err"; then
  echo "skip default vsock listener: this kernel has no AF_VSOCK ($(tail -1 "$tmp/vs.err"))"
else
  bad "default listener: $(cat "$tmp/vs.out" "$tmp/vs.err")"
fi
kill -TERM "$vpid" 2>/dev/null || true
wait "$vpid" 2>/dev/null || true

# ---- behind the host proxy: ra-proxy --proxy-protocol -> ra-enclave -------
# The client connects from 127.0.0.2, ra-proxy from 127.0.0.1: the enclave's
# log must name the client (the PROXY v2 header is read before TLS starts).
if [ -x "$RA_BIN/ra-proxy" ] && curl -s -o /dev/null --interface 127.0.0.2 "http://127.0.0.1:1/" 2>/dev/null; [ "$?" != 45 ]; then
  start pp --proxy-protocol
  enclave_port=$(sed -n 's/^listening on .*:\([0-9]*\).*/\1/p' "$srv_out")
  "$RA_BIN/ra-proxy" --listen 127.0.0.1:0 --to "tcp:127.0.0.1:$enclave_port" --proxy-protocol \
    >"$tmp/proxy.out" 2>"$tmp/proxy.err" &
  ppid=$!
  pids+=("$ppid")
  pport=
  for _ in $(seq 1 200); do
    pport=$(grep -Eo 'listening on [^ ]*:[0-9]+' "$tmp/proxy.out" "$tmp/proxy.err" 2>/dev/null | grep -Eo '[0-9]+$' | head -1 || true)
    [ -n "$pport" ] && break; sleep 0.05
  done
  if [ -z "$pport" ]; then bad "ra-proxy did not start: $(cat "$tmp/proxy.err")"; else
    body='{"via":"ra-proxy"}'
    code=$("${CURL[@]}" --interface 127.0.0.2 -o /dev/null -w '%{http_code}' -X POST -d "$body" "https://127.0.0.1:$pport/private-data")
    expect "POST through ra-proxy --proxy-protocol to the TLS enclave" 200 "$code"
    expect "GET through ra-proxy" "$body" "$("${CURL[@]}" --interface 127.0.0.2 "https://127.0.0.1:$pport/private-data")"
    has "the enclave logs the client's address from the PROXY header" "127.0.0.2 POST /private-data 200" "$srv_out.err"
    code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$URL") && crc=0 || crc=$?
    expect "a direct connection without the header is closed" 000 "$code"
    # closed after connecting (35 TLS handshake, 52 empty reply, 56 reset), not refused (7): the enclave is up
    case $crc in 35|52|56) ok "  curl: connected, then closed (exit $crc)";; *) bad "  curl exit $crc, want 35, 52 or 56";; esac
  fi
  kill -TERM "$ppid" 2>/dev/null || true
  stop
else
  echo "skip ra-proxy + PROXY protocol: no ra-proxy or no 127.0.0.2 here"
fi

echo "enclave: $fails failure(s)"
[ "$fails" -eq 0 ]

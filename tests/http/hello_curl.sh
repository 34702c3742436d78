#!/usr/bin/env bash
# tests/http/hello_curl.sh: ra-hello with curl as the client: the routes,
# keep-alive reuse, chunked upload, HEAD, 100-continue, 404/405, logging.
set -euo pipefail
BIN=${RA_BIN:?RA_BIN must point at the built programs}
. "$(dirname "$0")/../lib.sh"

"$BIN/ra-hello" --listen 127.0.0.1:0 >"$tmp/out" 2>"$tmp/log" &
pid=$!
pids+=("$pid")
await_port "$tmp/out" "$tmp/log" "$pid" ra-hello "" 100
url=http://127.0.0.1:$port

C="curl -sS --max-time 10"

check "GET /hello -> world" [ "$($C "$url/hello")" = "world" ]
check "GET /hello status 200" [ "$($C -o /dev/null -w '%{http_code}' "$url/hello")" = 200 ]
check "unknown path -> 404" [ "$($C -o /dev/null -w '%{http_code}' "$url/nope")" = 404 ]
check "wrong method -> 405" [ "$($C -o /dev/null -w '%{http_code}' -X PUT "$url/hello")" = 405 ]
$C -D "$tmp/h405" -o /dev/null -X DELETE "$url/echo"
check "405 carries Allow" grep -qiE '^Allow: .*POST.*OPTIONS' "$tmp/h405"

# echo keeps the content type
$C -D "$tmp/hecho" -o "$tmp/becho" -H 'Content-Type: application/x-test' --data-binary 'hi there' "$url/echo"
check "POST /echo body" [ "$(cat "$tmp/becho")" = "hi there" ]
check "POST /echo content-type" grep -qi '^Content-Type: application/x-test' "$tmp/hecho"

# keep-alive: two URLs on one connection
$C -v "$url/hello" "$url/hello" >"$tmp/ka" 2>&1
check "keep-alive reuse" grep -q 'Re-using existing connection' "$tmp/ka"
check "keep-alive both answered" [ "$(grep -c '^< HTTP/1.1 200' "$tmp/ka")" = 2 ]

# chunked upload (1 MiB, streamed by curl in chunks)
head -c 1048576 /dev/urandom >"$tmp/blob"
$C -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/octet-stream' \
   --data-binary @"$tmp/blob" -o "$tmp/blob.back" "$url/echo"
check "chunked upload echoed intact" cmp -s "$tmp/blob" "$tmp/blob.back"

# 100-continue: curl asks for it on a large body and waits for it
$C -v -H 'Expect: 100-continue' --data-binary @"$tmp/blob" -o "$tmp/blob.back2" "$url/echo" 2>"$tmp/cont"
check "100-continue answered" grep -q '^< HTTP/1.1 100 Continue' "$tmp/cont"
check "100-continue body echoed" cmp -s "$tmp/blob" "$tmp/blob.back2"

# HEAD: headers of GET, no body
$C -I "$url/hello" >"$tmp/head"
check "HEAD status" grep -q '^HTTP/1.1 200' "$tmp/head"
check "HEAD Content-Length of GET" grep -qi '^Content-Length: 5' "$tmp/head"
check "HEAD Date and Server" bash -c "grep -qi '^Date: ' '$tmp/head' && grep -qi '^Server: raloop' '$tmp/head'"
n=$($C -I -o /dev/null -w '%{size_download}' "$url/hello")
check "HEAD has no body" [ "$n" = 0 ]

# streamed response
$C -D "$tmp/hs" -o "$tmp/bs" "$url/stream?n=1000"
check "stream: chunked" grep -qi '^Transfer-Encoding: chunked' "$tmp/hs"
check "stream: 1000 chunks" [ "$(wc -l <"$tmp/bs")" = 1000 ]
check "stream: last chunk" [ "$(tail -n1 "$tmp/bs")" = "chunk 999" ]

# HEAD of a huge streamed answer: complete with its head (it used to spin
# the loop through 10^8 discarded chunks, ~12 s for every client)
t0=$(date +%s%N)
$C -I "$url/stream?n=100000000" >"$tmp/hhead"
t1=$(date +%s%N)
check "HEAD /stream?n=1e8 status" grep -q '^HTTP/1.1 200' "$tmp/hhead"
check "HEAD /stream?n=1e8 quick (< 2 s; was ~12 s)" [ $(((t1 - t0) / 1000000)) -lt 2000 ]
# A parallel /hello while a huge stream (to a slow reader) and its HEAD run
curl -sS --max-time 30 --limit-rate 1M -o /dev/null "$url/stream?n=100000000" 2>/dev/null &
slow=$!
curl -sS --max-time 30 -o /dev/null "$url/stream?n=100000000" 2>/dev/null &
fast=$!
( for _ in 1 2 3 4 5; do $C -I -o /dev/null "$url/stream?n=100000000"; done ) &
heads=$!
sleep 0.3
worst=0
for _ in 1 2 3 4 5 6 7 8 9 10; do
  t0=$(date +%s%N)
  [ "$($C --max-time 5 "$url/hello")" = world ] || worst=99999
  t1=$(date +%s%N)
  ms=$(((t1 - t0) / 1000000)); [ "$ms" -gt "$worst" ] && worst=$ms
  sleep 0.05
done
check "parallel /hello answers within 1500 ms during huge streams (worst ${worst} ms)" [ "$worst" -lt 1500 ]
kill "$slow" "$fast" 2>/dev/null || true
wait "$heads" 2>/dev/null || true
wait "$slow" "$fast" 2>/dev/null || true

# async
t0=$(date +%s%N)
check "delay answers ok" [ "$($C "$url/delay?ms=200")" = ok ]
t1=$(date +%s%N)
check "delay waited >= 200 ms" [ $(((t1 - t0) / 1000000)) -ge 200 ]
check "bad delay -> 400" [ "$($C -o /dev/null -w '%{http_code}' "$url/delay?ms=abc")" = 400 ]

# HTTP/1.0
$C --http1.0 -D "$tmp/h10" -o /dev/null "$url/hello"
check "HTTP/1.0 -> Connection: close" grep -qi '^Connection: close' "$tmp/h10"

# OPTIONS
$C -X OPTIONS -D "$tmp/hopt" -o /dev/null "$url/hello"
check "OPTIONS 204 + Allow" bash -c "grep -q '^HTTP/1.1 204' '$tmp/hopt' && grep -qi '^Allow: GET, HEAD, OPTIONS' '$tmp/hopt'"

# one log line per request: method, path, status, microseconds
sleep 0.1
check "access log line" grep -Eq 'GET /hello 200 [0-9]+us' "$tmp/log"
check "access log 404" grep -Eq 'GET /nope 404 [0-9]+us' "$tmp/log"

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pids=()
check "clean exit on SIGTERM" [ "$rc" = 0 ]

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all curl checks passed"

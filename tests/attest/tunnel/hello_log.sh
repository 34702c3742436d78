#!/usr/bin/env bash
# ra-hello logs one access line per request through either transport:
# "GET /hello 200 35us" over plain HTTP, "... (tunnel)" through the attested
# tunnel (ra-curl); none with --quiet.
set -euo pipefail
: "${RA_BIN:?RA_BIN must point at the bin folder of the build}"
. "$(dirname "$0")/../../lib.sh"

# run_hello NAME [flags...]: starts ra-hello, sets $port
run_hello() {
  local name=$1; shift
  "$RA_BIN/ra-hello" --listen 127.0.0.1:0 --tee sim --sim-dir "$tmp/sim" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pid=$!
  pids=("$pid")
  await_port "$tmp/$name.out" "$tmp/$name.err" "$pid" ra-hello
}
stop_hello() {
  kill -TERM "$pid"
  wait "$pid" || { echo "ra-hello exited with $?" >&2; fails=$((fails+1)); }
  pids=()
}
requests() {
  curl -s -o /dev/null "http://127.0.0.1:$port/hello"
  "$RA_BIN/ra-curl" --trust-sim "$tmp/sim" -o /dev/null "http://127.0.0.1:$port/hello"
  "$RA_BIN/ra-curl" --trust-sim "$tmp/sim" -o /dev/null "http://127.0.0.1:$port/private"
  "$RA_BIN/ra-curl" --trust-sim "$tmp/sim" -o /dev/null -d 'x' "http://127.0.0.1:$port/nothing"
}

run_hello log
requests
stop_hello
log="$tmp/log.err"
grep -Eq ' GET /hello 200 [0-9]+us$' "$log" && ok "plain HTTP request logged" || bad "plain HTTP request logged"
grep -Eq ' GET /hello 200 [0-9]+us \(tunnel\)$' "$log" && ok "tunnelled GET /hello logged, marked (tunnel)" \
  || bad "tunnelled GET /hello logged"
grep -Eq ' GET /private 200 [0-9]+us \(tunnel\)$' "$log" && ok "tunnelled attested-only route logged" \
  || bad "tunnelled GET /private logged"
grep -Eq ' POST /nothing 404 [0-9]+us \(tunnel\)$' "$log" && ok "tunnelled 404 logged" || bad "tunnelled 404 logged"
n=$(grep -c '(tunnel)$' "$log" || true)
[ "$n" = 3 ] && ok "one line per tunnelled request" || bad "one line per tunnelled request (got $n)"

# HEAD of an endless streamed answer through the tunnel ends with its head
# (issue 10 item 2): at once, and the loop stays free for others.
run_hello head --quiet
start=$(date +%s%N)
head_rc=0
head_out=$(timeout 20 "$RA_BIN/ra-curl" --trust-sim "$tmp/sim" -X HEAD -i "http://127.0.0.1:$port/stream?n=100000000") \
  || head_rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
# ra-curl -i: the status line first ("200 OK"), and exit 0
if [ "$head_rc" = 0 ] && [ "$(echo "$head_out" | head -1)" = "200 OK" ] && [ "$ms" -lt 3000 ]; then ok "tunnelled HEAD /stream?n=1e8 answered in ${ms} ms"
else bad "tunnelled HEAD /stream?n=1e8 (exit $head_rc, ${ms} ms): $head_out"; fi
[ "$(curl -s -m 2 "http://127.0.0.1:$port/hello")" = world ] && ok "plain /hello answers after it" || bad "plain /hello after HEAD"
stop_hello

run_hello quiet --quiet
requests
stop_hello
if grep -Eq ' (GET|POST) /' "$tmp/quiet.err"; then bad "--quiet logs no requests"; cat "$tmp/quiet.err"; else ok "--quiet logs no requests"; fi

for f in "$tmp"/*.err; do
  if grep -Eq "ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:" "$f"; then cat "$f"; fails=$((fails+1)); fi
done
if [ "$fails" = 0 ]; then echo "all passed"; else cat "$log"; echo "$fails failure(s)"; exit 1; fi

#!/usr/bin/env bash
# c_client.sh: our C client (ws-client-check) against ra-hello and against
# the npm `ws` package's server: the echo suite, subprotocols, handshake
# failures (refused, wrong accept value, nothing listening), a server-side
# close, bad URLs.
set -euo pipefail
: "${RA_BIN:?}" "${RA_SRC:?}"
if [ ! -d "$RA_SRC/tests/node_modules/ws" ]; then
  echo "tests/node_modules is missing: run scripts/deps.sh" >&2; exit 1
fi
export NODE_PATH="$RA_SRC/tests/node_modules"
check="$RA_BIN/ws-client-check"
. "$(dirname "$0")/../lib.sh"

"$RA_BIN/ra-hello" --listen 127.0.0.1:0 >"$tmp/hello.out" 2>"$tmp/hello.err" &
pids+=($!)
await_port "$tmp/hello.out" "$tmp/hello.err" $! ra-hello "$hello_port_sed" 100
hp=$port
node "$RA_SRC/tests/ws/echo_server.js" >"$tmp/node.out" 2>"$tmp/node.err" &
pids+=($!)
await_port "$tmp/node.out" "$tmp/node.err" $! echo_server.js 's/.*port \([0-9][0-9]*\).*/\1/;T;p;q' 100
np=$port

run() { echo "== $*"; if ! "$@"; then echo "FAILED: $*"; fails=$((fails+1)); fi; }
# echo suite against both servers (IPv4 address and a name)
run "$check" "ws://127.0.0.1:$hp/echo"
run "$check" "ws://localhost:$np/echo"
run "$check" "ws://127.0.0.1:$np/echo?x=1"
# subprotocol negotiation with the ws server
run "$check" "ws://127.0.0.1:$np/echo" --protocol chat.v2
# the ws server closing first: on_close gets its code
run "$check" "ws://127.0.0.1:$np/close" --expect-close 4001
# failures before open
run "$check" "ws://127.0.0.1:$np/badaccept" --expect-fail "Sec-WebSocket-Accept"
run "$check" "ws://127.0.0.1:$np/refuse" --expect-fail "HTTP 401"
run "$check" "ws://127.0.0.1:$hp/nope" --expect-fail "HTTP 404"
run "$check" "ws://127.0.0.1:$hp/hello" --expect-fail "handshake"
# a port nobody listens on: the one ra-hello had, after it is gone
kill -TERM "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
run "$check" "ws://127.0.0.1:$hp/echo" --expect-fail "connect failed"
if grep -E "AddressSanitizer|runtime error:" "$tmp/hello.err" >&2; then fails=$((fails+1)); fi
# IPv6 loopback, if the machine has it
if node -e "require('net').createServer().listen(0,'::1',function(){this.close()}).on('error',()=>process.exit(1))" 2>/dev/null; then
  "$RA_BIN/ra-hello" --listen "[::1]:0" >"$tmp/h6.out" 2>"$tmp/h6.err" &
  pids+=($!)
  await_port "$tmp/h6.out" "$tmp/h6.err" $! ra-hello 's|.*listening on http://\[::1\]:\([0-9][0-9]*\).*|\1|p' 100
  h6=$port
  run "$check" "ws://[::1]:$h6/echo"
else
  echo "(no IPv6 loopback: skipped)"
fi
# bad URLs are refused up front
for u in "ftp://127.0.0.1:1/" "http://127.0.0.1/" "ws://" "ws://h:0/" "ws://h:99999/" "ws://h/#frag" "ws://[::1/"; do
  if "$check" "$u" 2>"$tmp/bad.err"; then echo "FAILED: $u accepted"; fails=$((fails+1)); fi
  grep -q "ra_ws_connect" "$tmp/bad.err" || { echo "FAILED: $u: no up-front error"; cat "$tmp/bad.err"; fails=$((fails+1)); }
done
echo "$fails failure(s)"
[ "$fails" -eq 0 ]

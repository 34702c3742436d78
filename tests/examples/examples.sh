#!/usr/bin/env bash
# The examples work as their comments say, with real clients: curl (plain
# HTTP), ra-curl (through the attested tunnel, simulated TEE), Node's `ws`
# (WebSocket echo); the README's code is exactly examples/hello.c.
set -euo pipefail
: "${RA_BIN:?RA_BIN must point at the bin folder of the build}" "${RA_SRC:?}"
. "$(dirname "$0")/../lib.sh"
check() { # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: expected '$2', got '$3'"; fi
}

# The README's service is examples/hello.c, byte for byte.
readme_code=$(awk '/^```c$/ {on=1; next} on && /^```$/ {exit} on' "$RA_SRC/README.md")
if [ "$readme_code" = "$(cat "$RA_SRC/examples/hello.c")" ]; then ok "README code is examples/hello.c"
else bad "README code differs from examples/hello.c"; diff <(echo "$readme_code") "$RA_SRC/examples/hello.c" || true; fi
n=$(wc -l <"$RA_SRC/examples/hello.c")
[ "$n" -le 30 ] && ok "examples/hello.c has $n lines (<= 30)" || bad "examples/hello.c has $n lines (> 30)"

# start NAME: runs example-NAME on a free port with its own simulated TEE
start() {
  XDG_STATE_HOME="$tmp/state" RA_LISTEN=127.0.0.1:0 "$RA_BIN/example-$1" >"$tmp/$1.out" 2>"$tmp/$1.err" &
  pid=$!
  pids=("$pid")
  # the examples log to stderr; the first line naming the port
  await_port "$tmp/$1.err" "$tmp/$1.err" "$pid" "example-$1" 's/.*listening on port \([0-9]*\).*/\1/;T;p;q'
}
stop() {
  kill -TERM "$pid"
  if wait "$pid"; then ok "$1 stops on SIGTERM with exit 0"; else bad "$1 exit status $? on SIGTERM"; fi
  pids=()
}
sim="$tmp/state/raloop/sim"
racurl() { "$RA_BIN/ra-curl" --trust-sim "$sim" "$@"; }

start hello
url="http://127.0.0.1:$port"
check "hello: GET /hello" "world" "$(curl -s "$url/hello")"
check "hello: /secret in plaintext is 403" "403" "$(curl -s -o /dev/null -w '%{http_code}' "$url/secret")"
check "hello: /secret through the tunnel" "only through the tunnel, attested" "$(racurl "$url/secret")"
check "hello: GET /hello through the tunnel" "world" "$(racurl "$url/hello")"
grep -q 'SIMULATED TEE' "$tmp/hello.err" && ok "hello: says loudly that the TEE is simulated" \
  || bad "hello: no simulated-TEE warning"
echo_out=$(cd "$RA_SRC/tests" && node -e '
  const WebSocket = require("ws");
  const ws = new WebSocket(process.argv[1]);
  ws.on("open", () => ws.send("ping 1"));
  ws.on("message", (m) => { console.log(m.toString()); ws.close(); });
  ws.on("error", (e) => { console.error(e.message); process.exit(1); });
' "ws://127.0.0.1:$port/echo")
check "hello: WebSocket /echo (Node ws)" "ping 1" "$echo_out"
stop hello

start stream
url="http://127.0.0.1:$port"
check "stream: /count?n=100000 streams 100000 lines" "100000" "$(curl -s "$url/count?n=100000" | wc -l)"
check "stream: last line" "99999" "$(curl -s "$url/count?n=100000" | tail -1)"
check "stream: bad n is 400" "400" "$(curl -s -o /dev/null -w '%{http_code}' "$url/count?n=x")"
check "stream: /later answers" "sorry for the wait" "$(curl -s "$url/later")"
check "stream: /later through the tunnel" "sorry for the wait" "$(racurl "$url/later")"
check "stream: /count through the tunnel" "1000" "$(racurl "$url/count?n=1000" | wc -l)"
# a client that leaves before /later answers: the service goes on
curl -s -m 0.05 "$url/later" >/dev/null 2>&1 || true
check "stream: still serving after a client left early" "sorry for the wait" "$(curl -s "$url/later")"
stop stream

[ "$fails" -eq 0 ] && echo "examples: all passed" || { echo "examples: $fails failed"; exit 1; }

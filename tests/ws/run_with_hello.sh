#!/usr/bin/env bash
# run_with_hello.sh SCRIPT.js [args...]: starts ra-hello on a free loopback
# port, runs the Node.js script with the port as first argument, stops the
# server (SIGTERM) and fails if the script failed or the server reported a
# memory error (ASan/UBSan builds).
set -euo pipefail
: "${RA_BIN:?RA_BIN must point at the bin folder of the build}"
: "${RA_SRC:?RA_SRC must point at the repository}"
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$RA_SRC/tests/node_modules/ws" ]; then
  echo "tests/node_modules is missing: run scripts/deps.sh" >&2; exit 1
fi
export NODE_PATH="$RA_SRC/tests/node_modules"
. "$here/../lib.sh"
# RA_HELLO_ASAN_OPTIONS: more ASan options for the server only.
asan_opts="${ASAN_OPTIONS:-}"
[ -n "${RA_HELLO_ASAN_OPTIONS:-}" ] && asan_opts="${asan_opts:+$asan_opts:}$RA_HELLO_ASAN_OPTIONS"
ASAN_OPTIONS="$asan_opts" "$RA_BIN/ra-hello" --listen 127.0.0.1:0 >"$tmp/out" 2>"$tmp/err" &
server_pid=$!
pids=("$server_pid")
await_port "$tmp/out" "$tmp/err" "$server_pid" ra-hello "$hello_port_sed" 100
script=$1
shift
export RA_HELLO_PID=$server_pid
status=0
node "$here/$script" "$port" "$@" || status=$?
if kill -0 "$server_pid" 2>/dev/null; then
  kill -TERM "$server_pid"
  wait "$server_pid" 2>/dev/null || true
fi
pids=()
if grep -E "AddressSanitizer|runtime error:" "$tmp/err" >&2; then
  [ -n "${WS_KEEP_ERR:-}" ] && cp "$tmp/err" "$WS_KEEP_ERR"
  echo "ra-hello reported a memory error" >&2
  status=1
fi
exit $status

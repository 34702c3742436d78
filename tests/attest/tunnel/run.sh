#!/usr/bin/env bash
# run.sh SCRIPT.js [server options...]: starts tunnel-test-server (simulated
# TEE in a fresh directory) on a free loopback port, runs the Node.js script
# with the port and the sim directory, stops the server (SIGTERM) and fails
# if the script failed or the server reported a memory error (ASan/UBSan).
set -euo pipefail
: "${RA_BIN:?RA_BIN must point at the bin folder of the build}"
: "${RA_SRC:?RA_SRC must point at the repository}"
here=$(cd "$(dirname "$0")" && pwd)
script=$1
shift
. "$here/../../lib.sh"
"$RA_BIN/tunnel-test-server" --sim "$tmp/sim" "$@" >"$tmp/out" 2>"$tmp/err" &
server_pid=$!
pids=("$server_pid")
await_port "$tmp/out" "$tmp/err" "$server_pid" server 's/^PORT \([0-9]*\)$/\1/p'
rc=0
node "$here/$script" "$port" "$tmp/sim" || rc=$?
kill -TERM "$server_pid"
wait "$server_pid" || { echo "server exited with $?" >&2; rc=1; }
pids=()
if grep -Eq "ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:" "$tmp/err"; then
  cat "$tmp/err" >&2
  rc=1
fi
exit $rc

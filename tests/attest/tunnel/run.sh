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
tmp=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
"$RA_BIN/tunnel-test-server" --sim "$tmp/sim" "$@" >"$tmp/out" 2>"$tmp/err" &
server_pid=$!
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$tmp/out" 2>/dev/null || true)
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/err" >&2; echo "server died" >&2; exit 1; }
  sleep 0.05
done
[ -n "$port" ] || { echo "no port" >&2; exit 1; }
rc=0
node "$here/$script" "$port" "$tmp/sim" || rc=$?
kill -TERM "$server_pid"
wait "$server_pid" || { echo "server exited with $?" >&2; rc=1; }
server_pid=
if grep -Eq "ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:" "$tmp/err"; then
  cat "$tmp/err" >&2
  rc=1
fi
exit $rc

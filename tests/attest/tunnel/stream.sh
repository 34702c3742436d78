#!/usr/bin/env bash
# ra-curl's streamed bodies through the attested tunnel (issue 17,
# PROTOCOL.md §11), real processes on loopback:
#   - ra-curl -T FILE of SIZE MiB (random bytes) to ra-hello's PUT /upload:
#     the byte count and SHA-256 it answers match sha256sum's; -T - (stdin)
#   - ra-curl -o FILE of GET /bytes?n=SIZE MiB: size, and SHA-256 against
#     python's hash of byte i = i % 251
#   - peak RSS (VmHWM) of ra-curl and ra-hello under a bound far below SIZE:
#     nothing buffers a whole body
#   - -# --progress-force draws a progress line; without a terminal -# stays
#     silent
#   - the whole-body fallback: against the Node reference-like server (no
#     bodyStreams announced) a small -T goes whole and answers right; one
#     over 64 MiB fails with exit 25 saying the server does not take
#     streamed bodies (a file: at once; stdin: when the bound is passed);
#     --no-body-streams against ra-hello goes whole too
#   - ra-curl killed mid-download: ra-hello's handler is cancelled and it
#     exits cleanly on SIGTERM (under the ASan build: no leak)
#   - key rotation (SIGUSR1): a -T - upload from a pipe in flight when the
#     drained tunnel closes 1012 fails (exit 7, "key rotation"), never
#     replayed; a new ra-curl works with the new key
# Usage: stream.sh [SIZE_MiB] [RSS_BOUND_MiB]
set -euo pipefail
: "${RA_BIN:?RA_BIN must point at the bin folder of the build}"
size_mib=${1:-1024}
bound_mib=${2:-64}
# under ASan, freed memory waits in a quarantine (256 MiB by default) and
# counts in RSS: a small one keeps the bound about what the code holds
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8"
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
sim="$tmp/sim"

"$RA_BIN/ra-hello" --listen 127.0.0.1:0 --tee sim --sim-dir "$sim" --quiet >"$tmp/hello.out" 2>"$tmp/hello.err" &
hello=$!
pids+=($hello)
await_port "$tmp/hello.out" "$tmp/hello.err" "$hello" ra-hello "$hello_port_sed" 400
o="http://127.0.0.1:$port"
curl_t() { "$RA_BIN/ra-curl" --trust-sim "$sim" "$@"; }
hwm_kib() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$1/status"; }
bound_kib=$((bound_mib * 1024))

# ---- upload ----------------------------------------------------------------
head -c $((size_mib * 1048576)) /dev/urandom >"$tmp/up.bin"
want_sha=$(sha256sum "$tmp/up.bin" | cut -d' ' -f1)
want_n=$((size_mib * 1048576))
rc=0
/usr/bin/time -f '%M' -o "$tmp/curl.rss" "$RA_BIN/ra-curl" --trust-sim "$sim" -T "$tmp/up.bin" \
  "$o/upload" >"$tmp/up.json" 2>"$tmp/up.err" || rc=$?
if [ "$rc" = 0 ] && grep -q "\"bytes\":$want_n,\"sha256\":\"$want_sha\"" "$tmp/up.json"; then
  ok "-T of $size_mib MiB: byte count and SHA-256 match"
else
  bad "-T of $size_mib MiB: exit $rc, $(cat "$tmp/up.json" "$tmp/up.err")"
fi
crss=$(tail -1 "$tmp/curl.rss")
[ "$crss" -lt "$bound_kib" ] && ok "ra-curl peak RSS uploading: $((crss / 1024)) MiB < $bound_mib MiB" \
  || bad "ra-curl peak RSS uploading: $((crss / 1024)) MiB (bound $bound_mib MiB)"
head -c 3000000 "$tmp/up.bin" | curl_t -T - "$o/upload" >"$tmp/stdin.json" 2>&1 || true
sha3=$(head -c 3000000 "$tmp/up.bin" | sha256sum | cut -d' ' -f1)
grep -q "\"bytes\":3000000,\"sha256\":\"$sha3\"" "$tmp/stdin.json" && ok "-T - reads stdin" \
  || bad "-T -: $(cat "$tmp/stdin.json")"
rm -f "$tmp/up.bin"

# ---- download --------------------------------------------------------------
rc=0
/usr/bin/time -f '%M' -o "$tmp/curl.rss" "$RA_BIN/ra-curl" --trust-sim "$sim" -o "$tmp/down.bin" \
  "$o/bytes?n=$want_n" 2>"$tmp/down.err" || rc=$?
got_n=$(stat -c %s "$tmp/down.bin" 2>/dev/null || echo 0)
got_sha=$(sha256sum "$tmp/down.bin" | cut -d' ' -f1)
pat_sha=$(python3 - "$want_n" <<'EOF'
import hashlib, sys
n = int(sys.argv[1]); block = bytes(i % 251 for i in range(251 * 4096)); h = hashlib.sha256()
while n >= len(block): h.update(block); n -= len(block)
h.update(block[:n]); print(h.hexdigest())
EOF
)
[ "$rc" = 0 ] && [ "$got_n" = "$want_n" ] && [ "$got_sha" = "$pat_sha" ] \
  && ok "-o of $size_mib MiB: size and SHA-256 (byte i = i % 251) match" \
  || bad "-o of $size_mib MiB: exit $rc, $got_n bytes, sha $got_sha want $pat_sha $(cat "$tmp/down.err")"
crss=$(tail -1 "$tmp/curl.rss")
[ "$crss" -lt "$bound_kib" ] && ok "ra-curl peak RSS downloading: $((crss / 1024)) MiB < $bound_mib MiB" \
  || bad "ra-curl peak RSS downloading: $((crss / 1024)) MiB (bound $bound_mib MiB)"
rm -f "$tmp/down.bin"
hrss=$(hwm_kib "$hello")
[ "$hrss" -lt "$bound_kib" ] && ok "ra-hello peak RSS after both: $((hrss / 1024)) MiB < $bound_mib MiB" \
  || bad "ra-hello peak RSS after both: $((hrss / 1024)) MiB (bound $bound_mib MiB)"

# ---- progress --------------------------------------------------------------
curl_t -# --progress-force -o /dev/null "$o/bytes?n=4000000" 2>"$tmp/prog.err" || true
grep -q 'down.*MB/s' "$tmp/prog.err" && ok "--progress-force draws the progress line" \
  || bad "no progress line: $(cat "$tmp/prog.err")"
curl_t -# -o /dev/null "$o/bytes?n=4000000" 2>"$tmp/prog.err" </dev/null || true
[ ! -s "$tmp/prog.err" ] && ok "-# without a terminal: nothing on stderr" \
  || bad "-# wrote to a non-terminal: $(cat -A "$tmp/prog.err" | head -3)"

# ---- the whole-body fallback -----------------------------------------------
node "$here/node_server.js" "$RA_BIN" "$sim" >"$tmp/node.out" 2>"$tmp/node.err" &
pids+=($!)
nport=
for _ in $(seq 1 400); do
  nport=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$tmp/node.out" 2>/dev/null || true)
  [ -n "$nport" ] && break
  sleep 0.05
done
[ -n "$nport" ] || { cat "$tmp/node.err" >&2; echo "node server: no port" >&2; exit 1; }
head -c 5000000 /dev/urandom >"$tmp/small.bin"
sha5=$(sha256sum "$tmp/small.bin" | cut -d' ' -f1)
rc=0
curl_t -T "$tmp/small.bin" "http://127.0.0.1:$nport/upload" >"$tmp/n.json" 2>&1 || rc=$?
[ "$rc" = 0 ] && grep -q "\"bytes\":5000000,\"sha256\":\"$sha5\"" "$tmp/n.json" \
  && ok "server without streams: a 5 MB -T goes whole and matches" || bad "fallback small: exit $rc $(cat "$tmp/n.json")"
truncate -s 70M "$tmp/huge.bin"
rc=0
curl_t -T "$tmp/huge.bin" "http://127.0.0.1:$nport/upload" >"$tmp/n.out" 2>"$tmp/n.err" || rc=$?
[ "$rc" = 25 ] && grep -q "does not take streamed bodies" "$tmp/n.err" \
  && ok "server without streams: a 70 MiB -T fails at once, exit 25, saying why" \
  || bad "fallback huge: exit $rc $(cat "$tmp/n.err")"
rc=0
curl_t -T - "http://127.0.0.1:$nport/upload" <"$tmp/huge.bin" >"$tmp/n.out" 2>"$tmp/n.err" || rc=$?
[ "$rc" = 25 ] && grep -q "does not take streamed bodies" "$tmp/n.err" \
  && ok "server without streams: 70 MiB from stdin fails at the bound, exit 25" \
  || bad "fallback huge stdin: exit $rc $(cat "$tmp/n.err")"
rm -f "$tmp/huge.bin"
rc=0
curl_t --no-body-streams -T "$tmp/small.bin" "$o/upload" >"$tmp/w.json" 2>&1 || rc=$?
[ "$rc" = 0 ] && grep -q "\"bytes\":5000000,\"sha256\":\"$sha5\"" "$tmp/w.json" \
  && ok "--no-body-streams against ra-hello: whole, matches" || bad "--no-body-streams: exit $rc $(cat "$tmp/w.json")"

# ---- the C client against the Node server's streams (written from the wire
# format): upload, download, rule breakers (-EPROTO, http_cancel, the tunnel
# goes on), cancel
node "$here/node_server.js" "$RA_BIN" "$sim" --streams >"$tmp/nodes.out" 2>"$tmp/nodes.err" &
pids+=($!)
sport=
for _ in $(seq 1 400); do
  sport=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$tmp/nodes.out" 2>/dev/null || true)
  [ -n "$sport" ] && break
  sleep 0.05
done
rc=0
"$RA_BIN/tunnel-stream-client-check" node "http://127.0.0.1:$sport" "$sim" >"$tmp/nc.out" 2>&1 || rc=$?
sed 's/^/     /' "$tmp/nc.out"
[ "$rc" = 0 ] && ok "the C client against the Node server's streamed bodies" || bad "against the Node server's streams"
rc=0
curl_t -o "$tmp/ns.bin" "http://127.0.0.1:$sport/bytes?n=3000000" 2>"$tmp/ns.err" || rc=$?
[ "$rc" = 0 ] && [ "$(stat -c %s "$tmp/ns.bin")" = 3000000 ] && ok "ra-curl -o from the Node server's stream" \
  || bad "ra-curl -o from the Node server: exit $rc $(cat "$tmp/ns.err")"
rc=0
curl_t -o /dev/null "http://127.0.0.1:$sport/big-chunk?n=1000000" 2>"$tmp/ns.err" || rc=$?
[ "$rc" = 35 ] && grep -q "over the announced chunk" "$tmp/ns.err" && ok "ra-curl: a rule breaker is exit 35, named" \
  || bad "ra-curl against /big-chunk: exit $rc $(cat "$tmp/ns.err")"

rc=0
curl_t -o "$tmp/ab.bin" "http://127.0.0.1:$sport/abandon?n=2000000" 2>"$tmp/ns.err" || rc=$?
[ "$rc" = 18 ] && grep -q "could not complete" "$tmp/ns.err" && ok "ra-curl: a response the server abandons is exit 18" \
  || bad "ra-curl against /abandon: exit $rc $(cat "$tmp/ns.err")"

# ---- ra-curl killed mid-download -------------------------------------------
"$RA_BIN/ra-curl" --trust-sim "$sim" -o "$tmp/part.bin" "$o/bytes?n=1099511627776" 2>/dev/null &
cpid=$!
for _ in $(seq 1 400); do
  [ "$(stat -c %s "$tmp/part.bin" 2>/dev/null || echo 0)" -gt 4000000 ] && break
  sleep 0.05
done
kill -KILL "$cpid" 2>/dev/null || true
wait "$cpid" 2>/dev/null || true
[ "$(stat -c %s "$tmp/part.bin")" -gt 4000000 ] && ok "a download was under way" || bad "the download never started"
sleep 0.5
# ra-hello is still fine and answers
rc=0
curl_t "$o/hello" >"$tmp/h.out" 2>&1 || rc=$?
[ "$rc" = 0 ] && ok "ra-hello goes on after the client vanished" || bad "ra-hello after the kill: $(cat "$tmp/h.out")"
kill -TERM "$hello"
rc=0
wait "$hello" || rc=$?
pids=("${pids[@]/$hello}")
[ "$rc" = 0 ] && ok "ra-hello exits cleanly (no leak under ASan)" \
  || bad "ra-hello exited $rc: $(tail -20 "$tmp/hello.err")"

# ---- key rotation with a streamed upload in flight ---------------------------
"$RA_BIN/ra-hello" --listen 127.0.0.1:0 --tee sim --sim-dir "$sim" --quiet --key-lifetime 0 --key-grace 200ms \
  >"$tmp/rot.out" 2>"$tmp/rot.err" &
rot=$!
pids+=($rot)
rport=
for _ in $(seq 1 400); do
  rport=$(sed -n 's/^listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/rot.out" 2>/dev/null || true)
  [ -n "$rport" ] && break
  sleep 0.05
done
mkfifo "$tmp/fifo"
timeout 120 "$RA_BIN/ra-curl" --trust-sim "$sim" -T - "http://127.0.0.1:$rport/upload" <"$tmp/fifo" \
  >"$tmp/rc.out" 2>"$tmp/rc.err" &
cpid=$!
exec 7>"$tmp/fifo"
# returns once ra-curl has read all but a pipe's worth: the tunnel is keyed
# and the upload under way (it reads only within the server's credit)
head -c 2000000 /dev/zero >&7
kill -USR1 "$rot"
rc=0
wait "$cpid" || rc=$?
exec 7>&-
[ "$rc" = 7 ] && grep -q "key rotation" "$tmp/rc.err" \
  && ok "a streamed upload from a pipe in flight at the 1012 close fails (exit 7): $(cat "$tmp/rc.err")" \
  || bad "rotation with an upload in flight: exit $rc $(cat "$tmp/rc.out" "$tmp/rc.err")"
rc=0
echo hi | curl_t -T - "http://127.0.0.1:$rport/upload" >"$tmp/rc2.out" 2>&1 || rc=$?
[ "$rc" = 0 ] && grep -q '"bytes":3,' "$tmp/rc2.out" && ok "after the rotation a new upload works" \
  || bad "after the rotation: exit $rc $(cat "$tmp/rc2.out")"

[ "$fails" = 0 ] && echo "all passed" || echo "$fails failure(s)"
exit $((fails > 0))

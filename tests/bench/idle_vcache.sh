#!/usr/bin/env bash
# bench/idle_vcache: the issue-18 additions of ra-bench with tiny counts
# against a ra-hello (simulated TEE) it starts: handshakes through the
# verified-quote cache (--vcache: one full verification per pool, every
# other handshake a hit, with and without collateral), the idle scenario
# (N tunnels / connections really held open at once: counted on the
# server's side), bench/idle_bench.sh's report, and ra-verify-bench's modes.
# Checks behaviour and output, not timings.
set -euo pipefail
bin=${RA_BIN:?RA_BIN not set}
vec=${RA_VECTORS:?RA_VECTORS not set}
here=$(cd "$(dirname "$0")/../.." && pwd)
. "$(dirname "$0")/../lib.sh"
fail() { echo "FAIL: $*" >&2; exit 1; }

: >"$tmp/srv.log"
"$bin/ra-hello" --listen 127.0.0.1:0 --quiet --tee sim --sim-dir "$tmp/sim" >"$tmp/srv.log" 2>&1 &
srv=$!
pids+=("$srv")
await_port "$tmp/srv.log" "$tmp/srv.log" "$srv" ra-hello
url=http://127.0.0.1:$port

# 1. handshakes through the cache: warm-up (10/5/2 + 1 = 2) + 2 rounds of 5 on one pool
hs=(--tunnel --scenario handshake --handshakes 10 --handshake-concurrency 2 --rounds 2 --format csv)
timeout 120 "$bin/ra-bench" "${hs[@]}" --trust-sim "$tmp/sim" --vcache 8 "$url" >"$tmp/hs.csv" 2>"$tmp/hs.err" \
  || { cat "$tmp/hs.err" >&2; fail "ra-bench --vcache exited $?"; }
grep -q '^handshake,tunnel,10,' "$tmp/hs.csv" || { cat "$tmp/hs.csv" >&2; fail "--vcache: no handshake row"; }
grep -q 'verified-quote cache: 11 hits, 1 misses, 0 expired' "$tmp/hs.err" \
  || { cat "$tmp/hs.err" >&2; fail "--vcache: not one verification then hits"; }
# with the sim's collateral: the same
rd=$(printf '00%.0s' $(seq 64))
"$bin/ra-quote" sim --dir "$tmp/sim" --report-data "$rd" --out "$tmp/q.dat" --collateral-out "$tmp/coll.json" \
  >/dev/null || fail "ra-quote sim --collateral-out"
timeout 120 "$bin/ra-bench" "${hs[@]}" --trust-sim "$tmp/sim" --collateral "$tmp/coll.json" --vcache 8 \
  "$url" >"$tmp/hs2.csv" 2>"$tmp/hs2.err" || { cat "$tmp/hs2.err" >&2; fail "--vcache --collateral exited $?"; }
grep -q 'verified-quote cache: 11 hits, 1 misses' "$tmp/hs2.err" || { cat "$tmp/hs2.err" >&2; fail "--vcache --collateral"; }
# the cache never turns a refusal into an acceptance: a wrong MRTD still fails
mrtd=$(printf '00%.0s' $(seq 48))
if "$bin/ra-bench" "${hs[@]}" --trust-sim "$tmp/sim" --mrtd "$mrtd" --vcache 8 "$url" >/dev/null 2>"$tmp/err"; then
  fail "a wrong MRTD was accepted through the cache"
fi
grep -q 'attestation refused' "$tmp/err" || { cat "$tmp/err" >&2; fail "no refusal message (vcache)"; }
set +e
"$bin/ra-bench" --vcache 0 "$url" >/dev/null 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "--vcache 0 exited $rc, want 2"

# 2. idle: N held open at once (counted on the server), then closed
n=24
fds() { find "/proc/$srv/fd" -mindepth 1 -maxdepth 1 | wc -l; }
base=$(fds)
for mode in tunnel plain; do
  : >"$tmp/idle.err"
  timeout 120 "$bin/ra-bench" --"$mode" --scenario idle --tunnels "$n" --idle-concurrency 5 --hold 3 \
    --trust-sim "$tmp/sim" --quiet --format csv "$url" >"$tmp/idle.csv" 2>"$tmp/idle.err" &
  b=$!
  for _ in $(seq 1 400); do
    grep -q "open, holding" "$tmp/idle.err" && break
    kill -0 "$b" 2>/dev/null || break
    sleep 0.05
  done
  grep -q "idle: $n $([ $mode = tunnel ] && echo tunnels || echo connections) open, holding 3.0 s" "$tmp/idle.err" \
    || { cat "$tmp/idle.err" >&2; fail "idle/$mode: no open line"; }
  sleep 0.3
  held=$(( $(fds) - base ))
  [ "$held" -ge "$n" ] || fail "idle/$mode: the server holds $held connections, want >= $n"
  wait "$b" || { cat "$tmp/idle.err" >&2; fail "idle/$mode: ra-bench exited $?"; }
  grep -q "^idle,$mode,$n," "$tmp/idle.csv" || { cat "$tmp/idle.csv" >&2; fail "idle/$mode: no CSV row"; }
  grep -q "idle: closing" "$tmp/idle.err" || fail "idle/$mode: no closing line"
done
# all closed again (the server sees the closes within a moment)
for _ in $(seq 1 100); do [ "$(fds)" -le $((base + 1)) ] && break; sleep 0.05; done
[ "$(fds)" -le $((base + 1)) ] || fail "idle: the server still holds $(( $(fds) - base )) connections after close"
# `all` does not include idle
"$bin/ra-bench" --plain --scenario all --concurrent 2 --serial 2 --large 1 --large-size 1024 --conns 1 \
  --duration 0.05 --handshakes 2 --rounds 1 --no-floor --quiet --format csv "$url" >"$tmp/all.csv"
if grep -q '^idle,' "$tmp/all.csv"; then fail "--scenario all ran idle"; fi

# 3. bench/idle_bench.sh: its report, small
bash "$here/bench/idle_bench.sh" "$(dirname "$bin")" 20 2 >"$tmp/ib.txt" 2>&1 || { cat "$tmp/ib.txt" >&2; fail "idle_bench.sh"; }
grep -Eq '^plain: .* [0-9]+ B per idle connection' "$tmp/ib.txt" || { cat "$tmp/ib.txt" >&2; fail "idle_bench plain line"; }
grep -Eq '^tunnel: .* [0-9]+ B per idle tunnel' "$tmp/ib.txt" || { cat "$tmp/ib.txt" >&2; fail "idle_bench tunnel line"; }

# 4. ra-verify-bench: every mode, the cache hits after one miss
P=$vec/collateral/phala
"$bin/ra-verify-bench" "$P/tdx_quote" "$P/tdx_quote_collateral.json" "$(date -d 2025-07-01 +%s)" 3 \
  >"$tmp/vb.txt" || { cat "$tmp/vb.txt" >&2; fail "ra-verify-bench"; }
for m in cold coldest warm vcache; do grep -Eq "^$m +n=3 +median" "$tmp/vb.txt" || fail "ra-verify-bench: no $m line"; done
grep -q '(hits 3, misses 1)' "$tmp/vb.txt" || { cat "$tmp/vb.txt" >&2; fail "ra-verify-bench: cache stats"; }
# a time outside the collateral's window: the quote does not verify, exit 1
set +e
"$bin/ra-verify-bench" "$P/tdx_quote" "$P/tdx_quote_collateral.json" 1000000000 1 >/dev/null 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "ra-verify-bench at a time outside the window exited $rc, want 1"
echo "bench/idle_vcache: ok"

#!/usr/bin/env bash
# bench/run_compare: bench/run.sh with tiny counts, three runs, --compare
# against the same build (a build folder is taken as is, nothing is built):
# every figure comes as min / median / max, the new/old ratios are printed,
# the server's CPU per request is measured in both modes, serial and at
# saturation. Checks the output,
# not the timings.
set -euo pipefail
bin=${RA_BIN:?RA_BIN not set}
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$bin/.." && pwd)
command -v python3 >/dev/null || { echo "SKIP: python3 missing (scripts/deps.sh installs it)"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; cat "$tmp/out" >&2 || true; exit 1; }
timeout 120 bash "$src/bench/run.sh" "$build" --runs 3 --compare "$build" --cpu-requests 200 \
  --sat-seconds 1 --scenario serial --scenario large --scenario throughput \
  --serial 4 --large 2 --large-size 65536 --conns 2 --duration 0.1 --rounds 1 >"$tmp/out" 2>&1 ||
  fail "run.sh exited $?"
grep -q '^== new: 3 runs, min / median / max' "$tmp/out" || fail "no spread table for new"
grep -q '^== old: 3 runs' "$tmp/out" || fail "no spread table for old"
grep -q '^== new / old, per alternating run pair (3 pairs)' "$tmp/out" || fail "no new/old table"
res=$build/bench-results
for s in new old; do for i in 1 2 3; do
  [ -s "$res/runs/$s-$i.json" ] || fail "no $s-$i.json"
done; done
python3 - "$res/runs/summary.json" <<'PY' || fail "summary.json"
import json, sys
s = json.load(open(sys.argv[1]))
for side in ("new", "old"):
    for k in ("serial/plain avg_ms", "serial/tunnel avg_ms", "large/floor avg_ms",
              "throughput/tunnel rps", "serial/ratio avg tunnel/plain",
              "cpu/plain us_per_req", "cpu/tunnel us_per_req",
              "sat/plain server_us_per_req", "sat/tunnel server_us_per_req",
              "sat/tunnel server_busy_pct", "sat/plain client_busy_pct"):
        f = s[side][k]
        assert f["n"] == 3, (side, k, f)
        assert 0 < f["min"] <= f["median"] <= f["max"], (side, k, f)
r = s["ratio"]["cpu/tunnel us_per_req"]
assert r["n"] == 3 and 0 < r["min"] <= r["median"] <= r["max"], r
PY
# ra-bench --per-round via bench/stalls.sh: one line per round and mode,
# with the run-queue delays, and the 2 x 2 count
timeout 60 bash "$src/bench/stalls.sh" "$build" 1 2 serial >"$tmp/stalls" 2>&1 || fail "stalls.sh exited $?"
[ "$(grep -c 'round [12] serial/\(plain\|tunnel\): n [0-9]* avg .* max .* ms; waiting for a CPU: client [0-9.]* ms, server [0-9.]* ms' "$tmp/stalls")" = 4 ] ||
  { cat "$tmp/stalls" >&2; fail "per-round lines"; }
grep -q '^rounds: 4$' "$tmp/stalls" || { cat "$tmp/stalls" >&2; fail "stalls.sh count"; }
echo "PASS"

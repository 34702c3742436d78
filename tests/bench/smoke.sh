#!/usr/bin/env bash
# bench/smoke: ra-bench with tiny counts against a ra-hello it starts (plain
# HTTP and the tunnel with the simulated TEE on one port). Checks what a user
# relies on, not timings: the JSON is one well-formed array with every
# scenario in both modes plus the crypto floor, figures are sane numbers,
# CSV/table/SVG come out, the policy fails closed, bad usage exits 2.
set -euo pipefail
bin=${RA_BIN:?RA_BIN not set}
. "$(dirname "$0")/../lib.sh"
fail() { echo "FAIL: $*" >&2; exit 1; }

: >"$tmp/srv.log" # exists before the background job opens it
"$bin/ra-hello" --listen 127.0.0.1:0 --quiet --tee sim --sim-dir "$tmp/sim" >"$tmp/srv.log" 2>&1 &
srv=$!
pids+=("$srv")
await_port "$tmp/srv.log" "$tmp/srv.log" "$srv" ra-hello
url=http://127.0.0.1:$port
small=(--concurrent 8 --serial 4 --large 2 --large-size 65536 --conns 2 --duration 0.2
       --handshakes 4 --handshake-concurrency 2 --rounds 2 --quiet)

# 1. every scenario, both modes, JSON + chart
timeout 120 "$bin/ra-bench" --both --trust-sim "$tmp/sim" "${small[@]}" --format json \
  --chart "$tmp/chart.svg" "$url" >"$tmp/out.json" || fail "ra-bench --both exited $?"
node - "$tmp/out.json" "$tmp/chart.svg" <<'JS'
const fs = require("fs");
const [json, svg] = process.argv.slice(2);
const fail = (m) => { console.error("FAIL: " + m); process.exit(1); };
let r;
try { r = JSON.parse(fs.readFileSync(json, "utf8")); } catch (e) { fail("JSON does not parse: " + e.message); }
if (!Array.isArray(r)) fail("JSON is not an array");
const keys = ["scenario", "mode", "n", "avg_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "rps"];
const want = [];
for (const s of ["concurrent", "serial", "large", "throughput", "handshake"])
  for (const m of ["plain", "tunnel"]) want.push(s + "/" + m);
want.push("large/floor", "throughput/floor");
const got = r.map((o) => o.scenario + "/" + o.mode);
if (JSON.stringify([...got].sort()) !== JSON.stringify([...want].sort()))
  fail(`scenarios/modes: got ${got.join(",")}, want ${want.join(",")}`);
// two rounds: concurrent/serial/large repeat per round, handshakes are split
const counts = { concurrent: 16, serial: 8, large: 4, handshake: 4 };
for (const o of r) {
  const id = o.scenario + "/" + o.mode;
  if (JSON.stringify(Object.keys(o)) !== JSON.stringify(keys)) fail(`${id}: keys ${Object.keys(o)}`);
  for (const k of keys.slice(2))
    if (typeof o[k] !== "number" || !Number.isFinite(o[k]) || o[k] <= 0) fail(`${id}: ${k} = ${o[k]}`);
  if (counts[o.scenario] && o.n !== counts[o.scenario]) fail(`${id}: n = ${o.n}, want ${counts[o.scenario]}`);
  if (!(o.p50_ms <= o.p90_ms && o.p90_ms <= o.p99_ms && o.p99_ms <= o.max_ms)) fail(`${id}: percentiles out of order`);
  if (o.avg_ms > o.max_ms) fail(`${id}: avg above max`);
}
const s = fs.readFileSync(svg, "utf8");
if (!/^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/.test(s) || !s.trimEnd().endsWith("</svg>")) fail("SVG shape");
for (const t of ["latency (ms)", "plain HTTP/1.1", "RA tunnel", "concurrent", "handshake"])
  if (!s.includes(t)) fail(`SVG lacks "${t}"`);
console.log(`ok: ${r.length} results, chart ${s.length} bytes`);
JS
# the chart must render (librsvg, installed by scripts/deps.sh) to a real PNG
rsvg-convert -o "$tmp/chart.png" "$tmp/chart.svg" || fail "the SVG does not render"
[ "$(od -An -c -N4 "$tmp/chart.png" | tr -d ' ')" = "211PNG" ] || fail "the rendered chart is not a PNG"

# 2. CSV and table, plain only
"$bin/ra-bench" --plain --scenario serial "${small[@]}" --format csv "$url" >"$tmp/out.csv"
head -1 "$tmp/out.csv" | grep -qx 'scenario,mode,n,avg_ms,p50_ms,p90_ms,p99_ms,max_ms,rps' || fail "CSV header"
grep -q '^serial,plain,8,' "$tmp/out.csv" || fail "CSV row"
# --pick best reports one round (4 samples), not the pool of both (8)
"$bin/ra-bench" --plain --scenario serial "${small[@]}" --pick best --format csv "$url" >"$tmp/best.csv"
grep -q '^serial,plain,4,' "$tmp/best.csv" || fail "--pick best row"
"$bin/ra-bench" --both --scenario serial --trust-sim "$tmp/sim" "${small[@]}" "$url" >"$tmp/out.txt"
grep -q '^serial  *ratio ' "$tmp/out.txt" || fail "table has no ratio row"
grep -q 'targets (issue 6)' "$tmp/out.txt" || fail "table has no targets"
# issue 18: throughput's cipher floor (the sizes of the tunnelled GET's two
# messages) and the bound it puts on the tunnel/plain ratio
"$bin/ra-bench" --both --scenario throughput --trust-sim "$tmp/sim" "${small[@]}" "$url" >"$tmp/thr.txt"
grep -q '^throughput  *floor ' "$tmp/thr.txt" || fail "throughput has no floor row"
grep -Eq 'the cipher alone bounds it at [0-9]+% here \([0-9.]+ us a side; 4 x crypto_secretbox per request: the [0-9]+ B http_request, the [0-9]+ B http_response\)' \
  "$tmp/thr.txt" || { cat "$tmp/thr.txt" >&2; fail "no cipher bound for throughput"; }

# 3. fails closed: the simulated root is not trusted unless asked
if "$bin/ra-bench" --tunnel --scenario serial --serial 1 --quiet --any-measurement-insecure "$url" \
     >/dev/null 2>"$tmp/err"; then
  fail "a simulated quote was accepted without --trust-sim"
fi
grep -q 'attestation refused' "$tmp/err" || { cat "$tmp/err" >&2; fail "no refusal message"; }
# the Intel root without expected measurements is refused before connecting
if "$bin/ra-bench" --tunnel --scenario serial --serial 1 --quiet "$url" >/dev/null 2>"$tmp/err"; then
  fail "ran with the Intel root and no measurements"
fi
grep -q 'name the expected measurements' "$tmp/err" || { cat "$tmp/err" >&2; fail "no policy message"; }
# a wrong MRTD is refused
mrtd=$(printf '00%.0s' $(seq 48))
if "$bin/ra-bench" --tunnel --scenario serial --serial 1 --quiet --trust-sim "$tmp/sim" --mrtd "$mrtd" \
     "$url" >/dev/null 2>"$tmp/err"; then
  fail "a wrong MRTD was accepted"
fi
grep -q 'attestation refused' "$tmp/err" || { cat "$tmp/err" >&2; fail "no refusal message (mrtd)"; }

# 3b. with Intel collateral (issue 11): the simulated TEE's own, accepted for
# every handshake; collateral that is not the server's (Intel's, for the same
# FMSPC, long expired) refuses, never a signatures-only run
rd=$(printf '00%.0s' $(seq 64))
"$bin/ra-quote" sim --dir "$tmp/sim" --report-data "$rd" --out "$tmp/q.dat" --collateral-out "$tmp/coll.json" \
  >/dev/null || fail "ra-quote sim --collateral-out"
timeout 120 "$bin/ra-bench" --tunnel --scenario serial --scenario handshake --trust-sim "$tmp/sim" \
  --collateral "$tmp/coll.json" "${small[@]}" --format csv "$url" >"$tmp/coll.csv" 2>"$tmp/err" \
  || { cat "$tmp/err" >&2; fail "ra-bench --collateral exited $?"; }
grep -q '^handshake,tunnel,4,' "$tmp/coll.csv" || { cat "$tmp/coll.csv" >&2; fail "--collateral: no handshake row"; }
if "$bin/ra-bench" --tunnel --scenario serial --serial 1 --quiet --trust-sim "$tmp/sim" \
     --collateral "${RA_VECTORS:?}/collateral/phala/tdx_quote_collateral.json" "$url" >/dev/null 2>"$tmp/err"; then
  fail "collateral that is not the server's was accepted"
fi
grep -q 'attestation refused' "$tmp/err" || { cat "$tmp/err" >&2; fail "no refusal message (collateral)"; }
set +e
"$bin/ra-bench" --tunnel --collateral "$tmp/coll.json" --pccs http://127.0.0.1:1 "$url" >/dev/null 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "--collateral with --pccs exited $rc, want 2"

# 4. usage errors
for args in "--format xml $url" "--scenario nope $url" "--serial 0 $url" "ftp://x" ""; do
  set +e
  # shellcheck disable=SC2086
  "$bin/ra-bench" $args >/dev/null 2>&1
  rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "ra-bench $args exited $rc, want 2"
done
echo "bench/smoke: ok"

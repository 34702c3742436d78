#!/usr/bin/env bash
# The tunnel client with Intel collateral (issue 11), through ra-curl against
# ra-hello --tee sim (loopback): the sim's own signed collateral is accepted
# (-v: UpToDate, TCB date, expiry); a forged OutOfDate level (sim-signed,
# with advisories) and an expired window refuse with exit 60 and name the
# status / check, unless accepted by name; --pccs against a local PCS
# stand-in (pcs_server.js serving the sim's document under PCS paths)
# fetches once and then serves from the cache (request count); a PCCS that
# answers 404, is down, or never answers fails closed (60, or 28 on the
# timeout), never a signatures-only success; flags that exclude each other
# are a usage error (2).
set -u
: "${RA_BIN:?RA_BIN must point at the bin folder of the build}"
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
# a verification that hangs (a collateral fetch) fails instead of the run
check() { # check NAME EXPECTED_EXIT CMD...
  local name=$1 want=$2; shift 2
  local rc=0
  timeout 30 "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  if [ "$rc" = "$want" ]; then ok "$name"; else
    bad "$name: exit $rc, want $want"; sed 's/^/     | /' "$tmp/out" "$tmp/err" | head -30; fi
}
has() { # has NAME PATTERN: stderr of the last check
  if grep -q -- "$2" "$tmp/err"; then ok "$1"; else bad "$1: no '$2' in stderr:"; sed 's/^/     | /' "$tmp/err" | head -30; fi
}
lacks() {
  if grep -q -- "$2" "$tmp/err"; then bad "$1: '$2' in stderr"; else ok "$1"; fi
}

sim="$tmp/sim"
"$RA_BIN/ra-hello" --listen 127.0.0.1:0 --quiet --tee sim --sim-dir "$sim" >"$tmp/hello.out" 2>"$tmp/hello.err" &
pids+=($!)
await_port "$tmp/hello.out" "$tmp/hello.err" $! ra-hello
url="http://127.0.0.1:$port/hello"

# the sim's collateral, as users get it (ra-quote sim), and forged variants
rd=$(printf '00%.0s' $(seq 64))
"$RA_BIN/ra-quote" sim --dir "$sim" --report-data "$rd" --out "$tmp/q.dat" --collateral-out "$tmp/good.json" \
  >/dev/null || { echo "FAIL: ra-quote sim --collateral-out"; exit 1; }
"$RA_BIN/sim-collateral" "$sim" "$tmp/outdated.json" --outdated || { echo "FAIL: sim-collateral --outdated"; exit 1; }
"$RA_BIN/sim-collateral" "$sim" "$tmp/expired.json" --expired || { echo "FAIL: sim-collateral --expired"; exit 1; }

C=("$RA_BIN/ra-curl" --trust-sim "$sim")

# ---- without collateral: unchanged ------------------------------------------
check "no collateral: signatures only, accepted" 0 "${C[@]}" -v "$url"
has "no collateral: -v says TCB not evaluated" "signatures only: TCB not evaluated"

# ---- --collateral FILE ---------------------------------------------------------
check "sim collateral: accepted" 0 "${C[@]}" -v --collateral "$tmp/good.json" "$url"
grep -q '^world' "$tmp/out" && ok "sim collateral: the body" || bad "sim collateral: no body"
has "sim collateral: -v TCB status" "TCB: UpToDate"
has "sim collateral: -v TCB date" "TCB date: 2024-03-13T00:00:00Z"
has "sim collateral: -v collateral expiry" "collateral expires: 20"
has "sim collateral: checks tcb_status=pass" "tcb_status=pass"
check "outdated collateral: refused -> 60" 60 "${C[@]}" --collateral "$tmp/outdated.json" "$url"
has "outdated: message names status and advisories" \
  "ra-curl: attestation refused: tcb_status OutOfDate (INTEL-SA-00615, INTEL-SA-00828) not accepted"
[ -s "$tmp/out" ] && bad "outdated: a body was printed" || ok "outdated: no request made"
check "outdated collateral -v: refused -> 60" 60 "${C[@]}" -v --collateral "$tmp/outdated.json" "$url"
has "outdated -v: REFUSED" "attestation: REFUSED"
has "outdated -v: RA_ERR_TCB_STATUS" "RA_ERR_TCB_STATUS"
check "outdated, --accept-tcb UpToDate,OutOfDate -> 0" 0 "${C[@]}" --collateral "$tmp/outdated.json" \
  --accept-tcb UpToDate,OutOfDate "$url"
check "outdated, both advisories allowed -> 0" 0 "${C[@]}" --collateral "$tmp/outdated.json" \
  --allow-advisory INTEL-SA-00615 --allow-advisory INTEL-SA-00828 "$url"
check "outdated, one advisory of two allowed -> 60" 60 "${C[@]}" --collateral "$tmp/outdated.json" \
  --allow-advisory INTEL-SA-00615 "$url"
check "expired collateral -> 60" 60 "${C[@]}" --collateral "$tmp/expired.json" "$url"
has "expired: the check is named (the CRLs follow the window: checked first)" "refused: RA_ERR_CRL_EXPIRED"
check "expired collateral, --allow-expired-collateral -> 0" 0 "${C[@]}" -v --collateral "$tmp/expired.json" \
  --allow-expired-collateral "$url"
has "expired allowed: -v says so" "collateral expired, allowed"
check "--accept-tcb Revoked: usage -> 2" 2 "${C[@]}" --collateral "$tmp/good.json" --accept-tcb Revoked "$url"
check "missing --collateral file -> 2" 2 "${C[@]}" --collateral "$tmp/nope.json" "$url"
check "--pccs and --collateral together -> 2" 2 "${C[@]}" --collateral "$tmp/good.json" --pccs http://127.0.0.1:1 "$url"
check "--collateral-cache without --pccs -> 2" 2 "${C[@]}" --collateral-cache "$tmp/c" "$url"

# ---- --pccs URL: the PCS stand-in serving the sim's collateral ------------------
PCS_COLLATERAL="$tmp/good.json" node "$here/../pcs/pcs_server.js" "${RA_VECTORS:-$here/../../vectors}" \
  >"$tmp/pcs.out" 2>"$tmp/pcs.err" &
pcs_pid=$!
pids+=($pcs_pid)
pport=
for _ in $(seq 1 200); do
  pport=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$tmp/pcs.out")
  [ -n "$pport" ] && break
  sleep 0.05
done
[ -n "$pport" ] || { cat "$tmp/pcs.err"; echo "FAIL: the PCS stand-in did not start"; exit 1; }
pccs="http://127.0.0.1:$pport"
count() { curl -sf "$pccs/__count"; }
mode() { curl -sf "$pccs/__ctl?mode=$1" >/dev/null; }

n0=$(count)
check "--pccs: fetched, accepted" 0 "${C[@]}" -v --pccs "$pccs" --collateral-cache "$tmp/cache" "$url"
has "--pccs: -v TCB status" "TCB: UpToDate"
[ "$(( $(count) - n0 ))" = 4 ] && ok "--pccs: four PCS requests" || bad "--pccs: $(( $(count) - n0 )) requests, want 4"
ls "$tmp/cache" | grep -qx 'tdx-B0C06F000000-platform.json' && ok "--pccs: cache entry written" \
  || { bad "--pccs: no cache entry"; ls "$tmp/cache"; }
n0=$(count)
check "--pccs second run: accepted" 0 "${C[@]}" --pccs "$pccs" --collateral-cache "$tmp/cache" "$url"
[ "$(count)" = "$n0" ] && ok "--pccs second run: from the cache, no request" \
  || bad "--pccs second run made $(( $(count) - n0 )) requests"
mode 404
check "--pccs answering 404 (no cache) -> 60" 60 "${C[@]}" --pccs "$pccs" --no-collateral-cache "$url"
has "404: the check is named" "RA_ERR_COLLATERAL_UNAVAILABLE"
lacks "404: no body" "world"
check "--pccs answering 404, cached entry fresh -> 0 (cache)" 0 "${C[@]}" --pccs "$pccs" --collateral-cache "$tmp/cache" "$url"
mode garbled
check "--pccs garbled answer (no cache) -> 60" 60 "${C[@]}" --pccs "$pccs" --no-collateral-cache "$url"
mode slow
check "--pccs never answering, --max-time 1 -> 28 (no channel)" 28 "${C[@]}" --pccs "$pccs" --no-collateral-cache \
  --max-time 1 "$url"
has "slow: says the collateral fetch timed out" "timed out fetching the collateral"
mode ok
# the C API (tunnel-collateral-check): queued requests wait for the fetch;
# a refused fetch, a free and a timeout while fetching
cc() { # cc MODE [stand-in mode]
  mode "${2:-ok}"
  check "tunnel-collateral-check $1" 0 "$RA_BIN/tunnel-collateral-check" "$1" "http://127.0.0.1:$port" "$sim" "$pccs"
  sed 's/^/     /' "$tmp/out"
}
cc ok
cc refuse 404
cc cancel slow
cc timeout slow
cc einval
mode ok
node "$here/node_server.js" "$RA_BIN" "$sim" >"$tmp/node.out" 2>"$tmp/node.err" &
pids+=($!)
nport=
for _ in $(seq 1 200); do
  nport=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$tmp/node.out")
  [ -n "$nport" ] && break
  sleep 0.05
done
if [ -z "$nport" ]; then bad "node_server.js did not start"; cat "$tmp/node.err"; else
  n0=$(count)
  check "tunnel-collateral-check reuse (node server, reconnect)" 0 "$RA_BIN/tunnel-collateral-check" reuse \
    "http://127.0.0.1:$nport" "$sim" "$pccs"
  sed 's/^/     /' "$tmp/out"
  [ "$(( $(count) - n0 ))" = 4 ] && ok "reuse: one fetch for two handshakes (kept while fresh)" \
    || bad "reuse: $(( $(count) - n0 )) PCS requests, want 4"
fi
# the PCCS down: a port nobody listens on (the stand-in's, after it stopped)
kill -TERM "$pcs_pid"; wait "$pcs_pid" 2>/dev/null
check "--pccs down -> 60 (fail closed)" 60 "${C[@]}" --pccs "$pccs" --collateral-cache "$tmp/empty-cache" "$url"
has "down: the check is named" "RA_ERR_COLLATERAL_UNAVAILABLE"
[ -s "$tmp/out" ] && bad "down: a body was printed" || ok "down: no request made"
check "--pccs down, cache fresh -> 0" 0 "${C[@]}" --pccs "$pccs" --collateral-cache "$tmp/cache" "$url"

echo "$fails failure(s)"
[ "$fails" = 0 ]

#!/usr/bin/env bash
# ra-quote collateral against a local PCS stand-in (pcs_server.js, loopback,
# real Intel collateral of the dcap-qvl samples served under PCS's paths and
# headers): the document is byte-identical to dcap-qvl's sample for the
# TDX and the SGX sample quote; a cache hit makes no request; a refresh once
# the cached nextUpdate is near; 404, 500, a garbled answer, a missing
# issuer chain header, a server that never answers (timeout), a refused
# connection and an https URL each fail with a clear message, exit 1 and
# nothing cached; a failed refresh serves the cached entry until its
# nextUpdate; usage errors exit 2.
set -u
: "${RA_BIN:?}" "${RA_VECTORS:?}"
here=$(cd "$(dirname "$0")" && pwd)
Q="$RA_BIN/ra-quote"
C="$RA_VECTORS/collateral/phala"
T=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

node "$here/pcs_server.js" "$RA_VECTORS" >"$T/srv.out" 2>"$T/srv.err" &
pid=$!
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$T/srv.out")
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { cat "$T/srv.err"; echo "FAIL: the PCS stand-in did not start"; exit 1; }
URL="http://127.0.0.1:$port"
count() { curl -sf "$URL/__count"; }
mode() { curl -sf "$URL/__ctl?mode=$1" >/dev/null; }

# expect CODE DESCRIPTION -- COMMAND...
expect() {
  local want=$1 what=$2; shift 3
  "$@" >"$T/out" 2>"$T/err"
  local got=$?
  if [ "$got" != "$want" ]; then
    fail "$what: exit $got, want $want"; sed 's/^/  | /' "$T/out" "$T/err" | head -20
  else
    ok "$what"
  fi
}
err_has() { grep -q -- "$1" "$T/err" && ok "message: $1" || { fail "stderr lacks '$1'"; sed 's/^/  | /' "$T/err"; }; }

IN=2025-06-25T00:00:00Z     # inside the samples' collateral window
LATER=2025-07-01T00:00:00Z  # still inside
PAST=2025-07-19T09:30:00Z   # within the hour before the earliest nextUpdate (10:00:35Z)

# ---- fetch: the dcap-qvl document, byte for byte ---------------------------
for s in tdx sgx; do
  n0=$(count)
  expect 0 "$s: fetch" -- "$Q" collateral "$C/${s}_quote" --pccs "$URL" --out "$T/$s.json" --cache "$T/cache" --at $IN
  cmp -s "$T/$s.json" "$C/${s}_quote_collateral.json" && ok "$s: byte-identical to dcap-qvl's sample" \
    || fail "$s: the document differs from $C/${s}_quote_collateral.json"
  [ "$(( $(count) - n0 ))" = 4 ] && ok "$s: four requests" || fail "$s: $(( $(count) - n0 )) requests, want 4"
done
ls "$T/cache" | grep -qx 'tdx-B0C06F000000-platform.json' && ok "cache entry named by tee, FMSPC, CA" \
  || { fail "cache entry name"; ls "$T/cache"; }
ls "$T/cache" | grep -q 'tmp' && fail "temporary file left in the cache" || ok "no temporary file left"

# ---- cache hit: no request ---------------------------------------------------
n0=$(count)
rm -f "$T/tdx.json"
expect 0 "tdx: cache hit" -- "$Q" collateral "$C/tdx_quote" --pccs "$URL" --out "$T/tdx.json" --cache "$T/cache" --at $LATER
err_has "from the cache"
[ "$(count)" = "$n0" ] && ok "cache hit: the server was not contacted" || fail "cache hit made $(( $(count) - n0 )) requests"
cmp -s "$T/tdx.json" "$C/tdx_quote_collateral.json" && ok "cache hit: same document" || fail "cache hit: document differs"

# ---- refresh before nextUpdate ---------------------------------------------
n0=$(count)
expect 0 "tdx: refresh near nextUpdate" -- "$Q" collateral "$C/tdx_quote" --pccs "$URL" --out "$T/tdx.json" --cache "$T/cache" --at $PAST
err_has "fetched, cached"
[ "$(( $(count) - n0 ))" = 4 ] && ok "refresh: fetched again" || fail "refresh: $(( $(count) - n0 )) requests, want 4"

# a failed refresh serves the cached entry until its nextUpdate, not after
mode 404
expect 0 "tdx: failed refresh, cached entry still valid" -- "$Q" collateral "$C/tdx_quote" --pccs "$URL" --out "$T/tdx.json" --cache "$T/cache" --at $PAST
err_has "refresh failed"
cmp -s "$T/tdx.json" "$C/tdx_quote_collateral.json" && ok "failed refresh: cached document" || fail "failed refresh: document differs"
expect 1 "tdx: failed refresh past nextUpdate" -- "$Q" collateral "$C/tdx_quote" --pccs "$URL" --out "$T/tdx2.json" --cache "$T/cache" --at 2025-07-19T11:00:00Z
err_has "404 Not Found"
mode ok

# ---- a garbled cache file is ignored and replaced ------------------------------
echo '{"pck_crl_issuer_chain": "garbage' >"$T/cache/tdx-B0C06F000000-platform.json"
n0=$(count)
expect 0 "tdx: garbled cache entry re-fetched" -- "$Q" collateral "$C/tdx_quote" --pccs "$URL" --out "$T/tdx.json" --cache "$T/cache" --at $IN
[ "$(( $(count) - n0 ))" = 4 ] && ok "garbled entry: fetched again" || fail "garbled entry: $(( $(count) - n0 )) requests"
cmp -s "$T/cache/tdx-B0C06F000000-platform.json" "$C/tdx_quote_collateral.json" && ok "garbled entry replaced" \
  || fail "garbled entry not replaced"

# ---- failures: exit 1, a clear message, nothing cached, no output -----------
# failcase MODE MESSAGE [extra args]
failcase() {
  local m=$1 msg=$2; shift 2
  mode "$m"
  rm -rf "$T/c2" "$T/o.json"
  expect 1 "$m: fails" -- "$Q" collateral "$C/tdx_quote" --pccs "$URL" --out "$T/o.json" --cache "$T/c2" --at $IN "$@"
  err_has "$msg"
  [ -e "$T/o.json" ] && fail "$m: output written" || ok "$m: no output"
  [ -n "$(ls -A "$T/c2" 2>/dev/null)" ] && fail "$m: something cached" || ok "$m: nothing cached"
}
failcase 404 "404 Not Found"
failcase 500 "HTTP status 500"
failcase garbled "not a valid TCB info answer"
failcase nochain "not a valid TCB info answer"
start=$(date +%s%N)
failcase slow "Connection timed out" --timeout 500
el=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$el" -lt 5000 ] && ok "timeout honoured (${el} ms)" || fail "timeout took ${el} ms"
mode ok

# a refused connection, https, usage
expect 1 "connection refused" -- "$Q" collateral "$C/tdx_quote" --pccs "http://127.0.0.1:1" --out "$T/o.json" --no-cache
err_has "Connection refused"
expect 1 "https not supported yet" -- "$Q" collateral "$C/tdx_quote" --pccs "https://127.0.0.1:$port" --out "$T/o.json" --no-cache
err_has "https not supported yet"
expect 2 "no --pccs" -- "$Q" collateral "$C/tdx_quote" --out "$T/o.json"
expect 2 "no --out" -- "$Q" collateral "$C/tdx_quote" --pccs "$URL"
expect 2 "bad URL" -- "$Q" collateral "$C/tdx_quote" --pccs "ftp//x" --out "$T/o.json" --no-cache
expect 2 "unreadable quote" -- "$Q" collateral "$T/nope" --pccs "$URL" --out "$T/o.json"
expect 2 "unknown option" -- "$Q" collateral "$C/tdx_quote" --pccs "$URL" --out "$T/o.json" --frobnicate
head -c 100 "$C/tdx_quote" >"$T/short"
expect 1 "truncated quote" -- "$Q" collateral "$T/short" --pccs "$URL" --out "$T/o.json" --no-cache

# ---- the default cache directory: $XDG_CACHE_HOME/raloop/collateral ----------
expect 0 "XDG_CACHE_HOME" -- env XDG_CACHE_HOME="$T/xdg" "$Q" collateral "$C/sgx_quote" --pccs "$URL" --out "$T/s.json" --at $IN
[ -f "$T/xdg/raloop/collateral/sgx-00A067110000-processor.json" ] && ok "default cache dir used" \
  || { fail "default cache dir"; find "$T/xdg"; }

echo "$fails failure(s)"
[ "$fails" = 0 ]

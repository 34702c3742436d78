#!/usr/bin/env bash
# ra-quote collateral against a local PCS stand-in (pcs_server.js, loopback,
# real Intel collateral of the dcap-qvl samples served under PCS's paths and
# headers): the document is byte-identical to dcap-qvl's sample for the
# TDX and the SGX sample quote; a cache hit makes no request; a refresh once
# the cached nextUpdate is near; 404, 500, a garbled answer, a missing
# issuer chain header, a server that never answers (timeout), a refused
# connection each fail with a clear message, exit 1 and nothing cached; a
# failed refresh serves the cached entry until its nextUpdate; usage errors
# exit 2. Then the same server over HTTPS with a test CA: fetched when the
# CA is trusted (--ca-file), refused when the certificate does not verify
# (system store) or names another host, and a plain-HTTP server refused.
set -u
: "${RA_BIN:?}" "${RA_VECTORS:?}"
here=$(cd "$(dirname "$0")" && pwd)
Q="$RA_BIN/ra-quote"
C="$RA_VECTORS/collateral/phala"
. "$here/../exit_checks.sh"

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
# start NAME ARGS...: runs the stand-in, sets $port
start() {
  local name=$1; shift
  node "$here/pcs_server.js" "$RA_VECTORS" "$@" >"$T/$name.out" 2>"$T/$name.err" &
  pids+=($!)
  port=
  for _ in $(seq 1 200); do
    port=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$T/$name.out")
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { cat "$T/$name.err"; echo "FAIL: the PCS stand-in ($name) did not start"; exit 1; }
}
start plain
URL="http://127.0.0.1:$port"
count() { curl -sf "$URL/__count"; }
mode() { curl -sf "$URL/__ctl?mode=$1" >/dev/null; }

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
expect 2 "another scheme" -- "$Q" collateral "$C/tdx_quote" --pccs "ftp://127.0.0.1:$port" --out "$T/o.json" --no-cache
expect 1 "https to a plain-HTTP server" -- "$Q" collateral "$C/tdx_quote" --pccs "https://127.0.0.1:$port" --out "$T/o.json" --no-cache --timeout 3000
err_has "TLS handshake failed"
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

# ---- https: a test CA, a server certificate for 127.0.0.1 and localhost -------
plain_url=$URL
if command -v openssl >/dev/null; then
  o() { openssl "$@" 2>>"$T/openssl.log" || { cat "$T/openssl.log"; exit 1; }; }
  o req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/ca.key" -out "$T/ca.pem" \
    -days 2 -subj "/CN=raloop test CA" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
  mkcert() { # NAME SAN
    o req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$1.key" -out "$T/$1.csr" -subj "/CN=$1"
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$2" >"$T/$1.ext"
    o x509 -req -in "$T/$1.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial -days 2 \
      -extfile "$T/$1.ext" -out "$T/$1.pem"
  }
  mkcert good "IP:127.0.0.1,DNS:localhost"
  mkcert other "DNS:pcs.example"
  start tls "$T/good.pem" "$T/good.key"
  S="https://127.0.0.1:$port"
  expect 0 "https: fetch with the test CA trusted" -- "$Q" collateral "$C/tdx_quote" --pccs "$S" --out "$T/tls.json" --no-cache --ca-file "$T/ca.pem"
  cmp -s "$T/tls.json" "$C/tdx_quote_collateral.json" && ok "https: byte-identical to dcap-qvl's sample" \
    || fail "https: the document differs"
  expect 0 "https: by name (localhost)" -- "$Q" collateral "$C/sgx_quote" --pccs "https://localhost:$port" --out "$T/tls2.json" --no-cache --ca-file "$T/ca.pem"
  rm -f "$T/o.json"
  expect 1 "https: refused with the system CA store" -- "$Q" collateral "$C/tdx_quote" --pccs "$S" --out "$T/o.json" --no-cache
  err_has "certificate verify failed"
  [ -e "$T/o.json" ] && fail "https refused: output written" || ok "https refused: no output"
  expect 2 "https: missing CA file" -- "$Q" collateral "$C/tdx_quote" --pccs "$S" --out "$T/o.json" --no-cache --ca-file "$T/nope.pem"
  start tls-other "$T/other.pem" "$T/other.key"
  expect 1 "https: certificate for another host" -- "$Q" collateral "$C/tdx_quote" --pccs "https://127.0.0.1:$port" --out "$T/o.json" --no-cache --ca-file "$T/ca.pem"
  err_has "certificate verify failed"
else
  echo "skip: no openssl command for the https tests"
fi

echo "$fails failure(s)"
[ "$fails" = 0 ]

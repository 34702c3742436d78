#!/usr/bin/env bash
# The C relay client (ra_relay_client over ws/client) on wss://: two C
# clients register and exchange messages both ways through ra-hello's /relay
# on its TLS listener (the test's certificate trusted through OpenSSL's
# SSL_CERT_FILE, the system store's override); without that trust the
# client refuses the certificate and fails.
set -euo pipefail
: "${RA_BIN:?RA_BIN must point at the bin folder of the build}"
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }; rm -rf "$tmp"; }
trap cleanup EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
"$RA_BIN/ra-hello" --listen-tls 127.0.0.1:0 --cert "$tmp/cert.pem" --key "$tmp/key.pem" --no-tunnel \
  >"$tmp/out" 2>"$tmp/err" &
pid=$!
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's/^listening on https:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/out")
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/err"; echo "ra-hello died"; exit 1; }
  sleep 0.05
done
[ -n "$port" ] || { echo "ra-hello did not start"; exit 1; }
fails=0
if SSL_CERT_FILE="$tmp/cert.pem" timeout 30 "$RA_BIN/relay-client-check" pair "wss://127.0.0.1:$port/relay"; then
  echo "ok   two C clients over wss:// exchange both ways; offline gets ERROR"
else echo "FAIL C clients over wss://"; fails=$((fails + 1)); fi
if SSL_CERT_FILE=/dev/null timeout 30 "$RA_BIN/relay-client-check" pair "wss://127.0.0.1:$port/relay" >"$tmp/c.out" 2>&1; then
  echo "FAIL an untrusted certificate was accepted"; fails=$((fails + 1))
elif grep -q 'certificate refused: certificate verify failed: self-signed certificate' "$tmp/c.out"; then
  echo "ok   an untrusted certificate is refused (self-signed, verify failed)"
else
  # Any other failure (refused connection, crash, timeout) must not pass as a refusal.
  cat "$tmp/c.out"; echo "FAIL the untrusted run failed for a reason other than the certificate"; fails=$((fails + 1))
fi
[ "$fails" = 0 ]

#!/usr/bin/env bash
# tests/tls/ratls.sh: the TLS client side of ra-curl, and RA-TLS.
#  - the attested tunnel over wss:// (https:// and wss:// URLs) against
#    ra-hello --listen-tls, the certificate checked with --cacert;
#  - self-signed, expired and wrong-host certificates refused by ra-curl
#    (exit 60) unless told (-k/--insecure; --cacert for the self-signed one);
#  - ra-hello --ra-tls --tee sim: ra-curl --ra-tls --trust-sim DIR gets its
#    answer over plain HTTPS; a wrong --mrtd is refused naming the step, and
#    the server logs no request; no quote extension (a CA certificate) and an
#    untrusted root are refused too; --ra-tls with wss:// (the tunnel inside
#    RA-TLS); curl -k still connects; openssl shows the extension; SIGHUP
#    renews the key and certificate.
# Certificates: tests/tls/mkcerts.sh into a temp dir.
set -euo pipefail
BIN=${RA_BIN:?RA_BIN must point at the built programs}
SRC=${RA_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$(dirname "$0")/../lib.sh"

"$SRC/tests/tls/mkcerts.sh" "$tmp/c"
C=$tmp/c
SIM=$tmp/sim

# start NAME ARGS...: ra-hello with a TLS listener; sets port_NAME
start() {
  local name=$1; shift
  "$BIN/ra-hello" --listen-tls 127.0.0.1:0 --tee sim --sim-dir "$SIM" "$@" \
    >"$tmp/$name.out" 2>"$tmp/$name.log" &
  pids+=($!)
  eval "pid_$name=$!"
  await_port "$tmp/$name.out" "$tmp/$name.log" $! "ra-hello ($name)" 's|^listening on https://127\.0\.0\.1:\([0-9]*\)$|\1|p'
  eval "port_$name=$port"
}
start good --cert "$C/server.pem" --key "$C/server.key"
start self --cert "$C/self.pem" --key "$C/self.key"
start expired --cert "$C/expired.pem" --key "$C/expired.key"
start wrong --cert "$C/wronghost.pem" --key "$C/wronghost.key"
start ratls --ra-tls

# rc NAME ARGS...: runs ra-curl, output in $tmp/NAME.{body,err}, exit status in rc_NAME
rc() {
  local name=$1; shift
  set +e
  timeout 20 "$BIN/ra-curl" --max-time 10 "$@" >"$tmp/$name.body" 2>"$tmp/$name.err"
  eval "rc_$name=$?"
  set -e
}
body() { cat "$tmp/$1.body"; }
# wait_log FILE PATTERN: the server writes its access line after answering
wait_log() { for _ in $(seq 100); do grep -q "$2" "$1" && return 0; sleep 0.05; done; return 1; }
nreq() { grep -c 'GET /hello' "$tmp/$1.log" || true; }

# ---- the tunnel over wss:// --------------------------------------------------------
rc t1 --cacert "$C/ca.pem" --trust-sim "$SIM" "https://localhost:$port_good/hello"
check "tunnel over wss:// (https:// URL, --cacert): world" eval '[ "$rc_t1" = 0 ] && [ "$(body t1)" = world ]'
rc t2 --cacert "$C/ca.pem" --trust-sim "$SIM" -d 'over tls' "wss://localhost:$port_good/echo"
check "tunnel over wss:// (wss:// URL): POST echoed" eval '[ "$rc_t2" = 0 ] && [ "$(body t2)" = '"'"'over tls'"'"' ]'
check "the server answered through the tunnel" wait_log "$tmp/good.log" 'GET /hello 200 .*(tunnel)'
check "the control channel was wss:// (on the TLS listener)" grep -q 'GET /__ra__ 101' "$tmp/good.log"
rc t3 --trust-sim "$SIM" "https://localhost:$port_good/hello"
check "test CA not in the system store: refused, exit 60" [ "$rc_t3" = 60 ]
check "  says the certificate was refused" grep -q 'certificate refused' "$tmp/t3.err"

# ---- certificates refused unless told ----------------------------------------------
rc s1 --trust-sim "$SIM" "https://localhost:$port_self/hello"
check "self-signed: refused (exit 60)" [ "$rc_s1" = 60 ]
sleep 0.2
check "self-signed: no request reached the server" [ "$(nreq self)" = 0 ]
rc s2 -k --trust-sim "$SIM" "https://localhost:$port_self/hello"
check "self-signed: -k connects" eval '[ "$rc_s2" = 0 ] && [ "$(body s2)" = world ]'
rc s3 --cacert "$C/self.pem" --trust-sim "$SIM" "https://localhost:$port_self/hello"
check "self-signed: --cacert it connects" eval '[ "$rc_s3" = 0 ] && [ "$(body s3)" = world ]'
rc e1 --cacert "$C/ca.pem" --trust-sim "$SIM" "https://localhost:$port_expired/hello"
check "expired: refused (exit 60)" [ "$rc_e1" = 60 ]
sleep 0.2
check "expired: no request reached the server" [ "$(nreq expired)" = 0 ]
rc e2 --insecure --trust-sim "$SIM" "https://localhost:$port_expired/hello"
check "expired: --insecure connects" eval '[ "$rc_e2" = 0 ] && [ "$(body e2)" = world ]'
rc w1 --cacert "$C/ca.pem" --trust-sim "$SIM" "https://localhost:$port_wrong/hello"
check "wrong host: refused (exit 60)" [ "$rc_w1" = 60 ]
sleep 0.2
check "wrong host: no request reached the server" [ "$(nreq wrong)" = 0 ]
rc w2 -k --trust-sim "$SIM" "https://localhost:$port_wrong/hello"
check "wrong host: -k connects" eval '[ "$rc_w2" = 0 ] && [ "$(body w2)" = world ]'
"$BIN/ra-curl" --help 2>&1 | grep -q -- '-k, --insecure  disables certificate checks'
check "help names -k/--insecure as disabling certificate checks" [ $? = 0 ]

# ---- RA-TLS ------------------------------------------------------------------------
R=https://127.0.0.1:$port_ratls
rc r1 --ra-tls --trust-sim "$SIM" "$R/hello"
check "RA-TLS: ra-curl --ra-tls --trust-sim: world" eval '[ "$rc_r1" = 0 ] && [ "$(body r1)" = world ]'
check "RA-TLS: a plain HTTPS request (no tunnel)" wait_log "$tmp/ratls.log" 'GET /hello 200 [0-9]*us$'
check "  and no tunnel was opened" bash -c "! grep -q 'GET /__ra__' '$tmp/ratls.log'"
rc r2 --ra-tls --trust-sim "$SIM" -d '{"a":1}' -H 'Content-Type: application/json' "$R/echo"
check "RA-TLS: POST body echoed" eval '[ "$rc_r2" = 0 ] && [ "$(body r2)" = '"'"'{"a":1}'"'"' ]'
rc r3 --ra-tls --trust-sim "$SIM" --mrtd "$(printf '5d%.0s' $(seq 48))" -v "$R/hello"
check "RA-TLS: the right --mrtd: world" eval '[ "$rc_r3" = 0 ] && [ "$(body r3)" = world ]'
check "RA-TLS: -v says VERIFIED" grep -q 'RA-TLS certificate: VERIFIED' "$tmp/r3.err"
wait_log "$tmp/ratls.log" 'GET /hello 200' || true
sleep 0.1
before=$(nreq ratls)
rc r4 --ra-tls --trust-sim "$SIM" --mrtd "$(printf '11%.0s' $(seq 48))" "$R/hello"
sleep 0.2
after=$(nreq ratls)
check "RA-TLS: wrong --mrtd refused, exit 60" [ "$rc_r4" = 60 ]
check "RA-TLS: the step is named (quote: measurements)" grep -q 'RA-TLS: quote: measurements' "$tmp/r4.err"
check "RA-TLS: the server logged no request" [ "$before" = "$after" ]
rc r5 --ra-tls --trust-sim "$SIM" "https://127.0.0.1:$port_good/hello"
check "RA-TLS against a CA certificate: refused, exit 60" [ "$rc_r5" = 60 ]
check "  step: no quote extension" grep -q 'RA-TLS: no quote extension' "$tmp/r5.err"
rc r6 --ra-tls --any-measurement-insecure "$R/hello"
check "RA-TLS with Intel's root only: refused (chain)" eval '[ "$rc_r6" = 60 ] && grep -q '"'"'RA-TLS: quote: chain'"'"' "$tmp/r6.err"'
rc r7 --ra-tls --trust-sim "$SIM" "wss://127.0.0.1:$port_ratls/hello"
check "RA-TLS + tunnel (wss:// URL): world through the tunnel" eval '[ "$rc_r7" = 0 ] && [ "$(body r7)" = world ] && wait_log "$tmp/ratls.log" '"'"'GET /hello 200 .*(tunnel)'"'"''
rc r8 --ra-tls -k "$R/hello"
check "--ra-tls with -k: usage error" [ "$rc_r8" = 2 ]
rc r9 --ra-tls --trust-sim "$SIM" "http://127.0.0.1:$port_ratls/hello"
check "--ra-tls with http://: usage error" [ "$rc_r9" = 2 ]
check "curl -k to the RA-TLS server" [ "$(curl -sSk --max-time 10 "$R/hello")" = world ]

# the certificate, as any TLS tool sees it
timeout 10 openssl s_client -connect "127.0.0.1:$port_ratls" </dev/null 2>/dev/null |
  openssl x509 >"$tmp/ratls.pem"
openssl x509 -in "$tmp/ratls.pem" -noout -text >"$tmp/ratls.txt"
check "openssl x509 -text shows the quote extension (1.3.6.1.4.1.62397.1.1)" \
  grep -q '1.3.6.1.4.1.62397.1.1:' "$tmp/ratls.txt"
check "  an ECDSA P-256 key" grep -q 'prime256v1' "$tmp/ratls.txt"
fp1=$(openssl x509 -in "$tmp/ratls.pem" -noout -fingerprint -sha256)
kill -HUP "$pid_ratls"
for _ in $(seq 100); do grep -q 'SIGHUP: TLS certificates reloaded' "$tmp/ratls.log" && break; sleep 0.05; done
timeout 10 openssl s_client -connect "127.0.0.1:$port_ratls" </dev/null 2>/dev/null |
  openssl x509 >"$tmp/ratls2.pem"
fp2=$(openssl x509 -in "$tmp/ratls2.pem" -noout -fingerprint -sha256)
k1=$(openssl x509 -in "$tmp/ratls.pem" -noout -pubkey)
k2=$(openssl x509 -in "$tmp/ratls2.pem" -noout -pubkey)
check "SIGHUP: a new certificate and a new key" eval '[ "$fp1" != "$fp2" ] && [ "$k1" != "$k2" ]'
rc r10 --ra-tls --trust-sim "$SIM" "$R/hello"
check "SIGHUP: the new certificate verifies (its quote binds the new key)" eval '[ "$rc_r10" = 0 ] && [ "$(body r10)" = world ]'

if [ "$fails" != 0 ]; then
  for f in "$tmp"/*.err; do echo "== $f"; cat "$f"; done
  echo "== ratls.log"; cat "$tmp/ratls.log"
fi
echo "$fails failure(s)"
[ "$fails" = 0 ]

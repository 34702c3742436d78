#!/usr/bin/env bash
# Client attestation in the tunnel (PROTOCOL.md §10): ra-curl --client-tee
# against ra-hello --client-* (GET /whoami), refusals with their reasons
# (no attestation, untrusted root, wrong MRTD, an OutOfDate TCB with
# collateral, wrong / missing dstack app id), a recorded attestation replayed into other sessions
# (client-att-replay), and compatibility both ways: the reference-compatible
# Node client against ra-hello, our client against the Node server.
#   client_att.sh AGENT REPLAY  (the stand-in dstack agent, client-att-replay)
set -euo pipefail
: "${RA_BIN:?RA_BIN must point at the bin folder of the build}"
AGENT=$1 REPLAY=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
hellos=()
C="$RA_BIN/ra-curl"
srv="$tmp/srv" cli="$tmp/cli" agentsim="$tmp/agentsim"
APP=0a0b0c0d0e0f101112131415161718191a1b1c1d

# hello NAME [flags...]: starts ra-hello (its own sim in $srv), sets NAME_port
hello() {
  local name=$1; shift
  serve "$name" "" "$RA_BIN/ra-hello" --listen 127.0.0.1:0 --tee sim --sim-dir "$srv" "$@"
  hellos+=("$server_pid:$name")
}
check_show=(sed 's/^/  | /')
says() { # says NAME TEXT: the last check's stdout or stderr has TEXT
  if grep -qF -- "$2" "$tmp/check.out" "$tmp/check.err"; then echo "ok   $1 says '$2'"; else
    echo "FAIL $1 does not say '$2'"; sed 's/^/  | /' "$tmp/check.out" "$tmp/check.err"; fails=$((fails+1)); fi
}

# the stand-in dstack agent: sim quotes with an event log naming app $APP
S="$tmp/dstack.sock"
"$AGENT" --socket "$S" --sim-dir "$agentsim" --app-id $APP >"$tmp/agent.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q ready "$tmp/agent.out" && break; sleep 0.05; done

# the clients' sim is created by the first of ra-hello --client-trust-sim / ra-curl
hello main --client-trust-sim "$cli"
hello mrtd --client-trust-sim "$cli" --client-mrtd "$(printf '11%.0s' $(seq 48))"
hello app --client-trust-sim "$agentsim" --client-app-id $APP
hello wrongapp --client-trust-sim "$agentsim" --client-app-id 00${APP:2}
hello plain # no client policy
# Intel-style collateral for the clients' sim: genuine, and with an OutOfDate TCB level
"$RA_BIN/sim-collateral" "$cli" "$tmp/good.json" && "$RA_BIN/sim-collateral" "$cli" "$tmp/old.json" --outdated ||
  { echo "FAIL: sim-collateral"; exit 1; }
hello tcb --client-trust-sim "$cli" --client-collateral "$tmp/good.json"
hello tcbold --client-trust-sim "$cli" --client-collateral "$tmp/old.json"
M="http://127.0.0.1:$main_port"
T=(--trust-sim "$srv")

# --- the happy path
check_exit "whoami with --client-tee sim" 0 "$C" "${T[@]}" --client-tee sim --client-sim-dir "$cli" "$M/whoami"
says "whoami" '"tee":"tdx"'
says "whoami" '"simulated":true'
mrtd=$(sed -n 's/.*"mrtd":"\([0-9a-f]*\)".*/\1/p' "$tmp/check.out")
[ ${#mrtd} = 96 ] && echo "ok   whoami: mrtd is 48 bytes of hex" || { echo "FAIL whoami: mrtd '$mrtd'"; fails=$((fails+1)); }
check_exit "/hello as an attested client" 0 "$C" "${T[@]}" --client-tee sim --client-sim-dir "$cli" -v "$M/hello"
says "hello (attested client)" "world"
says "ra-curl -v" "our own attestation sent"

# --- no client attestation: /whoami refused with a reason, /hello served
check_exit "whoami without client attestation" 22 "$C" "${T[@]}" --fail "$M/whoami"
check_exit "whoami without client attestation (body)" 0 "$C" "${T[@]}" "$M/whoami"
says "whoami 403" '"error":"client attestation required"'
check_exit "hello without client attestation" 0 "$C" "${T[@]}" "$M/hello"
says "hello" "world"
check_exit "whoami over plain HTTP" 0 curl -sS "$M/whoami"
says "plain whoami" "client attestation required"

# --- refusals: the tunnel is closed with the reason, ra-curl exits 60
check_exit "client quote from an untrusted sim" 60 "$C" "${T[@]}" --client-tee sim --client-sim-dir "$tmp/other" "$M/hello"
says "untrusted" "client attestation refused: chain"
check_exit "wrong --client-mrtd" 60 "$C" "${T[@]}" --client-tee sim --client-sim-dir "$cli" "http://127.0.0.1:$mrtd_port/whoami"
says "wrong mrtd" "client attestation refused: measurements"
check_exit "wrong mrtd: nothing served either" 60 "$C" "${T[@]}" --client-tee sim --client-sim-dir "$cli" "http://127.0.0.1:$mrtd_port/hello"
grep -q "client attestation refused: measurements" "$tmp/mrtd.err" && echo "ok   ra-hello logs the refusal" ||
  { echo "FAIL ra-hello does not log the refusal"; fails=$((fails+1)); }

# --- the clients' TCB status, with collateral on the server
check_exit "client TCB evaluated (UpToDate)" 0 "$C" "${T[@]}" --client-tee sim --client-sim-dir "$cli" "http://127.0.0.1:$tcb_port/whoami"
says "tcb whoami" '"tcb_status":"UpToDate"'
check_exit "client TCB OutOfDate refused" 60 "$C" "${T[@]}" --client-tee sim --client-sim-dir "$cli" "http://127.0.0.1:$tcbold_port/whoami"
says "outdated" "client attestation refused: tcb_status"

# --- dstack: the app id from the client's event log (the stand-in agent)
check_exit "dstack client, app id pinned" 0 "$C" "${T[@]}" --client-tee "dstack:$S" "http://127.0.0.1:$app_port/whoami"
says "dstack whoami" "\"app_id\":\"$APP\""
check_exit "dstack client, another app id pinned" 60 "$C" "${T[@]}" --client-tee "dstack:$S" "http://127.0.0.1:$wrongapp_port/whoami"
says "wrong app id" "client attestation refused: app_id"
check_exit "app id pinned, client without an event log" 60 "$C" "${T[@]}" --client-tee sim --client-sim-dir "$agentsim" \
  "http://127.0.0.1:$app_port/whoami"
says "no event log" "client attestation refused: app_id"

# --- replay into other sessions (a C harness speaking the protocol by hand)
check_exit "client-att-replay" 0 "$REPLAY" "$M" "$cli"
sed 's/^/     /' "$tmp/check.out"

# --- compatibility both ways
if command -v node >/dev/null && [ -d "$here/../../node_modules/cbor-x" ]; then
  check_exit "reference-compatible client (no client quote) against ra-hello" 0 node "$here/client_att_ref.js" "$M"
  sed 's/^/     /' "$tmp/check.out"
  node "$here/node_server.js" "$RA_BIN" "$tmp/nodesim" >"$tmp/node.out" 2>"$tmp/node.err" &
  pids+=($!)
  for _ in $(seq 1 200); do grep -q '^PORT ' "$tmp/node.out" && break; sleep 0.05; done
  nport=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$tmp/node.out")
  check_exit "our client with --client-tee against the Node server (no challenge: nothing sent)" 0 \
    "$C" --trust-sim "$tmp/nodesim" --client-tee sim --client-sim-dir "$cli" -v "http://127.0.0.1:$nport/hello"
  says "node server" "world"
  check_exit "a client_kx with clientAttestation against the Node server (ignored)" 0 \
    node "$here/client_att_ref.js" "http://127.0.0.1:$nport" --node-server
  sed 's/^/     /' "$tmp/check.out"
  check_exit "our client with --client-tee against the Node server, again" 0 \
    "$C" --trust-sim "$tmp/nodesim" --client-tee sim --client-sim-dir "$cli" -v "http://127.0.0.1:$nport/hello"
  if grep -q "our own attestation sent" "$tmp/check.err"; then
    echo "FAIL an attestation was sent to a server that asked for none"; fails=$((fails+1))
  else echo "ok   no attestation sent to the Node server"; fi
else
  echo "SKIP: node or tests/node_modules missing (scripts/deps.sh): compatibility part"
fi
check_exit "our client with --client-tee against ra-hello without a client policy" 0 \
  "$C" "${T[@]}" --client-tee sim --client-sim-dir "$cli" "http://127.0.0.1:$plain_port/hello"
says "no client policy" "world"

# every ra-hello stops cleanly on SIGTERM (under ASan: no leak, no error report)
before=$fails
for h in "${hellos[@]}"; do
  p=${h%%:*} n=${h#*:} rc=0
  kill -TERM "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || rc=$?
  if [ "$rc" != 0 ] || grep -qE 'LeakSanitizer|AddressSanitizer|runtime error' "$tmp/$n.err"; then
    echo "FAIL ra-hello $n: exit $rc"; grep -A12 -E 'Sanitizer|runtime error' "$tmp/$n.err" | head -30; fails=$((fails+1))
  fi
done
[ "$fails" = "$before" ] && echo "ok   every ra-hello stopped cleanly (no sanitizer report)"

[ "$fails" = 0 ] && echo "all passed" || echo "$fails failed"
[ "$fails" = 0 ]

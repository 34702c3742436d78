#!/usr/bin/env bash
# ra-quote verify --event-log/--app-id/--compose-hash: dstack event-log
# replay against two real dstack GetQuote answers (tests/vectors/dstack,
# from Dstack-TEE/dstack's verifier fixtures) and against the stand-in
# agent ($1, tests/attest/dstack/agent.c) reached with curl --unix-socket,
# as a dstack app would; exit codes 0 valid, 1 invalid, 2 unreadable.
set -u
AGENT=$1
Q="$RA_BIN/ra-quote"
V="$RA_VECTORS/dstack"
. "$(dirname "$0")/../exit_checks.sh"
expect_shown=30
apid= hpid=
cleanup() {
  for p in $hpid $apid; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT

APP=3763bc34552cf3a27ff71ad5f7a90471562a1a2d
COMPOSE=3763bc34552cf3a27ff71ad5f7a90471562a1a2df552dfc1998cba2d60da27e7
G="$V/getquote-tdx.json"

# --- real dstack quotes and event logs (Intel root, signatures only) ---
expect 0 "real: replay + app id" -- "$Q" verify "$G" --event-log "$G" --app-id $APP
says "real" "RTMR0-3 replayed from 28 events match the quote; app-id pinned and matched"
says "real" "runtime_events       system-preparing,app-id,compose-hash,instance-id,boot-mr-done,key-provider,system-ready"
expect 0 "real: compose hash" -- "$Q" verify "$G" --event-log "$G" --compose-hash $COMPOSE --json
says "real json" '"event_log":{"valid":true'
says "real json" "\"compose_hash\":\"$COMPOSE\""
expect 1 "real: another app id" -- "$Q" verify "$G" --event-log "$G" --app-id 00${APP:2}
says "real wrong app" "app-id mismatch: the event log says $APP"
says "real wrong app" "INVALID"
expect 0 "real lite (runtime digests stripped)" -- "$Q" verify "$V/getquote-tdx-lite.json" \
  --event-log "$V/getquote-tdx-lite.json" --app-id 86b0e55f2fa8e4fb69d890f14f54d5612707646e
# the event log of one CVM against the quote of another
expect 1 "real: other CVM's log" -- "$Q" verify "$G" --event-log "$V/getquote-tdx-lite.json"
says "mixed" "RTMR0 mismatch"
# a tampered app-id event
sed "s/$APP/${APP:0:38}00/" "$G" >"$T/tampered.json"
expect 1 "real: tampered app-id event" -- "$Q" verify "$G" --event-log "$T/tampered.json"
says "tampered" "RTMR3 mismatch"
# usage: pins without a log, garbled or missing log
expect 2 "--app-id without --event-log" -- "$Q" verify "$G" --app-id $APP
echo '[{"imr":' >"$T/garbled.json"
expect 2 "garbled event log" -- "$Q" verify "$G" --event-log "$T/garbled.json"
says "garbled" "garbled JSON"
expect 2 "missing event log" -- "$Q" verify "$G" --event-log "$T/nope.json"

# --- the stand-in agent, through curl as an app in the CVM would ---
if ! command -v curl >/dev/null; then
  echo "SKIP: curl not installed (scripts/deps.sh installs it): stand-in agent part"
else
  S="$T/dstack.sock"
  "$AGENT" --socket "$S" --sim-dir "$T/sim" --app-id 0a0b0c0d0e0f101112131415161718191a1b1c1d >"$T/agent.out" 2>&1 &
  apid=$!
  for _ in $(seq 100); do grep -q ready "$T/agent.out" && break; sleep 0.05; done
  curl -sS --unix-socket "$S" -X POST http://dstack/GetQuote -H 'Content-Type: application/json' \
    -d '{"report_data":"1234deadbeef"}' -o "$T/gq.json"
  curl -sS --unix-socket "$S" -X POST http://dstack/Info -H 'Content-Type: application/json' \
    -d '{}' -o "$T/info.json"
  R="$T/sim/root-ca.pem"
  expect 0 "agent: GetQuote replay + app id" -- "$Q" verify "$T/gq.json" --root "$R" \
    --event-log "$T/gq.json" --app-id 0a0b0c0d0e0f101112131415161718191a1b1c1d \
    --report-data 1234deadbeef$(printf '0%.0s' $(seq 116))
  says "agent" "key_provider         {\"name\":\"kms\",\"id\":\"sim\"}"
  expect 0 "agent: Info's tcb_info event log" -- "$Q" verify "$T/gq.json" --root "$R" \
    --event-log "$T/info.json" --app-id 0a0b0c0d0e0f101112131415161718191a1b1c1d
  expect 1 "agent: wrong app id" -- "$Q" verify "$T/gq.json" --root "$R" \
    --event-log "$T/gq.json" --app-id a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1
  # the agent's sim quote against the Intel root only: the chain fails, the replay still shown
  expect 1 "agent: sim quote without the sim root" -- "$Q" verify "$T/gq.json" --event-log "$T/gq.json"
  says "agent no root" "RTMR0-3 replayed from"

  # ra-hello's tunnel with the dstack provider (--tee dstack:SOCKET), and
  # ra-curl pinning the sim root and MRTD through it
  "$RA_BIN/ra-hello" --listen 127.0.0.1:0 --tee "dstack:$S" >"$T/hello.out" 2>"$T/hello.err" &
  hpid=$!
  port=
  for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$T/hello.out")
    [ -n "$port" ] && break; sleep 0.05
  done
  expect 0 "ra-hello --tee dstack: ra-curl through the tunnel" -- "$RA_BIN/ra-curl" \
    --trust-sim "$T/sim" --mrtd "$(printf '5d%.0s' $(seq 48))" "http://127.0.0.1:$port/private"
  says "tunnel" "secret"
  grep -q "quote provider: dstack" "$T/hello.err" && echo "ok: ra-hello names the provider" \
    || { echo "FAIL: ra-hello does not name the dstack provider"; fails=$((fails + 1)); }
  kill "$hpid"; wait "$hpid" 2>/dev/null; hpid=

  # RA-TLS with the dstack provider: the certificate's quote comes from the
  # agent (report_data = SHA-512("ratls-cert:" || SPKI)), ra-curl --ra-tls
  # verifies it in the handshake
  tport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$RA_BIN/ra-hello" --listen-tls "127.0.0.1:$tport" --ra-tls --tee "dstack:$S" --no-tunnel \
    >"$T/hello.out" 2>"$T/hello.err" &
  hpid=$!
  for _ in $(seq 100); do curl -sk -o /dev/null "https://127.0.0.1:$tport/hello" && break; sleep 0.05; done
  expect 0 "ra-hello --ra-tls --tee dstack: ra-curl --ra-tls" -- "$RA_BIN/ra-curl" --ra-tls \
    --trust-sim "$T/sim" --mrtd "$(printf '5d%.0s' $(seq 48))" "https://127.0.0.1:$tport/hello"
  says "ra-tls dstack" "world"
  expect 60 "ra-hello --ra-tls --tee dstack: a wrong --mrtd refused" -- "$RA_BIN/ra-curl" --ra-tls \
    --trust-sim "$T/sim" --mrtd "$(printf '00%.0s' $(seq 48))" "https://127.0.0.1:$tport/hello"
  kill "$hpid"; wait "$hpid" 2>/dev/null; hpid=
  expect 1 "ra-hello --tee dstack: socket missing" -- "$RA_BIN/ra-hello" --listen 127.0.0.1:0 \
    --tee "dstack:$T/none.sock"
  says "missing socket" "$T/none.sock: no such socket"
fi

[ "$fails" = 0 ] && echo "all passed" || { echo "$fails failed"; exit 1; }

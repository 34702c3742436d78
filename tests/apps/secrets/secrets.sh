#!/usr/bin/env bash
# ra-secrets (apps/secrets, docs/SECRETS.md): the strict mutually-attested
# secret-release service and its client, as their users see them. Sim-TEE
# quotes on both sides; app ids through the stand-in dstack agent ($1,
# tests/attest/dstack/agent.c), one agent per CVM (server, client, an
# impostor), all on one simulated root. Checked: the happy path (dstack
# certificates both ways, over HTTP and HTTPS with the attested certificate;
# a sim quote bundle pinned by MRTD); refusals with their reasons and exit
# codes: missing client attestation (client and curl), wrong app id, no app
# id, wrong measurement, an altered bundle (event log that does not replay,
# a key the quote does not bind), the client's own attestation unavailable
# (agent 500 / missing), a replayed challenge (the recorded fetch replayed
# with curl), an expired challenge, a response signed by another key, a
# server whose attestation does not match the pinned app id / MRTD (the
# client refuses before asking for anything), unknown secret, garbage; in
# every refusal no byte of the secret is in the answer (plain, hex, base64)
# nor in any log; strict mode's start-up checks and RATLS_STRICT=false's
# warnings; the data directory holds only sealed records.
set -uo pipefail
: "${RA_BIN:?RA_BIN must point at the bin folder of the build}"
AGENT=$1
S="$RA_BIN/ra-secrets"
. "$(dirname "$0")/../../lib.sh"
show() { sed 's/^/     | /' "$@" | tail -15; }

SECRET="s3cr3t-$(openssl rand -hex 12)"
SECRET_HEX=$(printf %s "$SECRET" | od -An -tx1 | tr -d ' \n')
SECRET_B64=$(printf %s "$SECRET" | base64 -w0)
printf %s "$SECRET" >"$tmp/secret.txt"
export ENCLAVE_KEY_BASE64=$(openssl rand -base64 32)
SIM="$tmp/sim"
MR=$(printf '5d%.0s' $(seq 48))
MR0=$(printf '00%.0s' $(seq 48))
SAPP=5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e
CAPP=c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1
XAPP=0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b

no_secret() { # no_secret WHAT FILE...: none of the secret's forms in the files
  if cat "$@" 2>/dev/null | grep -q -e "$SECRET" -e "$SECRET_HEX" -e "$SECRET_B64" -e "${SECRET_B64:0:16}"; then
    bad "$1: the secret is in ${*:2}"
  else ok "$1: no secret byte"; fi
}

agent() { # agent NAME APP_ID: a stand-in dstack agent, socket $tmp/NAME.sock
  "$AGENT" --socket "$tmp/$1.sock" --sim-dir "$SIM" --app-id "$2" >"$tmp/$1.agent" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do grep -q ready "$tmp/$1.agent" && return 0; sleep 0.05; done
  bad "agent $1 did not start"; show "$tmp/$1.agent"
}

srv_out=
srv_pids=()
start() { # start NAME ARGS...: ra-secrets serve on a free port; sets URL (and TLS_URL)
  local name=$1; shift
  srv_out="$tmp/$name.srv"
  "$S" serve --listen "${LISTEN:-127.0.0.1:0}" --data-dir "$tmp/$name.data" --client-trust-sim "$SIM" "$@" \
    >"$srv_out" 2>"$srv_out.err" &
  pids+=($!)
  srv_pids+=($!)
  URL=
  for _ in $(seq 200); do
    URL=$(sed -n 's/^listening on \(http:\/\/127.0.0.1:[1-9][0-9]*\)$/\1/p' "$srv_out")
    [ -n "$URL" ] && break
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then break; fi
    sleep 0.05
  done
  TLS_URL=$(sed -n 's/^listening on \(https:\/\/.*\)$/\1/p' "$srv_out")
  [ -n "$URL" ] || { bad "$name did not start"; show "$srv_out" "$srv_out.err"; }
}

run() { # run NAME WANT_EXIT ARGS...: ra-secrets fetch ...; stdout in $tmp/NAME.out
  local name=$1 want=$2; shift 2
  "$S" fetch "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
  local got=$?
  if [ "$got" = "$want" ]; then ok "$name: exit $got"; else
    bad "$name: exit $got, want $want"; show "$tmp/$name.out" "$tmp/$name.err"; fi
}
says() { # says NAME TEXT: the client's stderr
  if grep -qF -- "$2" "$tmp/$1.err"; then ok "$1 says '$2'"; else
    bad "$1 does not say '$2'"; show "$tmp/$1.err"; fi
}
logs() { # logs WHAT TEXT: the server's log
  if grep -qF -- "$2" "$srv_out.err"; then ok "$1: server log says '$2'"; else
    bad "$1: no '$2' in the server log"; show "$srv_out.err"; fi
}

agent server $SAPP
agent client $CAPP
agent impostor $XAPP
DC=(--client-tee "dstack:$tmp/client.sock")
PIN=(--expect-server-app-id $SAPP --trust-sim "$SIM")

# --- S1: a dstack server pinning the client's app id, HTTP and HTTPS ------
# (with both kinds of listeners, the plain one gets a port of its own:
# ra-secrets can only tell the TLS listener's port 0)
tport=$(free_port)
LISTEN=127.0.0.1:$(free_port) start s1 --tee "dstack:$tmp/server.sock" --client-app-id $CAPP --secret db-password=@"$tmp/secret.txt" \
  --listen-tls 127.0.0.1:$tport --ra-tls
grep -q "strict mode" "$srv_out.err" && ok "s1 starts in strict mode" || bad "s1: no 'strict mode'"

run happy 0 --server "$URL" "${DC[@]}" "${PIN[@]}" db-password
[ "$(cat "$tmp/happy.out")" = "$SECRET" ] && ok "happy: the secret printed" || bad "happy: got '$(cat "$tmp/happy.out")'"
logs happy "released to client ra-secrets-client"
logs happy "app_id $CAPP"
run happy-file 0 --server "$URL" "${DC[@]}" "${PIN[@]}" --client-id svc-1 -o "$tmp/got.txt" db-password
cmp -s "$tmp/got.txt" "$tmp/secret.txt" && ok "happy -o FILE" || bad "happy -o FILE differs"
run happy-mrtd-pin 0 --server "$URL" "${DC[@]}" --expect-server-mrtd $MR --trust-sim "$SIM" db-password
if [ -n "$TLS_URL" ]; then
  run happy-https 0 --server "https://127.0.0.1:$tport" "${DC[@]}" "${PIN[@]}" db-password
  [ "$(cat "$tmp/happy-https.out")" = "$SECRET" ] && ok "https: the secret" || bad "https: wrong output"
else bad "s1: no HTTPS listener"; fi

# missing client attestation: the client without a TEE, and curl
run no-attestation 6 --server "$URL" --client-tee none "${PIN[@]}" db-password
says no-attestation "attestation_missing"
no_secret "no-attestation" "$tmp/no-attestation.out" "$tmp/no-attestation.err"
code=$(curl -s -o "$tmp/curl1.json" -w '%{http_code}' -H 'Content-Type: application/json' \
  -d '{"client_id":"curl"}' "$URL/v1/secrets/challenge")
[ "$code" = 403 ] && grep -q '"error":"attestation_missing"' "$tmp/curl1.json" && ok "curl without attestation: 403 attestation_missing" \
  || { bad "curl without attestation: $code"; show "$tmp/curl1.json"; }
no_secret "curl without attestation" "$tmp/curl1.json"

# wrong app id (another CVM's agent), and no app id at all (a sim bundle)
run wrong-app-id 6 --server "$URL" --client-tee "dstack:$tmp/impostor.sock" "${PIN[@]}" db-password
says wrong-app-id "app_id_mismatch: app id $XAPP is not one of the 1 pinned"
no_secret "wrong-app-id" "$tmp/wrong-app-id.out" "$tmp/wrong-app-id.err"
run no-app-id 6 --server "$URL" --client-tee sim --client-sim-dir "$SIM" "${PIN[@]}" db-password
says no-app-id "app_id_mismatch: no attested app id"

# a replayed challenge: the fetch request recorded, sent again with curl
run record 0 --server "$URL" "${DC[@]}" "${PIN[@]}" --dump-fetch "$tmp/fetch.json" db-password
code=$(curl -s -o "$tmp/replay.json" -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary @"$tmp/fetch.json" "$URL/v1/secrets/fetch")
[ "$code" = 403 ] && grep -q '"error":"challenge_used"' "$tmp/replay.json" && ok "replay: 403 challenge_used" \
  || { bad "replay: $code"; show "$tmp/replay.json"; }
no_secret "replay" "$tmp/replay.json"
logs replay "was already used (challenges are single-use)"

# a response signed by a key that was never attested
run other-key 7 --server "$URL" "${DC[@]}" "${PIN[@]}" --sign-with-other-key db-password
says other-key "bad_signature"
no_secret "other-key" "$tmp/other-key.out" "$tmp/other-key.err"

# an altered bundle (recorded from a sim client): an event log that does
# not replay to the quote, and another key than the one the quote binds
run record-bundle 6 --server "$URL" --client-tee sim --client-sim-dir "$SIM" "${PIN[@]}" \
  --dump-challenge "$tmp/bundle.json" db-password
python3 - "$tmp/bundle.json" "$tmp" <<'PY'
import json, sys, base64
d = json.load(open(sys.argv[1]))
a = dict(d["attestation"]); a["event_log"] = "[]"
json.dump({"client_id": "x", "attestation": a}, open(sys.argv[2] + "/evlog.json", "w"))
a = dict(d["attestation"]); k = bytearray(base64.b64decode(a["key"])); k[-1] ^= 1
a["key"] = base64.b64encode(bytes(k)).decode()
json.dump({"client_id": "x", "attestation": a}, open(sys.argv[2] + "/otherkey.json", "w"))
PY
for c in evlog:event_log_mismatch otherkey:key_not_bound; do
  f=${c%%:*} want=${c#*:}
  code=$(curl -s -o "$tmp/$f.ans" -w '%{http_code}' --data-binary @"$tmp/$f.json" "$URL/v1/secrets/challenge")
  [ "$code" = 403 ] && grep -q "\"error\":\"$want\"" "$tmp/$f.ans" && ok "altered bundle ($f): 403 $want" \
    || { bad "altered bundle ($f): $code"; show "$tmp/$f.ans"; }
  no_secret "altered bundle ($f)" "$tmp/$f.ans"
done

# a server that is not the one pinned: refused before anything is asked
before=$(grep -c "POST /v1/secrets/fetch" "$srv_out.err")
run server-app-id 5 --server "$URL" "${DC[@]}" --expect-server-app-id $XAPP --trust-sim "$SIM" db-password
says server-app-id "the server's attestation is refused (app_id_mismatch)"
run server-mrtd 5 --server "$URL" "${DC[@]}" --expect-server-mrtd $MR0 --trust-sim "$SIM" db-password
says server-mrtd "the server's attestation is refused (measurement_mismatch)"
run server-root 5 --server "$URL" "${DC[@]}" --expect-server-app-id $SAPP db-password
says server-root "attestation_invalid"
after=$(grep -c "POST /v1/secrets/fetch" "$srv_out.err")
[ "$before" = "$after" ] && ok "no fetch was sent to a refused server" || bad "a refused server was asked ($before -> $after)"
no_secret "refused servers" "$tmp/server-app-id.out" "$tmp/server-mrtd.out" "$tmp/server-root.out"

# no such secret; garbage; an unknown challenge
run not-found 8 --server "$URL" "${DC[@]}" "${PIN[@]}" nope
says not-found "not_found"
code=$(curl -s -o "$tmp/garbage.json" -w '%{http_code}' -d '{"client_id":' "$URL/v1/secrets/challenge")
[ "$code" = 400 ] && grep -q bad_request "$tmp/garbage.json" && ok "garbage: 400 bad_request" || bad "garbage: $code"
code=$(curl -s -o "$tmp/unknown.json" -w '%{http_code}' \
  -d "{\"challenge_id\":\"$(openssl rand -hex 16)\",\"name\":\"db-password\",\"signature\":\"AAAA\"}" "$URL/v1/secrets/fetch")
[ "$code" = 403 ] && grep -q unknown_challenge "$tmp/unknown.json" && ok "unknown challenge: 403" || bad "unknown challenge: $code"
no_secret "garbage/unknown" "$tmp/garbage.json" "$tmp/unknown.json"

# the client's own attestation cannot be made: its agent answers 500, or
# no agent at all (exit 3, nothing sent)
"$AGENT" --socket "$tmp/broken.sock" --sim-dir "$SIM" --mode 500 >"$tmp/broken.agent" 2>&1 &
pids+=($!)
for _ in $(seq 200); do grep -q ready "$tmp/broken.agent" && break; sleep 0.05; done
run agent-500 3 --server "$URL" --client-tee "dstack:$tmp/broken.sock" "${PIN[@]}" db-password
says agent-500 "our own attestation"
run agent-missing 3 --server "$URL" --client-tee "dstack:$tmp/none.sock" "${PIN[@]}" db-password

# at rest: sealed records only, nothing of the secret
ls "$tmp/s1.data"/secret-db-password.sealed >/dev/null 2>&1 && ok "at rest: secret-db-password.sealed" || bad "at rest: no sealed record"
if grep -rqa -e "$SECRET" -e "$SECRET_B64" "$tmp/s1.data"; then bad "at rest: the secret is on disk in clear"; else ok "at rest: the data dir has no plaintext (grep)"; fi
no_secret "s1 logs" "$srv_out" "$srv_out.err"

# --- S2: a sim server pinning another MRTD: wrong measurement -----------
start s2 --tee sim --sim-dir "$SIM" --client-mrtd $MR0 --secret k=@"$tmp/secret.txt"
run wrong-mrtd 6 --server "$URL" --client-tee sim --client-sim-dir "$SIM" --expect-server-mrtd $MR --trust-sim "$SIM" k
says wrong-mrtd "measurement_mismatch: MRTD $MR is not one of the 1 pinned"
no_secret "wrong-mrtd" "$tmp/wrong-mrtd.out" "$tmp/wrong-mrtd.err" "$srv_out.err"

# --- S3: a sim server pinning the sim MRTD, short challenges ------------
start s3 --tee sim --sim-dir "$SIM" --client-mrtd $MR --challenge-ttl 300 --secret k=@"$tmp/secret.txt"
run bundle 0 --server "$URL" --client-tee sim --client-sim-dir "$SIM" --expect-server-mrtd $MR --trust-sim "$SIM" k
[ "$(cat "$tmp/bundle.out")" = "$SECRET" ] && ok "sim quote bundle: the secret" || bad "bundle: wrong output"
run expired 7 --server "$URL" --client-tee sim --client-sim-dir "$SIM" --expect-server-mrtd $MR --trust-sim "$SIM" \
  --delay-fetch 700 k
says expired "challenge_expired"
no_secret "expired" "$tmp/expired.out" "$tmp/expired.err" "$srv_out.err"

# --- strict mode's start-up checks, RATLS_STRICT=false ------------------
"$S" serve --data-dir "$tmp/x.data" --tee sim --sim-dir "$SIM" >/dev/null 2>"$tmp/nopin.err"
[ $? = 2 ] && grep -q "strict mode: pin the clients" "$tmp/nopin.err" && ok "strict: a server without client pins refuses to start" \
  || { bad "strict without pins"; show "$tmp/nopin.err"; }
RATLS_STRICT=maybe "$S" serve --data-dir "$tmp/x.data" --tee sim --sim-dir "$SIM" --client-mrtd $MR >/dev/null 2>"$tmp/maybe.err"
[ $? = 2 ] && ok "RATLS_STRICT=maybe: refused (fail closed)" || bad "RATLS_STRICT=maybe accepted"
run client-nopin 2 --server "$URL" --client-tee sim --client-sim-dir "$SIM" --trust-sim "$SIM" k
says client-nopin "strict mode: pin the server"

RATLS_STRICT=false start relaxed --tee sim --sim-dir "$SIM" --secret k=@"$tmp/secret.txt"
if grep -q "WARNING: RATLS_STRICT=false: RELAXED MODE" "$srv_out.err"; then ok "relaxed: loud start-up warning"; else bad "relaxed: no warning"; show "$srv_out.err"; fi
RATLS_STRICT=false run relaxed 0 --server "$URL" --client-tee sim --client-sim-dir "$SIM" --trust-sim "$SIM" k
[ "$(cat "$tmp/relaxed.out")" = "$SECRET" ] && ok "relaxed: any attested client, any attested server" || bad "relaxed: wrong output"
says relaxed "WARNING: RATLS_STRICT=false: RELAXED MODE"
says relaxed "the server runs with RATLS_STRICT=false"
n=$(grep -c "POST /v1/secrets" "$srv_out.err"); m=$(grep "POST /v1/secrets" "$srv_out.err" | grep -c "RATLS_STRICT=false")
[ "$n" -gt 0 ] && [ "$n" = "$m" ] && ok "relaxed: every answer's log line is marked ($m/$n)" || bad "relaxed: $m of $n log lines marked"
code=$(curl -s -o "$tmp/relaxed-none.json" -w '%{http_code}' -d '{"client_id":"x"}' "$URL/v1/secrets/challenge")
[ "$code" = 403 ] && grep -q '"strict":false' "$tmp/relaxed-none.json" && ok "relaxed: still no secret without attestation (403, strict:false)" \
  || bad "relaxed without attestation: $code"

# --- put: sealing into a stopped server's store ---------------------------
printf 'second-%s' "$SECRET" | "$S" put --data-dir "$tmp/p.data" api-token - >/dev/null 2>"$tmp/put.err" && ok "put from stdin" || { bad "put"; show "$tmp/put.err"; }
"$S" put --data-dir "$tmp/p.data" api-token "literal" >/dev/null 2>"$tmp/put2.err"
[ $? = 2 ] && ok "put refuses a value on the command line" || bad "put took a literal"
start p --tee sim --sim-dir "$SIM" --client-mrtd $MR
run put-fetch 0 --server "$URL" --client-tee sim --client-sim-dir "$SIM" --expect-server-mrtd $MR --trust-sim "$SIM" api-token
[ "$(cat "$tmp/put-fetch.out")" = "second-$SECRET" ] && ok "put, then fetched" || bad "put-fetch: wrong output"

# every server stops cleanly on SIGTERM; nothing reported by the
# sanitizers (the ASan build runs this test too) in any program's output
for p in "${srv_pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
for p in "${srv_pids[@]}"; do wait "$p" 2>/dev/null; done
if grep -l "Sanitizer\|runtime error" "$tmp"/*.err >/dev/null 2>&1; then
  bad "sanitizer reports:"; grep -A5 "Sanitizer\|runtime error" "$tmp"/*.err | head -40
else ok "no sanitizer report from any server or client"; fi

[ "$fails" = 0 ] && echo "all passed" || { echo "$fails failed"; exit 1; }

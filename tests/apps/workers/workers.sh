#!/usr/bin/env bash
# ra-hello --workers 2 (serve/workers.c) with --metrics and --access-log json
# (serve/metrics.c), driven by curl, ra-curl (the attested tunnel) and a
# Python client loop opening a new connection per request:
#  - one "listening on" line, port 0 shared by both workers, both serve
#    (the JSON access log names the worker);
#  - kill -SEGV one worker under load: logged, restarted with back-off, the
#    clients see at most the failures of that worker's connections;
#  - SIGHUP twice under the client loop: new generations take over, zero
#    failed requests, every worker PID replaced; SIGHUP with WebSockets and
#    tunnels open: closed with 1001, new ones work;
#  - /metrics parsed by prometheus_client's parser: exact deltas after a
#    known mix of plain and tunnelled requests; the JSON log parsed line by
#    line (python json) with the same counts;
#  - SIGUSR1 passed on to the workers (logged, nobody dies);
#  - SIGTERM with a request in flight: it completes, every process is gone
#    within the deadline, exit 0;
#  - HTTPS with workers: SIGHUP serves the new certificate (the new workers
#    read the files), a bad one cancels the replacement, the old stay.
set -euo pipefail
: "${RA_BIN:?RA_BIN must point at the bin folder of the build}"
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
# client_loop.py ends when $tmp/stop appears: first, before its server goes
before_stop() { touch "$tmp/stop" 2>/dev/null || true; }
# The Prometheus parser is Debian's python3-prometheus-client: the system
# python (a pyenv or venv python3 first in PATH may not see it).
PY=python3
for p in /usr/bin/python3 python3; do
  if "$p" -c 'import prometheus_client.parser' 2>/dev/null; then PY=$p; break; fi
done
children() { pgrep -P "$sup" | sort | tr '\n' ' '; }
nchildren() { pgrep -P "$sup" | wc -l; }
wait_children() { # wait_children N: until the supervisor has N workers
  for _ in $(seq 1 100); do [ "$(nchildren)" = "$1" ] && return 0; sleep 0.05; done
  return 1
}

sim="$tmp/sim"
"$RA_BIN/ra-hello" --listen 127.0.0.1:0 --workers 2 --tee sim --sim-dir "$sim" --metrics \
  --access-log json >"$tmp/out" 2>"$tmp/err" &
sup=$!
pids+=("$sup")
for _ in $(seq 1 200); do grep -q '^listening on' "$tmp/out" && break; sleep 0.05; done
grep -q '^listening on' "$tmp/out" || { cat "$tmp/err"; echo "FAIL ra-hello did not start"; exit 1; }
port=$(sed -n 's/^listening on http:\/\/127.0.0.1:\([0-9]*\)$/\1/p' "$tmp/out")
expect "one 'listening on' line" 1 "$(grep -c '^listening on' "$tmp/out")"
wait_children 2 && ok "two workers: $(children)" || bad "two workers: $(children)"
URL="http://127.0.0.1:$port"

# --- both workers serve --------------------------------------------------------
for _ in $(seq 1 60); do curl -s --max-time 5 "$URL/hello" >/dev/null; done
served=$(grep '^{' "$tmp/out" | jq -r 'select(.path=="/hello") | .worker' | sort -u | tr '\n' ' ')
expect "both workers served (JSON access log: worker)" "0 1 " "$served"

# --- a crash: SIGSEGV under load -------------------------------------------------
rm -f "$tmp/stop"
"$PY" "$here/client_loop.py" "$port" "$tmp/stop" 2 >"$tmp/loop1" &
loop=$!
sleep 0.7
before=$(children)
victim=${before%% *}
kill -SEGV "$victim"
for _ in $(seq 1 100); do kill -0 "$victim" 2>/dev/null || break; sleep 0.05; done
sleep 0.3
wait_children 2 && ! grep -qw "$victim" <<<"$(children)" && ok "worker restarted: $before -> $(children)" \
  || bad "worker not restarted: $before -> $(children)"
sleep 0.7
touch "$tmp/stop"
wait "$loop"
r=$(cat "$tmp/loop1")
echo "     client loop: $r"
okn=$(jq .ok <<<"$r"); failn=$(jq .failed <<<"$r")
[ "$okn" -gt 100 ] && [ "$failn" -le 4 ] && ok "SEGV: $okn ok, $failn failed (at most the victim's connections)" \
  || bad "SEGV: $okn ok, $failn failed"
# (a sanitizer build's handler turns the SIGSEGV into an exit status, or
# into SIGABRT with ASAN_OPTIONS=abort_on_error=1)
grep -Eq "died: (signal 11 \(Segmentation fault\)|signal 6 \(Aborted\)|exit [1-9][0-9]*); restarting in 100 ms" "$tmp/err" \
  && ok "crash logged, back-off 100 ms" \
  || bad "crash not logged as expected"
expect "the supervisor survives" 0 "$(kill -0 "$sup" 2>/dev/null; echo $?)"

# --- SIGHUP under a client loop: zero failures -------------------------------
rm -f "$tmp/stop"
"$PY" "$here/client_loop.py" "$port" "$tmp/stop" 4 >"$tmp/loop2" &
loop=$!
sleep 0.5
before=$(children)
kill -HUP "$sup"
sleep 1
kill -HUP "$sup"
sleep 1
touch "$tmp/stop"
wait "$loop"
r=$(cat "$tmp/loop2")
echo "     client loop: $r"
expect "SIGHUP x2 under load: failed requests" 0 "$(jq .failed <<<"$r")"
[ "$(jq .ok <<<"$r")" -gt 100 ] && ok "SIGHUP: requests served" || bad "SIGHUP: too few requests served"
# Without this, no worker at all after the SIGHUPs would pass "every worker replaced".
if wait_children 2; then ok "SIGHUP x2: two workers running after"; else bad "SIGHUP x2: $(nchildren) workers after, want 2"; fi
after=$(children)
common=$(comm -12 <(tr ' ' '\n' <<<"$before" | sort) <(tr ' ' '\n' <<<"$after" | sort) | grep -c . || true)
expect "every worker replaced ($before -> $after)" 0 "$common"
expect "generation 2 took over" 1 "$(grep -c 'generation 2 ready, draining the previous one' "$tmp/err")"

# --- SIGHUP with WebSockets and tunnels open: closed with 1001, new ones work ---
cat >"$tmp/ws_hup.js" <<'JS'
// Opens 4 WebSockets (WS /echo) and 4 tunnels (ra_client.js), then waits for
// the supervisor's SIGHUP (sent by the script once READY is printed): every
// one must be closed by the draining workers with 1001; new ones then work.
const path = require("path")
const [src, port] = process.argv.slice(2)
const WebSocket = require(path.join(src, "tests/node_modules/ws"))
const { RAClient } = require(path.join(src, "tests/attest/tunnel/ra_client.js"))
const url = "ws://127.0.0.1:" + port
const origin = "http://127.0.0.1:" + port
const open = () => new Promise((res, rej) => {
  const w = new WebSocket(url + "/echo"); w.on("open", () => res(w)); w.on("error", rej)
})
;(async () => {
  const codes = []
  const wss = await Promise.all([1, 2, 3, 4].map(open))
  const tns = []
  for (let i = 0; i < 4; i++) tns.push(await RAClient.connect(origin))
  const closed = Promise.all([
    ...wss.map((w) => new Promise((r) => w.on("close", (c) => { codes.push("ws:" + c); r() }))),
    ...tns.map((t) => new Promise((r) => { t.onclose = (c) => { codes.push("tunnel:" + c); r() } })),
  ])
  console.log("READY")
  await closed
  const w = await open()
  const echoed = await new Promise((r) => { w.on("message", (m) => r(m.toString())); w.send("again") })
  w.close()
  const t = await RAClient.connect(origin)
  const hello = (await t.fetch("/hello")).text
  t.close()
  console.log(JSON.stringify({ codes: [...new Set(codes)].sort(), echoed, hello }))
  process.exit(0)
})().catch((e) => { console.log("ERROR " + e); process.exit(1) })
JS
coproc WSH { node "$tmp/ws_hup.js" "${RA_SRC:-$here/../../..}" "$port" 2>&1; }
read -r -t 20 line <&"${WSH[0]}" || line=timeout
if [ "$line" = READY ]; then
  kill -HUP "$sup"
  read -r -t 20 line <&"${WSH[0]}" || line=timeout
  expect "SIGHUP: WebSockets and tunnels closed with 1001, new ones work" \
    '{"codes":["tunnel:1001","ws:1001"],"echoed":"again","hello":"world"}' "$line"
else
  bad "WebSockets/tunnels before SIGHUP: $line"
fi
wait "$WSH_PID" 2>/dev/null || true
wait_children 2 || true

# --- SIGUSR1 is passed on --------------------------------------------------------
kill -USR1 "$sup"
# poll (up to 5 s) rather than a fixed sleep that a loaded machine can outrun
for _ in $(seq 1 100); do [ "$(grep -c 'SIGUSR1: noted' "$tmp/err")" -ge 2 ] && break; sleep 0.05; done
expect "SIGUSR1 reached both workers" 2 "$(grep -c 'SIGUSR1: noted' "$tmp/err")"
expect "nobody died of SIGUSR1" 2 "$(nchildren)"

# --- metrics: a known mix, parsed by prometheus_client ------------------------------
if ! "$PY" -c 'import prometheus_client.parser' 2>/dev/null; then
  echo "skip metrics: python3-prometheus-client is not installed (scripts/deps.sh)"
else
  sleep 1.2 # every worker's gauges sampled
  "$PY" "$here/scrape.py" "$URL/metrics" >"$tmp/m0"
  lines0=$(grep -c '^{' "$tmp/out")
  for _ in $(seq 1 7); do curl -s "$URL/hello" >/dev/null; done
  for _ in $(seq 1 3); do curl -s -d 'abc' "$URL/echo" >/dev/null; done
  for _ in $(seq 1 2); do curl -s "$URL/nope" >/dev/null; done
  curl -s "$URL/private" >/dev/null # 403 in plaintext
  RACURL=("$RA_BIN/ra-curl" --trust-sim "$sim" --max-time 20)
  t_ok=0
  for _ in $(seq 1 4); do [ "$("${RACURL[@]}" "$URL/hello")" = world ] && t_ok=$((t_ok + 1)); done
  [ "$("${RACURL[@]}" "$URL/private")" = secret ] && t_ok=$((t_ok + 1))
  expect "tunnelled requests answered" 5 "$t_ok"
  sleep 1.2
  "$PY" "$here/scrape.py" "$URL/metrics" >"$tmp/m1"
  "$PY" - "$tmp/m0" "$tmp/m1" <<'EOF' && ok "metrics deltas (prometheus_client parser)" || bad "metrics deltas"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
d = lambda k: b.get(k, 0) - a.get(k, 0)
want = {
  'ra_http_requests_total{route=GET /hello,status=200,transport=http}': 7,
  'ra_http_requests_total{route=POST /echo,status=200,transport=http}': 3,
  'ra_http_requests_total{route=other,status=404,transport=http}': 2,
  'ra_http_requests_total{route=GET /private,status=403,transport=http}': 1,
  'ra_http_requests_total{route=GET /hello,status=200,transport=tunnel}': 4,
  'ra_http_requests_total{route=GET /private,status=200,transport=tunnel}': 1,
  'ra_http_requests_total{route=GET /metrics,status=200,transport=http}': 1,  # the first scrape
  'ra_http_requests_total{route=other,status=101,transport=http}': 5,  # the tunnels' upgrades
  'ra_http_request_duration_seconds_count{transport=http}': 19,
  'ra_http_request_duration_seconds_bucket{le=+Inf,transport=http}': 19,
  'ra_http_request_duration_seconds_count{transport=tunnel}': 5,
  'ra_tunnel_handshakes_total{}': 5,
}
bad = 0
for k, v in want.items():
  if d(k) != v:
    print("     %s: delta %s, want %s" % (k, d(k), v)); bad += 1
types = b["_types"]
for name, t in [("ra_http_requests", "counter"), ("ra_http_request_duration_seconds", "histogram"),
                ("ra_tunnels_open", "gauge"), ("ra_tunnel_failures", "counter"),
                ("ra_tunnel_key_age_seconds", "gauge"), ("ra_http_bytes_received", "counter")]:
  if types.get(name) != t:
    print("     type of %s: %s, want %s" % (name, types.get(name), t)); bad += 1
checks = [
  (b['ra_workers{}'] == 2, "ra_workers 2"),
  (b['ra_tunnels_open{}'] == 0, "no tunnel left open"),
  (d('ra_http_bytes_received_total{}') > 0 and d('ra_http_bytes_sent_total{}') > 0, "bytes counted"),
  (b['ra_tunnel_key_age_seconds{}'] >= 2, "key age"),
  (b['ra_tunnel_failures_total{reason=decrypt_failed}'] == 0, "failures by reason"),
  (b['_content_type'].startswith('text/plain; version=0.0.4'), "content type"),
]
# histogram buckets are cumulative and end at the count
for t in ("http", "tunnel"):
  les = sorted(((float(k.split('le=')[1].split(',')[0]), v) for k, v in b.items()
                if k.startswith('ra_http_request_duration_seconds_bucket') and 'transport=%s' % t in k))
  checks.append((all(les[i][1] <= les[i + 1][1] for i in range(len(les) - 1)), "cumulative " + t))
for c, what in checks:
  if not c:
    print("     failed:", what); bad += 1
sys.exit(1 if bad else 0)
EOF
  # the JSON log, line by line: the same mix
  sleep 0.2
  tail -n +"$((lines0 + 1))" <(grep '^{' "$tmp/out") >"$tmp/mix.log"
  python3 - "$tmp/mix.log" <<'EOF' && ok "JSON access log: valid lines, the same mix" || bad "JSON access log"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
keys = {"time", "peer", "method", "path", "status", "bytes_in", "bytes_out", "duration_us", "tunnel", "worker"}
assert all(set(l) == keys for l in lines), lines[:2]
c = lambda **kw: sum(all(l[k] == v for k, v in kw.items()) for l in lines)
got = (c(path="/hello", tunnel=False, status=200), c(path="/echo", method="POST", bytes_in=3, bytes_out=3),
       c(path="/nope", status=404), c(path="/hello", tunnel=True), c(path="/private", tunnel=True, status=200),
       c(path="/private", tunnel=False, status=403))
want = (7, 3, 2, 4, 1, 1)
if got != want:
  print("     got", got, "want", want); sys.exit(1)
# tunnelled requests carry the address the tunnel came from, as plain ones do
bad = [l for l in lines if not (l["peer"] == "127.0.0.1" and l["time"].endswith("Z"))]
if bad:
  print("     ", bad[:2]); sys.exit(1)
EOF
fi

# --- SIGTERM: in-flight finishes, everything stops, exit 0 ---------------------
workers_now=$(children)
curl -s --max-time 15 "$URL/delay?ms=1500" >"$tmp/slow" &
slow=$!
sleep 0.3
t0=$(date +%s%N)
kill -TERM "$sup"
set +e
wait "$sup"
code=$?
set -e
ms=$((($(date +%s%N) - t0) / 1000000))
wait "$slow" || true
expect "SIGTERM: exit code" 0 "$code"
[ "$ms" -lt 11000 ] && ok "SIGTERM: stopped in $ms ms (deadline 10 s)" || bad "SIGTERM: took $ms ms"
expect "SIGTERM: the request in flight completed" ok "$(cat "$tmp/slow")"
left=0
for p in $workers_now; do kill -0 "$p" 2>/dev/null && left=$((left + 1)); done
expect "SIGTERM: no worker left" 0 "$left"
# every drained worker exited 0 (a sanitizer build: no leak either)
expect "workers drained cleanly" 0 "$(grep -c 'ended while draining' "$tmp/err" || true)"
expect "no leak reported" 0 "$(grep -c 'LeakSanitizer' "$tmp/err" || true)"
pids=()

# --- TLS with workers: SIGHUP reloads the certificates (new workers read them) ----
mkcert() { # mkcert NAME CN
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=$2" \
    -keyout "$tmp/$1.key" -out "$tmp/$1.crt" 2>/dev/null
}
mkcert c1 first.example; mkcert c2 second.example
cp "$tmp/c1.crt" "$tmp/live.crt"; cp "$tmp/c1.key" "$tmp/live.key"
"$RA_BIN/ra-hello" --listen-tls 127.0.0.1:0 --cert "$tmp/live.crt" --key "$tmp/live.key" --workers 2 \
  --no-tunnel >"$tmp/tls.out" 2>"$tmp/tls.err" &
sup=$!
pids+=("$sup")
for _ in $(seq 1 200); do grep -q '^listening on' "$tmp/tls.out" && break; sleep 0.05; done
tport=$(sed -n 's/^listening on https:\/\/127.0.0.1:\([0-9]*\) (TLS)$/\1/p; s/^listening on https:\/\/127.0.0.1:\([0-9]*\)$/\1/p' "$tmp/tls.out")
cn() { curl -skv --max-time 5 "https://127.0.0.1:$tport/hello" 2>&1 | sed -n 's/^\*  subject: CN=\(.*\)$/\1/p' | head -1; }
expect "TLS workers: HTTPS answered" world "$(curl -sk --max-time 5 "https://127.0.0.1:$tport/hello")"
expect "TLS workers: the first certificate" first.example "$(cn)"
cp "$tmp/c2.crt" "$tmp/live.crt"; cp "$tmp/c2.key" "$tmp/live.key"
kill -HUP "$sup"
for _ in $(seq 1 100); do grep -q 'generation 1 ready' "$tmp/tls.err" && break; sleep 0.05; done
sleep 0.3
expect "TLS workers: SIGHUP, the new certificate (x3)" "second.example second.example second.example" "$(echo $(cn) $(cn) $(cn))"
cp "$tmp/c1.key" "$tmp/live.key" # a key that does not match: the replacement fails
kill -HUP "$sup"
for _ in $(seq 1 100); do grep -q 'replacement failed' "$tmp/tls.err" && break; sleep 0.05; done
expect "TLS workers: a bad reload is logged" 1 "$(grep -c 'SIGHUP: replacement failed' "$tmp/tls.err")"
expect "TLS workers: the current workers stay" second.example "$(cn)"
kill -TERM "$sup"
set +e; wait "$sup"; code=$?; set -e
expect "TLS workers: SIGTERM exit code" 0 "$code"
pids=()

if [ "$fails" -ne 0 ]; then
  echo "--- supervisor/worker log (tail)"; tail -30 "$tmp/err"
  echo "$fails failure(s)"; exit 1
fi
echo "all passed"

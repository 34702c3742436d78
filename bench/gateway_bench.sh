#!/usr/bin/env bash
# bench/gateway_bench.sh [BUILD_DIR] [RUNS]   (issue 16, reported, not a test)
#
# What ra-gateway costs in front of an existing service: nginx serving a
# small file (/hello, "world") on loopback; ra-gateway --tee sim in front
# of it. ra-bench (pinned to core 1; nginx and the gateway on core 0)
# measures, RUNS times alternating (default 3):
#   direct   plain HTTP/1.1 to nginx itself           (the anchor)
#   gw-plain plain HTTP/1.1 through ra-gateway
#   gw-tunnel the attested tunnel through ra-gateway (full quote
#            verification at the handshake, sealed requests)
# for the serial, concurrent and throughput scenarios, and prints medians
# with their range and each one's ratio to the anchor.
# The reference's TunnelServer (Express + a proxy middleware) is not built
# by this repository; see bench/README.md for how its column was measured.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tests/nginx_conf.sh"
build=$(cd "${1:-$here/build}" && pwd)
runs=${2:-3}
bin=$build/bin
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
pin_srv=() pin_cli=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin_srv=(taskset -c 0) pin_cli=(taskset -c 1); fi

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

mkdir -p "$dir/www" "$dir/logs" "$dir/tmp"
printf world >"$dir/www/hello"
nginx_port=$(free_port)
{
  nginx_main "$dir" "worker_connections 4096;"
  cat <<CONF
http {
  access_log off;
  keepalive_timeout 120s;
  keepalive_requests 100000000;
$(nginx_temp_paths "$dir")
  server {
    listen 127.0.0.1:$nginx_port;
    root $dir/www;
    default_type text/plain;
  }
}
CONF
} >"$dir/nginx.conf"
"${pin_srv[@]}" "$NGINX" -p "$dir" -c "$dir/nginx.conf" &
pids+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$nginx_port/hello" && break; sleep 0.05; done
[ "$(curl -s "http://127.0.0.1:$nginx_port/hello")" = world ] || { echo "nginx did not start" >&2; exit 1; }

"${pin_srv[@]}" "$bin/ra-gateway" --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$nginx_port" \
  --tee sim --sim-dir "$dir/sim" --quiet >"$dir/gw.out" 2>"$dir/gw.err" &
pids+=($!)
gw_port=
for _ in $(seq 200); do
  gw_port=$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$dir/gw.out" | head -1)
  [ -n "$gw_port" ] && break
  sleep 0.05
done
[ -n "$gw_port" ] || { echo "ra-gateway did not start" >&2; cat "$dir/gw.err" >&2; exit 1; }

scen=(--scenario serial --scenario concurrent --scenario throughput --duration 3 --no-floor)
for i in $(seq 1 "$runs"); do
  "${pin_cli[@]}" "$bin/ra-bench" --plain "${scen[@]}" --quiet --format json \
    "http://127.0.0.1:$nginx_port" >"$dir/direct-$i.json"
  "${pin_cli[@]}" "$bin/ra-bench" --both "${scen[@]}" --trust-sim "$dir/sim" --quiet --format json \
    "http://127.0.0.1:$gw_port" >"$dir/gw-$i.json"
  echo "run $i done" >&2
done
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  git: $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo ?)  runs: $runs"
node - "$dir" "$runs" <<'JS'
const fs = require('fs');
const [dir, runs] = process.argv.slice(2);
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const get = (file, sc, mode, key) => JSON.parse(fs.readFileSync(file)).find((r) => r.scenario === sc && r.mode === mode)[key];
for (const sc of ['serial', 'concurrent', 'throughput']) {
  const key = sc === 'throughput' ? 'rps' : 'avg_ms';
  const unit = sc === 'throughput' ? 'req/s' : 'ms avg';
  const cols = {
    direct: [], 'gw-plain': [], 'gw-tunnel': [],
  };
  for (let i = 1; i <= +runs; i++) {
    cols.direct.push(get(`${dir}/direct-${i}.json`, sc, 'plain', key));
    cols['gw-plain'].push(get(`${dir}/gw-${i}.json`, sc, 'plain', key));
    cols['gw-tunnel'].push(get(`${dir}/gw-${i}.json`, sc, 'tunnel', key));
  }
  const anchor = med(cols.direct);
  const fmt = (x) => (sc === 'throughput' ? x.toFixed(0) : x.toFixed(3));
  const line = Object.entries(cols).map(([k, v]) =>
    `${k} ${fmt(med(v))} (${fmt(Math.min(...v))}-${fmt(Math.max(...v))}) x${(med(v) / anchor).toFixed(2)}`);
  console.log(`${sc.padEnd(10)} ${unit.padEnd(7)} ${line.join('   ')}`);
}
JS

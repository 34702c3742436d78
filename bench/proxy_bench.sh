#!/usr/bin/env bash
# bench/proxy_bench.sh [BUILD_DIR] [RUNS] [SECONDS]: what ra-proxy costs, in
# one run, against a direct connection (the anchor) and HAProxy in TCP mode
# (Debian's, one thread, like ra-proxy) doing the same job, all on loopback
# in front of the same nginx:
#   throughput: one 1 GiB download (nginx sendfile) with curl to /dev/null,
#               MB/s; also ra-proxy --no-splice (read/write, what vsock
#               gets where it cannot splice);
#   latency:    wrk, 10 keep-alive connections, GET of a 2-byte answer for
#               SECONDS: req/s, p50 and p99.
# RUNS rounds (default 3) that alternate the modes, so background load hits
# them alike; each figure is printed as min / median / max over the rounds,
# with the median's ratio to the direct one. Reported, not a test.
set -euo pipefail
build=${1:-build}
runs=${2:-3}
secs=${3:-3}
px="$build/bin/ra-proxy"
[ -x "$px" ] || { echo "no $px (build first)" >&2; exit 2; }
for t in nginx haproxy wrk curl; do
  command -v $t >/dev/null || [ -x /usr/sbin/$t ] || { echo "needs $t (scripts/deps.sh)" >&2; exit 2; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
. "$(dirname "$0")/../tests/lib.sh"
. "$(dirname "$0")/../tests/nginx_conf.sh"
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 not up" >&2; exit 1; }

ng=$(free_port)
mkdir -p "$tmp/www" "$tmp/nginx/logs" "$tmp/nginx/tmp"
truncate -s 1G "$tmp/www/big"
{
  nginx_main "$tmp/nginx" "worker_connections 1024;"
  cat <<CONF
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
$(nginx_temp_paths "$tmp/nginx")
  server {
    listen 127.0.0.1:$ng;
    root $tmp/www;
    location = /ok { return 200 "ok"; }
  }
}
CONF
} >"$tmp/nginx/nginx.conf"
"$NGINX" -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx" &
pids+=($!)
wait_port "$ng"

rp=$(free_port)
"$px" --listen "127.0.0.1:$rp" --to "tcp:127.0.0.1:$ng" --quiet >/dev/null &
pids+=($!)
rpn=$(free_port)
"$px" --listen "127.0.0.1:$rpn" --to "tcp:127.0.0.1:$ng" --no-splice --quiet >/dev/null &
pids+=($!)
hp=$(free_port)
cat >"$tmp/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 600s
  timeout server 600s
frontend f
  bind 127.0.0.1:$hp
  default_backend b
backend b
  server s 127.0.0.1:$ng
CONF
"$HAPROXY" -f "$tmp/haproxy.cfg" -db >/dev/null 2>"$tmp/haproxy.err" &
pids+=($!)
wait_port "$rp"; wait_port "$rpn"; wait_port "$hp"

modes=(direct ra-proxy ra-proxy-nosplice haproxy)
declare -A port=([direct]=$ng [ra-proxy]=$rp [ra-proxy-nosplice]=$rpn [haproxy]=$hp)
echo "== $(uname -r), $(nproc) CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "== $("$HAPROXY" -v | head -1 | cut -d' ' -f1-3), nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'), load: $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$tmp/results"
# warm-up: the file into the page cache, nginx's and the proxies' first buffers
curl -s -o /dev/null "http://127.0.0.1:$ng/big"
for m in "${modes[@]}"; do curl -s -o /dev/null "http://127.0.0.1:${port[$m]}/ok"; done
for r in $(seq 1 "$runs"); do
  for m in "${modes[@]}"; do
    p=${port[$m]}
    bps=$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$p/big")
    echo "$m mbps $(awk -v b="$bps" 'BEGIN{printf "%.1f", b/1e6}')" >>"$tmp/results"
    [ "$m" = ra-proxy-nosplice ] && continue # latency: the splice path only
    wrk -t1 -c10 -d"${secs}s" --latency "http://127.0.0.1:$p/ok" >"$tmp/wrk" 2>&1
    awk -v m="$m" '
      function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
      /Requests\/sec/ { print m, "rps", $2 }
      $1 == "50%" { print m, "p50_ms", ms($2) }
      $1 == "99%" { print m, "p99_ms", ms($2) }' "$tmp/wrk" >>"$tmp/results"
  done
  echo "   round $r of $runs done (load $(cut -d' ' -f1 /proc/loadavg))" >&2
done
python3 - "$tmp/results" "$runs" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    m, k, v = line.split()
    rows.setdefault((m, k), []).append(float(v))
modes = ["direct", "ra-proxy", "ra-proxy-nosplice", "haproxy"]
metrics = [("mbps", "1 GiB download, MB/s", True), ("rps", "keep-alive GET, req/s", True),
           ("p50_ms", "keep-alive GET p50, ms", False), ("p99_ms", "keep-alive GET p99, ms", False)]
print("%d rounds, min / median / max, ratio = median / direct's median" % int(sys.argv[2]))
for k, title, _ in metrics:
    print("\n%s" % title)
    base = st.median(rows[("direct", k)])
    for m in modes:
        v = rows.get((m, k))
        if not v:
            continue
        med = st.median(v)
        print("  %-18s %10.3f / %10.3f / %10.3f   x%.2f" % (m, min(v), med, max(v), med / base if base else 0))
PY

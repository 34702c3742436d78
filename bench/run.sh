#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR] [ra-bench options...]
#
# The benchmark of issue 6, the way the README's table was made: ra-hello
# with the simulated TEE on a free loopback port pinned to core 0, ra-bench
# pinned to core 1, every scenario through the tunnel and in plain HTTP
# (--both). Prints the table (with the tunnel/plain ratios and the issue's
# targets) and writes, under BUILD_DIR/bench-results/:
#   results.txt   the table          results.json  the figures (ra-bench --format json)
#   results.svg   the chart          results.png   the chart as PNG (if rsvg-convert is there)
#   command.txt   the exact commands, the machine, the date
# Options after BUILD_DIR go to ra-bench (e.g. --duration 5 --handshakes 2000).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
[ $# -gt 0 ] && shift
build=$(cd "$build" && pwd)
bin=$build/bin
out=$build/bench-results
[ -x "$bin/ra-bench" ] || { echo "run.sh: no $bin/ra-bench (build first)" >&2; exit 2; }
[ -x "$bin/ra-hello" ] || { echo "run.sh: no $bin/ra-hello (build first)" >&2; exit 2; }
mkdir -p "$out"
simdir=$(mktemp -d)
log=$(mktemp)
srv_pid=
cleanup() {
  if [ -n "$srv_pid" ]; then kill "$srv_pid" 2>/dev/null || true; wait "$srv_pid" 2>/dev/null || true; fi
  rm -rf "$simdir" "$log"
}
trap cleanup EXIT

ncpu=$(nproc)
pin_srv=() pin_cli=()
if command -v taskset >/dev/null && [ "$ncpu" -ge 2 ]; then
  pin_srv=(taskset -c 0) pin_cli=(taskset -c 1)
else
  echo "run.sh: fewer than 2 CPUs or no taskset: running unpinned" >&2
fi

# ra-hello serves the tunnel at /__ra__ with the simulated TEE (--tee sim).
srv_cmd=("$bin/ra-hello" --listen 127.0.0.1:0 --quiet --tee sim --sim-dir "$simdir")
"${pin_srv[@]}" "${srv_cmd[@]}" >"$log" 2>&1 &
srv_pid=$!
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9][0-9]*\).*|\1|p' "$log" | head -1)
  [ -n "$port" ] && break
  kill -0 "$srv_pid" 2>/dev/null || break
  sleep 0.05
done
if [ -z "$port" ]; then
  echo "run.sh: ra-hello did not start:" >&2
  cat "$log" >&2
  exit 1
fi
url=http://127.0.0.1:$port
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
label="ra-hello on core 0, ra-bench on core 1"
[ ${#pin_srv[@]} -eq 0 ] && label="unpinned"

bench_cmd=("$bin/ra-bench" --both --trust-sim "$simdir" --quiet "$@")
{
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(uname -srm), ${cpu:-unknown CPU}, $ncpu CPU(s)"
  echo "server:  ${pin_srv[*]} ${srv_cmd[*]}"
  echo "bench:   ${pin_cli[*]} ${bench_cmd[*]} --format table --json-out FILE --chart FILE --label \"$label\" $url"
  echo "git:     $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?')"
} >"$out/command.txt"
cat "$out/command.txt"
echo

# One measuring run: the table on stdout, the same figures as JSON and the chart.
"${pin_cli[@]}" "${bench_cmd[@]}" --format table --json-out "$out/results.json" \
  --chart "$out/results.svg" --label "$label" "$url" | tee "$out/results.txt"
if command -v rsvg-convert >/dev/null; then
  rsvg-convert -o "$out/results.png" "$out/results.svg"
fi
echo
echo "written: $out/results.{txt,json,svg$(command -v rsvg-convert >/dev/null && echo ,png)} and command.txt"

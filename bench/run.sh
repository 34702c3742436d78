#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR] [--runs N] [--compare REV|DIR] [--cpu-requests N] [--sat-seconds S]
#              [--no-cpu] [ra-bench options...]
#
# The benchmark of issues 6 and 18: ra-hello with the simulated TEE on a
# free loopback port pinned to core 0, ra-bench pinned to core 1, every
# scenario through the tunnel and in plain HTTP (--both), repeated --runs
# times (default 3; a fresh server each run), so that every figure comes
# with its spread (min / median / max over the runs, bench/spread.py).
#
# After each ra-bench run, the server's CPU per request: --cpu-requests N
# (default 20000) serial GET /hello in plain HTTP, then N through one tunnel,
# the server's CPU time read before and after each from /proc/PID/schedstat
# (ns; /proc/PID/stat's utime+stime, 10 ms ticks, where schedstat is
# missing). Requests counted: N plus ra-bench's warm-up (N/5 + 1); the
# tunnel's one handshake is included (~0.1 ms, < 0.01 us per request).
# Also split into user and system time (/proc/PID/stat utime, stime: the
# kernel splits the precise total by 10 ms tick samples, so over 24,000
# requests the split is good to ~0.5 us per request).
# Serial requests cost mostly the kernel's wake-ups; so, with --sat-seconds
# S (default 3; 0: off), each mode also runs the throughput scenario alone
# for S seconds: the server's CPU time over those requests (CPU per request
# at saturation, where wake-ups are shared) and how busy each side was
# (server CPU / wall, ra-bench's user+system / wall): the side near 100 % is
# the bottleneck, so a tunnel/plain throughput ratio is read with it.
#
# --compare REV: also builds REV (a git revision of this repository, via
# `git archive` into a temporary folder, the same CMAKE_BUILD_TYPE as
# BUILD_DIR, only ra-hello and ra-bench), or takes DIR if it holds
# bin/ra-hello and bin/ra-bench, and runs both builds alternately (new,
# old, new, old, ...; each build with its own ra-hello and ra-bench), then
# prints per figure new/old over the run pairs (min / median / max).
#
# Writes under BUILD_DIR/bench-results/: runs/ (every run's JSON, table,
# CPU figures, summary.json), results.{txt,json,svg} of the last run,
# spread.txt (the spread table), command.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$here/build
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then build=$1; shift; fi
build=$(cd "$build" && pwd)
runs=3 compare= cpu_n=20000 sat_s=3 bench_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=${2:?}; shift 2 ;;
    --compare) compare=${2:?}; shift 2 ;;
    --cpu-requests) cpu_n=${2:?}; shift 2 ;;
    --no-cpu) cpu_n=0; shift ;;
    --sat-seconds) sat_s=${2:?}; shift 2 ;;
    *) bench_args+=("$1"); shift ;;
  esac
done
case $runs in ''|*[!0-9]*) echo "run.sh: --runs N" >&2; exit 2 ;; esac
case $cpu_n in ''|*[!0-9]*) echo "run.sh: --cpu-requests N" >&2; exit 2 ;; esac
case $sat_s in ''|*[!0-9]*) echo "run.sh: --sat-seconds S" >&2; exit 2 ;; esac
[ "$runs" -ge 1 ] || { echo "run.sh: --runs N (N >= 1; 3 or more for a spread)" >&2; exit 2; }
for p in ra-bench ra-hello; do
  [ -x "$build/bin/$p" ] || { echo "run.sh: no $build/bin/$p (build first)" >&2; exit 2; }
done
out=$build/bench-results
rm -rf "$out/runs"
mkdir -p "$out/runs"
tmp=$(mktemp -d)
srv_pid=
cleanup() {
  if [ -n "$srv_pid" ]; then kill "$srv_pid" 2>/dev/null || true; wait "$srv_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

ncpu=$(nproc)
pin_srv=() pin_cli=()
if command -v taskset >/dev/null && [ "$ncpu" -ge 2 ]; then
  pin_srv=(taskset -c 0) pin_cli=(taskset -c 1)
else
  echo "run.sh: fewer than 2 CPUs or no taskset: running unpinned" >&2
fi
label="ra-hello on core 0, ra-bench on core 1"
[ ${#pin_srv[@]} -eq 0 ] && label="unpinned"

# --- the other build --------------------------------------------------------
old=
if [ -n "$compare" ]; then
  if [ -x "$compare/bin/ra-hello" ] && [ -x "$compare/bin/ra-bench" ]; then
    old=$(cd "$compare" && pwd)
  else
    rev=$(git -C "$here" rev-parse --verify "$compare^{commit}") ||
      { echo "run.sh: --compare $compare: neither a build folder nor a revision" >&2; exit 2; }
    btype=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
    btype=${btype:-RelWithDebInfo}
    echo "run.sh: building $compare (${rev:0:12}, $btype) in $tmp/old ..." >&2
    mkdir -p "$tmp/old-src"
    git -C "$here" archive "$rev" | tar -x -C "$tmp/old-src"
    cmake -S "$tmp/old-src" -B "$tmp/old" -DCMAKE_BUILD_TYPE="$btype" >"$tmp/old-build.log" 2>&1 &&
      cmake --build "$tmp/old" -j"$ncpu" --target ra-hello ra-bench >>"$tmp/old-build.log" 2>&1 ||
      { tail -30 "$tmp/old-build.log" >&2; echo "run.sh: building $compare failed" >&2; exit 1; }
    old=$tmp/old
  fi
fi

# --- one run -----------------------------------------------------------------
port=
start_server() { # BIN SIMDIR LOG
  # emptied here, not only by the child's redirection: the child may not
  # have opened LOG yet when it is read below, and the last run's server
  # (gone now) named its port there
  : >"$3"
  "${pin_srv[@]}" "$1/ra-hello" --listen 127.0.0.1:0 --quiet --tee sim --sim-dir "$2" >"$3" 2>&1 &
  srv_pid=$!
  port=
  for _ in $(seq 1 200); do
    port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9][0-9]*\).*|\1|p' "$3" | head -1)
    [ -n "$port" ] && return 0
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "run.sh: ra-hello did not start:" >&2
  cat "$3" >&2
  return 1
}
stop_server() {
  kill "$srv_pid" 2>/dev/null || true
  wait "$srv_pid" 2>/dev/null || true
  srv_pid=
}
server_ut_st_ns() { # the server's user and system CPU time so far, in ns (tick-sampled split)
  sed 's/^.*) //' "/proc/$srv_pid/stat" |
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f %.0f\n", $12 * 1e9 / hz, $13 * 1e9 / hz }'
}
server_cpu_ns() { # the server's CPU time so far, in ns
  local f
  if [ -r "/proc/$srv_pid/schedstat" ]; then
    read -r f _ <"/proc/$srv_pid/schedstat"
    echo "$f"
  else
    # fields 14, 15 (utime, stime) after the parenthesised name
    sed 's/^.*) //' "/proc/$srv_pid/stat" |
      awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f\n", ($12 + $13) * 1e9 / hz }'
  fi
}

one_run() { # SIDE BUILD I
  local side=$1 dir=$2 i=$3 sim=$tmp/sim-$1-$3
  start_server "$dir/bin" "$sim" "$tmp/srv.log"
  local url=http://127.0.0.1:$port
  local cmd=("$dir/bin/ra-bench" --both --trust-sim "$sim" --quiet "${bench_args[@]}")
  "${pin_cli[@]}" "${cmd[@]}" --format table --json-out "$out/runs/$side-$i.json" \
    --chart "$out/runs/$side-$i.svg" --label "$label" "$url" >"$out/runs/$side-$i.txt"
  : >"$out/runs/$side-$i.cpu"
  if [ "$cpu_n" -gt 0 ]; then
    local mode before after u0 s0 u1 s1
    for mode in plain tunnel; do
      before=$(server_cpu_ns)
      read -r u0 s0 < <(server_ut_st_ns)
      "${pin_cli[@]}" "$dir/bin/ra-bench" "--$mode" --trust-sim "$sim" --quiet --scenario serial \
        --serial "$cpu_n" --rounds 1 --format json "$url" >/dev/null
      after=$(server_cpu_ns)
      read -r u1 s1 < <(server_ut_st_ns)
      local reqs=$((cpu_n + cpu_n / 5 + 1))
      echo "$mode $((after - before)) $reqs" >>"$out/runs/$side-$i.cpu"
      echo "$mode-user $((u1 - u0)) $reqs" >>"$out/runs/$side-$i.cpu"
      echo "$mode-system $((s1 - s0)) $reqs" >>"$out/runs/$side-$i.cpu"
    done
  fi
  : >"$out/runs/$side-$i.sat"
  if [ "$sat_s" -gt 0 ]; then
    local mode c0 c1 t0 t1 cli n
    for mode in plain tunnel; do
      c0=$(server_cpu_ns)
      t0=$(date +%s%N)
      # bash's `time` of the child: its user+system CPU (TIMEFORMAT %U %S)
      cli=$( { TIMEFORMAT='%3U %3S'; time "${pin_cli[@]}" "$dir/bin/ra-bench" "--$mode" --trust-sim "$sim" \
        --quiet --scenario throughput --duration "$sat_s" --rounds 1 --format json "$url" \
        >"$tmp/sat.json"; } 2>&1 | tail -1)
      t1=$(date +%s%N)
      c1=$(server_cpu_ns)
      n=$(python3 -c 'import json,sys; print(sum(r["n"] for r in json.load(open(sys.argv[1]))))' "$tmp/sat.json")
      echo "$mode $((c1 - c0)) $(echo "$cli" | awk '{ printf "%.0f", ($1 + $2) * 1e9 }') $((t1 - t0)) $n" \
        >>"$out/runs/$side-$i.sat"
    done
  fi
  stop_server
  rm -rf "$sim"
}

{
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(uname -srm), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $ncpu CPU(s)"
  echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at the start"
  echo "server:  ${pin_srv[*]} BUILD/bin/ra-hello --listen 127.0.0.1:0 --quiet --tee sim --sim-dir DIR"
  echo "bench:   ${pin_cli[*]} BUILD/bin/ra-bench --both --trust-sim DIR --quiet ${bench_args[*]} --format table --json-out FILE URL"
  [ "$sat_s" -gt 0 ] && echo "sat:     ${pin_cli[*]} BUILD/bin/ra-bench --plain|--tunnel --scenario throughput --duration $sat_s --rounds 1 URL; server CPU (schedstat), ra-bench CPU (bash time), wall"
  [ "$cpu_n" -gt 0 ] && echo "cpu:     ${pin_cli[*]} BUILD/bin/ra-bench --plain|--tunnel --scenario serial --serial $cpu_n --rounds 1 URL; server CPU from /proc/PID/schedstat"
  echo "runs:    $runs$([ -n "$old" ] && echo ", alternating new/old")"
  echo "new:     $build (git $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?'))"
  [ -n "$old" ] && echo "old:     $compare ($old)"
} >"$out/command.txt"
cat "$out/command.txt"
echo

for i in $(seq 1 "$runs"); do
  one_run new "$build" "$i"
  echo "run $i/$runs: new done" >&2
  if [ -n "$old" ]; then
    one_run old "$old" "$i"
    echo "run $i/$runs: old done" >&2
  fi
done
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at the end" >>"$out/command.txt"
tail -1 "$out/command.txt"
echo

cp "$out/runs/new-$runs.txt" "$out/results.txt"
cp "$out/runs/new-$runs.json" "$out/results.json"
cp "$out/runs/new-$runs.svg" "$out/results.svg"
echo "last run (new):"
cat "$out/results.txt"
echo
sides=(new)
[ -n "$old" ] && sides+=(old)
python3 "$here/bench/spread.py" "$out/runs" "${sides[@]}" | tee "$out/spread.txt"
echo "written: $out/{results.txt,results.json,results.svg,spread.txt,command.txt} and runs/"

#!/usr/bin/env bash
# bench/callgrind.sh [BUILD_DIR] [N] [--annotate] [--client]
#
# The server's instructions per request, plain HTTP and through the tunnel:
# a load-independent figure (valgrind counts instructions; the machine's
# load, frequency and neighbours do not change it), for comparing the CPU
# cost of a request before and after a change.
#
# ra-hello (--tee sim) runs under `valgrind --tool=callgrind`; ra-bench
# sends serial GET /hello, in plain HTTP then through one tunnel, twice per
# mode: N and 2N requests (plus ra-bench's warm-up, N/5 + 1 resp. 2N/5 + 1).
# The server's instruction counter is read before and after each batch
# (callgrind_control -e); instructions per request =
# (I(2N batch) - I(N batch)) / (requests of 2N - requests of N), so that the
# connection set-up, the tunnel's handshake and ra-bench's warm-up cancel
# out. Default N = 1000. --annotate also dumps the profile of one tunnel
# batch and prints callgrind_annotate's top functions (inclusive) to
# BUILD_DIR/bench-results/callgrind-tunnel.txt.
#
# --client: the same figure for the client instead. ra-hello runs natively,
# ra-bench (the C client: llhttp, resp. the tunnel client) runs under
# callgrind, once with N and once with 2N serial requests per mode; its
# whole instruction count is taken from each run, and the difference per
# request cancels the start-up, the quote's verification, the handshake
# and the warm-up as above. With --annotate the profile of the N-request
# tunnel run is kept in BUILD_DIR/bench-results/callgrind-client-tunnel.out.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$here/build
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then build=$1; shift; fi
build=$(cd "$build" && pwd)
n=1000 annotate=0 client=0
while [ $# -gt 0 ]; do
  case $1 in
    --annotate) annotate=1 ;;
    --client) client=1 ;;
    *[!0-9]*|'') echo "usage: callgrind.sh [BUILD_DIR] [N] [--annotate] [--client]" >&2; exit 2 ;;
    *) n=$1 ;;
  esac
  shift
done
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null ||
  { echo "callgrind.sh: needs valgrind (apt-get install valgrind)" >&2; exit 2; }
out=$build/bench-results
mkdir -p "$out"
tmp=$(mktemp -d)
srv_pid=
cleanup() {
  if [ -n "$srv_pid" ]; then kill "$srv_pid" 2>/dev/null || true; wait "$srv_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

srv_cg=(valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out.%p")
[ "$client" = 1 ] && srv_cg=()
(cd "$tmp" && exec "${srv_cg[@]}" \
  "$build/bin/ra-hello" --listen 127.0.0.1:0 --quiet --tee sim --sim-dir "$tmp/sim") >"$tmp/srv.log" 2>&1 &
srv_pid=$!
port=
for _ in $(seq 1 600); do
  port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9][0-9]*\).*|\1|p' "$tmp/srv.log" | head -1)
  [ -n "$port" ] && break
  kill -0 "$srv_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$port" ] || { cat "$tmp/srv.log" >&2; echo "callgrind.sh: ra-hello did not start" >&2; exit 1; }
url=http://127.0.0.1:$port

reqs() { echo $(($1 + $1 / 5 + 1)); }

if [ "$client" = 1 ]; then
  cbatch() { # MODE COUNT [OUT] -> instructions of ra-bench's whole run
    local f=${3:-$tmp/client.out}
    valgrind --tool=callgrind --callgrind-out-file="$f" "$build/bin/ra-bench" "--$1" \
      --trust-sim "$tmp/sim" --quiet --scenario serial --serial "$2" --rounds 1 --format json "$url" \
      >/dev/null 2>"$tmp/client.log" || { cat "$tmp/client.log" >&2; exit 1; }
    sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$f" | head -1
  }
  echo "client: valgrind --tool=callgrind $build/bin/ra-bench --scenario serial; server: ra-hello --tee sim"
  printf '%-8s %14s %14s %12s\n' mode "I(N=$n)" "I(N=$((2 * n)))" "Ir/request"
  declare -A per
  for mode in plain tunnel; do
    f=
    [ "$annotate" = 1 ] && [ "$mode" = tunnel ] && f=$out/callgrind-client-tunnel.out
    a=$(cbatch "$mode" "$n" "$f")
    b=$(cbatch "$mode" $((2 * n)))
    per[$mode]=$(((b - a) / ($(reqs $((2 * n))) - $(reqs "$n"))))
    printf '%-8s %14d %14d %12d\n' "$mode" "$a" "$b" "${per[$mode]}"
  done
  printf '%-8s %14s %14s %12d (%s x plain)\n' tunnel-plain "" "" $((per[tunnel] - per[plain])) \
    "$(awk -v a="${per[tunnel]}" -v b="${per[plain]}" 'BEGIN { printf "%.2f", a / b }')"
  [ "$annotate" = 1 ] && echo "profile of the N-request tunnel run: $out/callgrind-client-tunnel.out"
  exit 0
fi

ir() { # the server's instruction count so far
  callgrind_control -e Ir "$srv_pid" 2>/dev/null |
    sed -n 's/^[[:space:]]*Th 1[[:space:]]*\([0-9,]*\).*/\1/p' | tr -d , | head -1
}
batch() { # MODE COUNT -> instructions of the batch
  local before after
  before=$(ir)
  "$build/bin/ra-bench" "--$1" --trust-sim "$tmp/sim" --quiet --scenario serial --serial "$2" \
    --rounds 1 --format json "$url" >/dev/null
  after=$(ir)
  [ -n "$before" ] && [ -n "$after" ] || { echo "callgrind.sh: cannot read the counter" >&2; exit 1; }
  echo $((after - before))
}

echo "server: valgrind --tool=callgrind $build/bin/ra-hello --tee sim; client: ra-bench --scenario serial"
printf '%-8s %14s %14s %12s\n' mode "I(N=$n)" "I(N=$((2 * n)))" "Ir/request"
declare -A per
for mode in plain tunnel; do
  batch "$mode" 20 >/dev/null # first touch of the code paths, not counted
  a=$(batch "$mode" "$n")
  b=$(batch "$mode" $((2 * n)))
  per[$mode]=$(((b - a) / ($(reqs $((2 * n))) - $(reqs "$n"))))
  printf '%-8s %14d %14d %12d\n' "$mode" "$a" "$b" "${per[$mode]}"
done
printf '%-8s %14s %14s %12d (%s x plain)\n' tunnel-plain "" "" $((per[tunnel] - per[plain])) \
  "$(awk -v a="${per[tunnel]}" -v b="${per[plain]}" 'BEGIN { printf "%.2f", a / b }')"

if [ "$annotate" = 1 ]; then
  callgrind_control -z "$srv_pid" >/dev/null
  "$build/bin/ra-bench" --tunnel --trust-sim "$tmp/sim" --quiet --scenario serial --serial "$n" \
    --rounds 1 --format json "$url" >/dev/null
  callgrind_control -d "$srv_pid" >/dev/null
  f=$(ls -t "$tmp"/cg.out.* | head -1)
  callgrind_annotate --inclusive=yes "$f" >"$tmp/incl.txt" 2>/dev/null || true
  callgrind_annotate "$f" >"$tmp/self.txt" 2>/dev/null || true
  sed -n 1,80p "$tmp/incl.txt" >"$out/callgrind-tunnel.txt"
  sed -n 1,80p "$tmp/self.txt" >"$out/callgrind-tunnel-self.txt"
  cp "$f" "$out/callgrind-tunnel.out"
  echo "profile of $(reqs "$n") tunnelled requests: $out/callgrind-tunnel{.out,.txt,-self.txt}"
fi

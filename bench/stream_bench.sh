#!/usr/bin/env bash
# bench/stream_bench.sh BUILD_DIR [SIZE_MiB] [RUNS]
#
# Streamed bodies through the attested tunnel (issue 17, PROTOCOL.md §11):
# ra-hello (simulated TEE) pinned to core 0, the client pinned to core 1.
#   tunnel   ra-curl -T FILE to PUT /upload and ra-curl -o /dev/null of
#            GET /bytes?n=SIZE: streamed (http_body pieces within credit)
#   plain    the same two with curl over plain HTTP (no tunnel, no cipher;
#            /upload takes its body streamed on HTTP/1.1 too)
#   whole    the whole-body path: ra-curl --no-body-streams (a tunnel that
#            did not negotiate streams), with min(SIZE, 12) MiB (what one
#            whole message to ra-hello may carry: its 16 MiB max_envelope;
#            MB/s is comparable)
#   floor    XSalsa20-Poly1305 on one core: ra-bench's crypto floor (four
#            crypto_secretbox passes over 1 MiB) as MB/s of one pass. In a
#            streamed transfer each byte is sealed on one core and opened on
#            the other, so one pass per core is the ceiling.
# For each: MB/s (10^6 bytes / s, wall time of the client process,
# handshake included) min / median / max over RUNS, and the peak RSS of the
# client (/usr/bin/time) and of ra-hello (VmHWM, reset before each run with
# /proc/PID/clear_refs), and the median as a ratio to the floor. Also the
# server's CPU time per byte (/proc/PID/schedstat around each transfer) and,
# per direction, (tunnel - plain) server CPU per byte over the floor's per
# byte: what the tunnel adds on the server in units of one cipher pass
# (1.00: the cipher and nothing else; both sides pay the socket and the
# handler, and /upload's SHA-256, in both modes).
# Needs: taskset, curl, /usr/bin/time, python3.
set -euo pipefail
build=$(cd "${1:?usage: stream_bench.sh BUILD_DIR [SIZE_MiB] [RUNS]}" && pwd)
size=${2:-1024}
runs=${3:-3}
whole=$((size < 12 ? size : 12))
plainup=$size
bin=$build/bin
for b in ra-hello ra-curl ra-bench; do [ -x "$bin/$b" ] || { echo "no $bin/$b: build first" >&2; exit 1; }; done
for t in taskset curl python3; do command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }; done
[ -x /usr/bin/time ] || { echo "missing /usr/bin/time" >&2; exit 1; }
dir=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

taskset -c 0 "$bin/ra-hello" --listen 127.0.0.1:0 --tee sim --sim-dir "$dir/sim" --quiet >"$dir/hello.out" 2>"$dir/hello.err" &
pid=$!
port=
for _ in $(seq 1 400); do
  port=$(sed -n 's/^listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$dir/hello.out" 2>/dev/null || true)
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { cat "$dir/hello.err" >&2; echo "ra-hello did not start" >&2; exit 1; }
url=http://127.0.0.1:$port
head -c $((size << 20)) /dev/urandom >"$dir/up.bin"
head -c $((whole << 20)) "$dir/up.bin" >"$dir/whole.bin"
head -c $((plainup << 20)) "$dir/up.bin" >"$dir/plain.bin"

# one MODE DIR BYTES CMD...: runs CMD on core 1, appends "MODE DIR BYTES SECS CLIENT_KIB SERVER_KIB"
one() {
  local mode=$1 d=$2 bytes=$3; shift 3
  echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true # resets VmHWM
  local c0 c1
  read -r c0 _ <"/proc/$pid/schedstat"
  /usr/bin/time -f '%e %M' -o "$dir/time" taskset -c 1 "$@" >"$dir/out" 2>"$dir/err" \
    || { echo "failed: $* $(cat "$dir/err")" >&2; exit 1; }
  read -r c1 _ <"/proc/$pid/schedstat"
  local shwm
  shwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$pid/status")
  echo "$mode $d $bytes $(tail -1 "$dir/time") $shwm $((c1 - c0))" >>"$dir/rows"
}
rc="$bin/ra-curl --trust-sim $dir/sim"
for _ in $(seq 1 "$runs"); do
  one tunnel up $((size << 20)) $rc -T "$dir/up.bin" -o /dev/null "$url/upload"
  one tunnel down $((size << 20)) $rc -o /dev/null "$url/bytes?n=$((size << 20))"
  one plain up $((plainup << 20)) curl -fsS -T "$dir/plain.bin" -o /dev/null "$url/upload"
  one plain down $((size << 20)) curl -fsS -o /dev/null "$url/bytes?n=$((size << 20))"
done
# the whole-body runs last: the heap they grow in ra-hello stays (RSS)
for _ in $(seq 1 "$runs"); do
  one whole up $((whole << 20)) $rc --no-body-streams -T "$dir/whole.bin" -o /dev/null "$url/upload"
  one whole down $((whole << 20)) $rc --no-body-streams -o /dev/null "$url/bytes?n=$((whole << 20))"
done
# the floor: ra-bench's large scenario, plain only (its floor row), on core 1
taskset -c 1 "$bin/ra-bench" --scenario large --plain --rounds "$runs" --format csv "$url" >"$dir/floor.csv" 2>/dev/null \
  || { echo "ra-bench failed" >&2; exit 1; }

python3 - "$dir/rows" "$dir/floor.csv" "$size" "$whole" "$runs" <<'EOF'
import csv, statistics, sys
rows_f, floor_f, size, whole, runs = sys.argv[1:]
rows = {}
for line in open(rows_f):
    mode, d, b, secs, ckib, skib, sns = line.split()
    rows.setdefault((mode, d), []).append((int(b) / 1e6 / max(float(secs), 1e-3), int(ckib), int(skib),
                                           int(sns) / int(b)))
floor = None
for r in csv.DictReader(open(floor_f)):
    if r.get("scenario") == "large" and r.get("mode") == "floor":
        floor = 4 * 1048576 / 1e6 / (float(r["avg_ms"]) / 1e3)  # MB/s of one pass
print(f"size {size} MiB (whole: {whole} MiB), {runs} run(s); server core 0, client core 1")
print(f"{'mode':7} {'dir':5} {'MB/s min':>9} {'median':>9} {'max':>9} {'client RSS':>11} {'server RSS':>11} {'x floor':>8} {'srv ns/B':>9}")
cpu = {}
for (mode, d), v in rows.items():
    mbs = sorted(x[0] for x in v)
    med = statistics.median(mbs)
    cr = max(x[1] for x in v) / 1024
    sr = max(x[2] for x in v) / 1024
    ratio = f"{med / floor:.2f}" if floor else "-"
    cpu[(mode, d)] = statistics.median(x[3] for x in v)
    print(f"{mode:7} {d:5} {mbs[0]:9.1f} {med:9.1f} {mbs[-1]:9.1f} {cr:8.1f} MiB {sr:8.1f} MiB {ratio:>8} {cpu[(mode, d)]:9.3f}")
if floor:
    print(f"floor   XSalsa20-Poly1305, one pass on one core: {floor:.1f} MB/s (ra-bench large floor)"
          f" = {1e3 / floor:.3f} ns/B")
    for d in ("up", "down"):
        t, p = cpu.get(("tunnel", d)), cpu.get(("plain", d))
        if t is not None and p is not None:
            print(f"server CPU, {d}: tunnel {t:.3f} - plain {p:.3f} ns/B = {(t - p) * floor / 1e3:.2f} x one cipher pass")
EOF

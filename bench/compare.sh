#!/usr/bin/env bash
# bench/compare.sh BUILD_A BUILD_B [RUNS] [ra-bench options...]
#
# Before/after: runs bench/run.sh (the whole tunnel-vs-plain benchmark,
# pinned) on two builds, alternating A, B, A, B, ... RUNS times each
# (default 3), so that a neighbour's load falls on both alike. Prints per
# scenario the tunnel/plain ratio of each run (throughput: tunnel % of
# plain; handshake: tunnels/s; large: (tunnel - plain) / crypto floor) and
# their median, for A and B.
# BUILD_x is a folder with bin/ra-hello and bin/ra-bench (a build tree, or
# a copy of one's bin/).
# (Superseded by `bench/run.sh BUILD_A --compare BUILD_B|REV`, which prints
# every figure's new/old ratio per run pair as min / median / max; each
# run.sh call here now makes --runs 3 runs itself, pass --runs 1 to keep
# the old pace.)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
a=$(cd "$1" && pwd); b=$(cd "$2" && pwd)
runs=${3:-3}
shift $(( $# >= 3 ? 3 : $# ))
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for i in $(seq 1 "$runs"); do
  for side in a b; do
    dir=$a; [ "$side" = b ] && dir=$b
    "$here/bench/run.sh" "$dir" "$@" >/dev/null
    cp "$dir/bench-results/results.json" "$out/$side-$i.json"
    echo "run $i $side done" >&2
  done
done
node - "$out" "$runs" "$a" "$b" <<'JS'
const fs = require('fs');
const [dir, runs, A, B] = process.argv.slice(2);
const med = (xs) => { const s = [...xs].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
const figure = (rows, sc) => {
  const t = rows.find((r) => r.scenario === sc && r.mode === 'tunnel');
  const p = rows.find((r) => r.scenario === sc && r.mode === 'plain');
  if (sc === 'handshake') return t ? t.rps : NaN;
  if (sc === 'large') {
    const fl = rows.find((r) => r.scenario === sc && r.mode === 'floor');
    return t && p && fl ? (t.avg_ms - p.avg_ms) / fl.avg_ms : NaN;
  }
  if (sc === 'throughput') return t && p ? (100 * t.rps) / p.rps : NaN;
  return t && p ? t.avg_ms / p.avg_ms : NaN;
};
const scen = ['concurrent', 'serial', 'large', 'throughput', 'handshake'];
const unit = { throughput: '% of plain', handshake: 'tunnels/s', large: 'x floor' };
console.log(`A = ${A}\nB = ${B}\n${runs} alternating runs each; tunnel/plain avg unless noted`);
for (const sc of scen) {
  const per = { a: [], b: [] };
  for (const side of ['a', 'b'])
    for (let i = 1; i <= +runs; i++)
      per[side].push(figure(JSON.parse(fs.readFileSync(`${dir}/${side}-${i}.json`)), sc));
  const f = (x) => (sc === 'handshake' ? x.toFixed(0) : sc === 'throughput' ? x.toFixed(1) : x.toFixed(2));
  console.log(`${sc.padEnd(11)} ${(unit[sc] || 'ratio').padEnd(11)} A: ${per.a.map(f).join(' ')} (median ${f(med(per.a))})` +
              `   B: ${per.b.map(f).join(' ')} (median ${f(med(per.b))})   B/A ${(med(per.b) / med(per.a)).toFixed(2)}`);
}
JS

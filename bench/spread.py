#!/usr/bin/env python3
"""bench/spread.py DIR [SIDE...]: the figures of several bench/run.sh runs
with their spread.

DIR holds, per run i (1..) and side (e.g. "new", "old"):
  SIDE-i.json  ra-bench --format json of that run
  SIDE-i.cpu   lines "MODE NS REQUESTS": server CPU time (ns) spent on a
               fixed number of serial requests of that mode (optional)
  SIDE-i.sat   lines "MODE SERVER_NS CLIENT_NS WALL_NS REQUESTS": the
               throughput scenario alone (optional): server and ra-bench
               CPU time, wall time, requests done
Prints, per side, every figure as min / median / max over the runs, and the
per-run derived figures of issue 18 (tunnel/plain ratios, large's excess
over the crypto floor, server CPU per request). With two sides (new first,
old second) it also prints new/old per run i (the runs alternate, so run i
of both sides saw about the same background load) as min / median / max.
Also writes DIR/summary.json with the same numbers.
"""
import json
import os
import statistics
import sys


def load(d, side):
    runs = []
    i = 1
    while os.path.exists(os.path.join(d, f"{side}-{i}.json")):
        with open(os.path.join(d, f"{side}-{i}.json")) as f:
            rows = json.load(f)
        fig = {}
        for r in rows:
            key = f"{r['scenario']}/{r['mode']}"
            for k in ("avg_ms", "p50_ms", "p99_ms", "rps"):
                fig[f"{key} {k}"] = r[k]
        derive(fig)
        cpu = os.path.join(d, f"{side}-{i}.cpu")
        if os.path.exists(cpu):
            with open(cpu) as f:
                for line in f:
                    p = line.split()
                    if len(p) == 3 and float(p[2]) > 0:
                        fig[f"cpu/{p[0]} us_per_req"] = float(p[1]) / 1000.0 / float(p[2])
            for suf in ("", "-user", "-system"):
                a, b = fig.get(f"cpu/plain{suf} us_per_req"), fig.get(f"cpu/tunnel{suf} us_per_req")
                if a is not None and b is not None:
                    fig[f"cpu/tunnel{suf}-plain{suf} us_per_req"] = b - a
        sat = os.path.join(d, f"{side}-{i}.sat")
        if os.path.exists(sat):
            with open(sat) as f:
                for line in f:
                    p = line.split()
                    if len(p) == 5 and float(p[3]) > 0 and float(p[4]) > 0:
                        m, srv, cli, wall, n = p[0], *map(float, p[1:])
                        fig[f"sat/{m} server_us_per_req"] = srv / 1000.0 / n
                        fig[f"sat/{m} server_busy_pct"] = 100.0 * srv / wall
                        fig[f"sat/{m} client_busy_pct"] = 100.0 * cli / wall
                        fig[f"sat/{m} rps"] = n * 1e9 / wall
                        fig[f"sat/{m} client_us_per_req"] = cli / 1000.0 / n
            a, b = fig.get("sat/plain server_us_per_req"), fig.get("sat/tunnel server_us_per_req")
            if a is not None and b is not None:
                fig["sat/tunnel-plain server_us_per_req"] = b - a
            # each side's own bound: its plain CPU per request at saturation
            # against that plus its half of the cipher floor
            fl = fig.get("throughput/floor us_per_side")
            for who in ("server", "client"):
                a = fig.get(f"sat/plain {who}_us_per_req")
                if a and fl:
                    fig[f"sat/cipher bound {who} plain/(plain+floor)"] = a / (a + fl)
        runs.append(fig)
        i += 1
    return runs


def derive(fig):
    for sc in ("concurrent", "serial", "large", "handshake"):
        p, t = fig.get(f"{sc}/plain avg_ms"), fig.get(f"{sc}/tunnel avg_ms")
        if p and t is not None:
            fig[f"{sc}/ratio avg tunnel/plain"] = t / p
    p, t = fig.get("throughput/plain rps"), fig.get("throughput/tunnel rps")
    if p and t is not None:
        fig["throughput/ratio rps tunnel/plain"] = t / p
    # issue 18's throughput target against the cipher: the four passes of
    # one tunnelled GET (the floor's median sample), half of them a side; a
    # side that spent 1/rps of plain per request plus its half could reach
    # at most this ratio (bench/report.c says the same in the table)
    p, fl = fig.get("throughput/plain rps"), fig.get("throughput/floor p50_ms")
    if p and fl:
        side = fl * 1e3 / 2
        fig["throughput/floor us_per_side"] = side
        fig["throughput/cipher bound tunnel/plain"] = 1 / (1 + p * side / 1e6)
    p, t, fl = (fig.get(f"large/{m} avg_ms") for m in ("plain", "tunnel", "floor"))
    if p is not None and t is not None and fl:
        fig["large/excess (tunnel-plain)/floor"] = (t - p) / fl


def spread(xs):
    return min(xs), statistics.median(xs), max(xs)


def fmt(v):
    a = abs(v)
    if a >= 1000:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}"


def keys_of(runs):
    seen = []
    for r in runs:
        for k in r:
            if k not in seen:
                seen.append(k)
    return seen


def main():
    if len(sys.argv) < 3:
        sys.stderr.write("usage: spread.py DIR SIDE [OLD_SIDE]\n")
        return 2
    d, sides = sys.argv[1], sys.argv[2:]
    data = {s: load(d, s) for s in sides}
    summary = {}
    for s in sides:
        runs = data[s]
        if not runs:
            sys.stderr.write(f"spread.py: no runs for {s} in {d}\n")
            return 1
        print(f"== {s}: {len(runs)} runs, min / median / max")
        print(f"{'figure':44} {'min':>11} {'median':>11} {'max':>11}")
        summary[s] = {}
        for k in keys_of(runs):
            xs = [r[k] for r in runs if k in r]
            lo, med, hi = spread(xs)
            summary[s][k] = {"min": lo, "median": med, "max": hi, "n": len(xs)}
            print(f"{k:44} {fmt(lo):>11} {fmt(med):>11} {fmt(hi):>11}")
        print()
    if len(sides) == 2:
        new, old = data[sides[0]], data[sides[1]]
        n = min(len(new), len(old))
        print(f"== {sides[0]} / {sides[1]}, per alternating run pair ({n} pairs), min / median / max")
        print("   (avg/p50/p99/cpu: below 1 is faster; rps and throughput ratio: above 1 is better)")
        print(f"{'figure':44} {'min':>9} {'median':>9} {'max':>9}")
        summary["ratio"] = {}
        for k in keys_of(new[:n]):
            if "-plain" in k or k.startswith("large/excess"):
                continue  # a difference: a ratio of it says little
            xs = [new[i][k] / old[i][k] for i in range(n) if k in new[i] and old[i].get(k)]
            if not xs:
                continue
            lo, med, hi = spread(xs)
            summary["ratio"][k] = {"min": lo, "median": med, "max": hi, "n": len(xs)}
            print(f"{k:44} {lo:8.3f}x {med:8.3f}x {hi:8.3f}x")
        print()
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

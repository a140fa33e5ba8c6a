#!/usr/bin/env python3
"""The A/A false-positive rate of `scen compare` with several runs per side, on a loaded machine,
side by side with one run per side; and whether a planted 2 ms fsync delay is still caught.

Runs tests/fixtures/compare-disk.rhai --healthy times while a second process hogs one core (a
busy-loop, as a shared CI runner's neighbour), then --slow times with the member's fsyncs delayed.
From the healthy pool it draws --pairs A/A comparisons of --per-side runs against --per-side other
runs (disjoint within a pair), and as many one-run pairs; each comparison fails CI when it exits 1.
Then it compares --per-side healthy runs with the slowed ones.

Usage: benches/compare-aa.py [--healthy 12] [--slow 3] [--per-side 3] [--pairs 20]
                             [--bin target/debug/scen] [--no-hog]
Takes about (healthy + slow) × 7 s.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests/fixtures/compare-disk.rhai")


def run(scen, out, sets=()):
    args = [scen, "run", FIXTURE, "-q", "--report", out]
    for s in sets:
        args += ["--set", s]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode not in (0, 1):
        sys.exit(f"run failed ({r.returncode}): {r.stderr}")


def compare(scen, olds, news):
    args = [scen, "compare", "--json", *olds]
    args += ["--", *news] if len(olds) > 1 or len(news) > 1 else news
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode not in (0, 1):
        sys.exit(f"compare failed ({r.returncode}): {r.stderr}")
    rows = json.loads(r.stdout)["rows"]
    failing = [x["path"] for x in rows if x["verdict"] in ("regressed", "missing")]
    return r.returncode, failing, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--healthy", type=int, default=12)
    ap.add_argument("--slow", type=int, default=3)
    ap.add_argument("--per-side", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/debug/scen"))
    ap.add_argument("--no-hog", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.healthy < 2 * a.per_side:
        sys.exit("--healthy must be at least twice --per-side")
    hog = None
    if not a.no_hog:
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        with tempfile.TemporaryDirectory() as d:
            healthy = [os.path.join(d, f"h{i}.json") for i in range(a.healthy)]
            slow = [os.path.join(d, f"s{i}.json") for i in range(a.slow)]
            for p in healthy:
                run(a.bin, p)
            for p in slow:
                run(a.bin, p, ["delay=2ms"])
            rng = random.Random(a.seed)
            many_fail = one_fail = 0
            many_figs = one_figs = 0
            for _ in range(a.pairs):
                pick = rng.sample(healthy, 2 * a.per_side)
                code, flagged, _ = compare(a.bin, pick[: a.per_side], pick[a.per_side :])
                many_fail += code == 1
                many_figs += len(flagged)
                code, flagged, _ = compare(a.bin, pick[:1], pick[1:2])
                one_fail += code == 1
                one_figs += len(flagged)
            code, flagged, rows = compare(a.bin, healthy[: a.per_side], slow)
            fsync = next((x for x in rows if x["path"] == "load.server.wal_fsync.p99"), None)
            p99 = next((x for x in rows if x["path"] == "load.latency.p99"), None)
    finally:
        if hog:
            hog.kill()
    load = "no hog" if a.no_hog else "one core hogged"
    print(f"A/A over {a.pairs} comparisons of compare-disk.rhai reruns ({load}):")
    print(f"  {a.per_side} vs {a.per_side} runs: {many_fail}/{a.pairs} fail CI "
          f"({100 * many_fail / a.pairs:.0f}%), {many_figs} figures regressed or missing")
    print(f"  1 vs 1 run:   {one_fail}/{a.pairs} fail CI "
          f"({100 * one_fail / a.pairs:.0f}%), {one_figs} figures regressed or missing")
    print(f"planted 2 ms fsync delay, {a.per_side} vs {a.slow} runs: exit {code}, "
          f"{len(flagged)} figures regressed")
    for name, r in [("load.latency.p99", p99), ("load.server.wal_fsync.p99", fsync)]:
        if r:
            print(f"  {name}: {r['verdict']} ({r.get('why') or ''})")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""How often `scen compare` calls a rerun a regression (false positives), and whether it still
catches a real one, side by side with a naive tolerance-only comparison (what `scen compare` did
before it was noise-aware: any figure worse by more than the tolerance).

Runs a scenario N times on the same machine (each with its own throwaway etcd), compares every
pair of reruns, and prints per tolerance: the pairs that would fail CI (exit 1) and the figures
flagged, for scen's verdict and for the naive one. Then runs tests/fixtures/compare-disk.rhai with
the member's fsyncs delayed by --slow (a real regression) and reports whether each method catches
it.

Usage: benches/compare-noise.py [--scenario scenarios/etcd-stress.rhai] [--runs 6]
                                [--tolerances 10%,20%] [--slow 2ms] [--bin target/debug/scen]
Takes about runs × (the scenario's length + 2 s) + 20 s.
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(scen, scenario, out, sets=()):
    args = [scen, "run", scenario, "-q", "--report", out]
    for s in sets:
        args += ["--set", s]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode not in (0, 1):
        sys.exit(f"{scenario} failed ({r.returncode}): {r.stderr}")


def compare(scen, a, b, tolerance):
    r = subprocess.run(
        [scen, "compare", a, b, "--tolerance", tolerance, "--json"],
        capture_output=True,
        text=True,
    )
    if r.returncode not in (0, 1):
        sys.exit(f"compare failed: {r.stderr}")
    rows = json.loads(r.stdout)["rows"]
    scen_flagged = [x["path"] for x in rows if x["verdict"] == "regressed"]
    tol = float(tolerance.rstrip("%")) / 100

    def worse(x):
        c = x["change"]
        if c is None or x["better"] is None:
            return False
        return c > tol if x["better"] == "lower" else c < -tol

    naive = [x["path"] for x in rows if worse(x)]
    return r.returncode, scen_flagged, naive


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default=os.path.join(ROOT, "scenarios/etcd-stress.rhai"))
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--tolerances", default="10%,20%")
    ap.add_argument("--slow", default="2ms")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/debug/scen"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="scen-compare-noise-")
    reports = []
    for i in range(a.runs):
        out = os.path.join(tmp, f"run{i}.json")
        run(a.bin, a.scenario, out)
        reports.append(out)
        print(f"run {i + 1}/{a.runs} done", file=sys.stderr)
    pairs = list(itertools.combinations(reports, 2))
    print(f"\n{os.path.basename(a.scenario)}: {a.runs} reruns, {len(pairs)} pairs compared")
    print(f"{'tolerance':>9}  {'scen: pairs failing':>20} {'figures flagged':>16}   "
          f"{'naive: pairs failing':>21} {'figures flagged':>16}")
    for tol in a.tolerances.split(","):
        s_pairs = s_figs = n_pairs = n_figs = 0
        examples = {}
        for x, y in pairs:
            code, flagged, naive = compare(a.bin, x, y, tol)
            s_pairs += code == 1
            s_figs += len(flagged)
            n_pairs += bool(naive)
            n_figs += len(naive)
            for f in flagged:
                examples[f] = examples.get(f, 0) + 1
        print(f"{tol:>9}  {s_pairs:>11}/{len(pairs):<8} {s_figs:>16}   "
              f"{n_pairs:>12}/{len(pairs):<8} {n_figs:>16}")
        for f, c in sorted(examples.items(), key=lambda kv: -kv[1])[:5]:
            print(f"{'':>11}scen flagged {f} in {c} pair(s)")
    disk = os.path.join(ROOT, "tests/fixtures/compare-disk.rhai")
    healthy, slow = os.path.join(tmp, "healthy.json"), os.path.join(tmp, "slow.json")
    run(a.bin, disk, healthy)
    run(a.bin, disk, slow, [f"delay={a.slow}"])
    print(f"\ncompare-disk: fsync delayed by {a.slow} (a real regression)")
    for tol in a.tolerances.split(","):
        code, flagged, naive = compare(a.bin, healthy, slow, tol)
        p99 = "load.latency.p99" in flagged
        print(f"{tol:>9}  scen: exit {code}, {len(flagged)} figures regressed "
              f"(load.latency.p99: {'yes' if p99 else 'no'});  naive: {len(naive)} figures")


if __name__ == "__main__":
    main()

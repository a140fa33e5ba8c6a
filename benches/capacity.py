#!/usr/bin/env python3
"""etcd's capacity by scen's search, checked from outside, next to etcdctl check perf.

Starts one etcd on loopback, then, against it:
  1. scen run scenarios/capacity.rhai (the search) --runs times: the sustained rate of each run
     and their spread;
  2. a plain fixed-rate scen load of the same mix at the sustained rate (must hold the SLO) and at
     1.25 x the sustained rate (must not) -- the search's answer verified by an independent load;
  3. etcdctl check perf --load=m and l on the same etcd: PASS/FAIL for fixed profiles, which is
     all etcdctl can say.
Between runs the store is compacted and defragmented.

Usage: benches/capacity.py [--runs 3] [--scen target/release/scen] [--set budget=70s ...]
Takes about runs x budget + 2 x step + 130 s. Build: cargo build --release --bin scen.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchetcd import Etcd, reset  # noqa: E402


def scen(args, report, url, sets):
    cmd = [args.scen, "run", *report[0], "--endpoints", url, "--allow-maintenance", "--report", report[1], "-q"]
    for s in sets:
        cmd += ["--set", s]
    code = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).returncode
    return code, json.load(open(report[1]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scen", default=os.path.join(ROOT, "target/release/scen"))
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="parameter of scenarios/capacity.rhai (e.g. budget=2m)")
    ap.add_argument("--skip-etcdctl", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(args.scen):
        sys.exit(f"{args.scen} missing: run cargo build --release --bin scen")
    work = tempfile.mkdtemp(prefix="scen-capacity-")
    with Etcd(work) as url:
        rates, last = [], None
        for i in range(args.runs):
            reset(url)
            _, r = scen(args, (["scenarios/capacity.rhai"], f"{work}/cap{i}.json"), url, args.set)
            rec = r["steps"][0]["record"]
            rates.append(rec["sustained_rate"])
            last = rec
            print(f"search {i + 1}: sustained {rec['sustained_rate']}/s, failed {rec['failed_rate']}/s, "
                  f"limited by {rec['limited_by']}, {len(rec['trials'])} trials in {rec['duration_ms'] / 1e3:.0f}s",
                  file=sys.stderr)
        held = [x for x in rates if x]
        print(f"\ncapacity ({os.path.basename(args.scen)}, {args.runs} searches, SLO {last['slo']}):")
        print(f"  sustained rate per run   {', '.join(f'{x:,.0f}/s' if x else 'none' for x in rates)}")
        if len(held) > 1:
            spread = (max(held) - min(held)) / min(held)
            print(f"  spread                   {spread * 100:.1f}% (max - min) / min")
        if held:
            sustained = held[-1]
            # Verify from outside: the same mix at fixed rates, judged on the same SLO.
            params = {s.split("=", 1)[0]: s.split("=", 1)[1] for s in args.set}
            step = params.get("step_duration", "4s")
            for factor in (1.0, 1.25):
                reset(url)
                rate = sustained * factor
                fixture = f"{work}/fixed.rhai"
                put = int(params.get("put", 30))
                open(fixture, "w").write(
                    f'step("fixed", |p| etcd::stress(#{{ mix: #{{ put: {put}, range: {100 - put} }}, '
                    f'value_size: "{params.get("value_size", "1KiB")}", key_space: 10000, range_limit: 100, '
                    f'clients: 64, connections: 4, rate: {rate}, duration: "{step}" }}));\n')
                _, r = scen(args, ([fixture], f"{work}/fixed{factor}.json"), url, [])
                rec = r["steps"][0]["record"]
                print(f"  fixed load at {factor:.2f} x     {rate:,.0f}/s: achieved {rec['throughput']:,.0f}/s, "
                      f"p99 {rec['latency']['p99']:.1f} ms, shortfall {rec['shortfall'] * 100:.1f}%")
        if not args.skip_etcdctl:
            for load in ("m", "l"):
                reset(url)
                out = subprocess.run(["etcdctl", f"--endpoints={url}", "check", "perf", f"--load={load}"],
                                     capture_output=True, text=True).stdout
                lines = [l.strip() for l in out.splitlines() if l.strip()]
                verdict = lines[-1] if lines and lines[-1] in ("PASS", "FAIL") else "FAIL"
                tput = next((l for l in out.splitlines() if "Throughput" in l), "").strip()
                print(f"  etcdctl check perf {load}     {verdict} ({tput})")


if __name__ == "__main__":
    main()

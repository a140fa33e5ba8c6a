#!/usr/bin/env python3
"""10,000 objects through every lifecycle phase on the embedded etcd: objects/s and p99 per phase,
and scen's own peak memory.

Runs `scen run benches/lifecycle-10k.rhai` for pods (protobuf) and KubeVirt VMIs (JSON): 100
simulated nodes, each object created, scheduled, running, monitored for 5 s (a status update),
deleted through a finalizer, 64 writes in flight. Prints per phase the objects entering it per
second, the write p99 and the p99 of time since creation, and scen's own peak RSS (VmHWM of the scen
process, polled; wait4's ru_maxrss would count the embedded etcd, a reaped child). Target: scen
under 100 MB.

Usage: benches/lifecycle.py [--count 10000] [--kinds pod,vmi]
Build: cargo build --release --bin scen.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--kinds", default="pod,vmi")
    ap.add_argument("--scen", default=os.path.join(ROOT, "target/release/scen"))
    args = ap.parse_args()
    if not os.path.exists(args.scen):
        sys.exit(f"{args.scen} missing: run cargo build --release --bin scen")
    for kind in args.kinds.split(","):
        with tempfile.TemporaryDirectory() as work:
            report = os.path.join(work, "r.json")
            p = subprocess.Popen([args.scen, "run", "benches/lifecycle-10k.rhai", "-q", "--set", f"kind={kind}",
                                  "--set", f"count={args.count}", "--report", report],
                                 cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            hwm = 0
            while p.poll() is None:
                try:
                    for line in open(f"/proc/{p.pid}/status"):
                        if line.startswith("VmHWM:"):
                            hwm = max(hwm, int(line.split()[1]))
                except OSError:
                    pass
                time.sleep(0.1)
            err = p.stderr.read()
            status = p.returncode
            r = json.load(open(report))
            rec = next(s for s in r["steps"] if s["name"] == "lifecycle")["record"]
            print(f"\n{kind}: {args.count} objects, exit {status}, "
                  f"{rec.get('duration_ms', 0) / 1e3:.1f} s, scen peak RSS {hwm / 1024:.1f} MB"
                  f"{'' if status == 0 else ': ' + err.strip().splitlines()[-1]}")
            print(f"  {'phase':9} {'objects/s':>10} {'write p99':>10} {'since created p99':>18} {'errors':>7}")
            for ph in rec.get("phases_run", []):
                v = rec["phases"][ph]
                print(f"  {ph:9} {v['throughput']:10.0f} {v['latency']['p99'] or 0:8.2f}ms "
                      f"{(v['since_created']['p99'] or 0) / 1e3:16.2f}s {v['errors']:7}")


if __name__ == "__main__":
    main()

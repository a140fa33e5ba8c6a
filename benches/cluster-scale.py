#!/usr/bin/env python3
"""Cluster simulation at scale: objects/s, bytes, db size and scen's peak RSS; then heartbeats.

Runs scen with its embedded etcd (quota raised to 8 GiB), twice:
  1. simulate: 10,000 nodes and 300,000 pods (with their deployments, replicasets, leases):
     objects/s written, value bytes, etcd db size, scen's peak RSS;
  2. heartbeat: 10,000 nodes (and leases) kept alive for 60 s, leases every 10 s, status every
     1 min: intended vs achieved lease renewals/s, write p99, scen's peak RSS.
Peak RSS is the kernel's high-water mark (VmHWM) of the scen process, sampled until it exits.

Usage: benches/cluster-scale.py [--nodes 10000] [--pods 300000] [--heartbeat 60s] [--only simulate|heartbeat]
Build first: cargo build --release --bin scen. Takes about 2 + 2 minutes on 2 cores.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(scen, args, report):
    """Runs scen; returns (exit code, wall s, peak RSS MiB)."""
    t0 = time.time()
    p = subprocess.Popen([scen, "run", "benches/cluster-scale.rhai", "--etcd-quota", "8GiB",
                          "--report", report, "-q", *args], cwd=ROOT)
    peak = [0]

    def sample():
        while p.poll() is None:
            try:
                for line in open(f"/proc/{p.pid}/status"):
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.2)

    t = threading.Thread(target=sample)
    t.start()
    code = p.wait()
    t.join()
    return code, time.time() - t0, peak[0] / 1024


def step(report, name):
    return next(s for s in report["steps"] if s["name"] == name)["record"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=10000)
    ap.add_argument("--pods", type=int, default=300000)
    ap.add_argument("--heartbeat", default="60s")
    ap.add_argument("--only", choices=["simulate", "heartbeat"])
    ap.add_argument("--scen", default=os.path.join(ROOT, "target/release/scen"))
    args = ap.parse_args()
    if not os.path.exists(args.scen):
        sys.exit(f"{args.scen} missing: run cargo build --release --bin scen")
    work = tempfile.mkdtemp(prefix="scen-bench-")
    size = ["--set", f"nodes={args.nodes}", "--set", f"pods={args.pods}"]

    if args.only in (None, "simulate"):
        report = os.path.join(work, "simulate.json")
        code, wall, rss = run(args.scen, size, report)
        r = json.load(open(report))
        sim, status = step(r, "simulate"), step(r, "status")
        print(f"\nsimulate {args.nodes} nodes, {args.pods} pods (exit {code}, {wall:.0f} s wall)")
        print(f"  objects written   {sim['objects']:>12,}   ({sim['throughput']:,.0f} objects/s; target >= 5,000)")
        print(f"  value bytes       {sim['bytes']:>12,}   ({sim['bytes_per_s'] / 2**20:,.1f} MiB/s)")
        for kind, k in sorted(sim["by_kind"].items()):
            print(f"    {kind:12} {k['count']:>9,} x {k['avg_size']:>7,.0f} B  {k.get('encoding') or ''}")
        print(f"  txn p99           {sim['txn_latency']['p99']:>12.1f} ms")
        print(f"  etcd db size      {status['db_size'] / 2**20:>12,.0f} MiB (in use {status['db_size_in_use'] / 2**20:,.0f} MiB)")
        print(f"  scen peak RSS     {rss:>12,.0f} MiB")

    if args.only in (None, "heartbeat"):
        report = os.path.join(work, "heartbeat.json")
        code, wall, rss = run(args.scen, [*size, "--set", "simulate=false", "--set", f"heartbeat={args.heartbeat}"], report)
        r = json.load(open(report))
        hb = step(r, "heartbeat")
        l, s = hb["leases"], hb["node_status"]
        print(f"\nheartbeats for {args.nodes} nodes, {args.heartbeat} (exit {code}, {wall:.0f} s wall)")
        print(f"  lease renewals/s  {l['throughput']:>9,.0f} of {l['target_rate']:,.0f} intended "
              f"(shortfall {l['shortfall'] * 100:.1f}%, errors {l['errors']}, p99 {l['latency']['p99']:.1f} ms)")
        print(f"  node status/s     {s['throughput']:>9,.0f} of {s['target_rate']:,.0f} intended "
              f"(errors {s['errors']}, p99 {s['latency']['p99']:.1f} ms)")
        print(f"  scen peak RSS     {rss:>9,.0f} MiB (target < 200 MiB)")


if __name__ == "__main__":
    main()

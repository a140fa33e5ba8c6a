#!/usr/bin/env python3
"""What live metrics cost the load: scen's check-perf with and without `--out prometheus-rw`.

Starts one etcd and one Prometheus (remote-write receiver on) on loopback, then runs
`scen run scenarios/check-perf.rhai --set load=l` against the etcd, alternating without and with
`--out prometheus-rw=<prometheus>` (interleaved rounds: A B B A ..., so the machine's drift falls on
both sides). For each run it prints achieved writes/s, p99, and scen's CPU per request (wait4
rusage of the scen process: the load and the live output together); then the medians side by side
and the ratio. Samples pushed and dropped come from each report's `outputs`.

Usage: benches/live-overhead.py [--load l] [--duration 30] [--rounds 3] [--interval 5s]
Takes about 2 × rounds × (duration + 10) seconds. Build: cargo build --release --bin scen.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchetcd import Etcd, free_port, reset  # noqa: E402


class Prometheus:
    """A Prometheus with its remote-write receiver on, in `work`; stopped on exit."""

    def __init__(self, work):
        self.work, self.port = work, free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        cfg = os.path.join(self.work, "prometheus.yml")
        open(cfg, "w").write("global: { scrape_interval: 5s }\n")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={self.work}/prom",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-remote-write-receiver"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()


def run(scen, url, load, duration, report, extra):
    """One check-perf run; (record, outputs, client CPU s)."""
    cmd = [scen, "run", "scenarios/check-perf.rhai", "--endpoints", url, "--set", f"load={load}",
           "--set", f"duration={duration}s", "--report", report, "-q", *extra]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    _, _, ru = os.wait4(p.pid, 0)
    r = json.load(open(report))
    return r["steps"][0]["record"], r.get("outputs", []), ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--load", default="l")
    ap.add_argument("--duration", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--interval", default="5s", help="--out-interval")
    ap.add_argument("--scen", default=os.path.join(ROOT, "target/release/scen"))
    args = ap.parse_args()
    if not os.path.exists(args.scen):
        sys.exit(f"{args.scen} missing: run cargo build --release --bin scen")
    work = tempfile.mkdtemp(prefix="scen-bench-")
    etcd = Etcd(work)
    try:
        url = etcd.__enter__()
        with Prometheus(work) as prom:
            live = ["--out", f"prometheus-rw={prom.url}/api/v1/write", "--out-interval", args.interval,
                    "--out-label", "bench=live-overhead"]
            rows = []
            order = []
            for i in range(args.rounds):
                order += ["off", "on"] if i % 2 == 0 else ["on", "off"]
            for k, side in enumerate(order):
                reset(url)
                report = os.path.join(work, f"r{k}.json")
                rec, outs, cpu = run(args.scen, url, args.load, args.duration, report,
                                     live if side == "on" else [])
                cpu_us = cpu * 1e6 / max(rec["ok"], 1)
                sent = sum(o["sent_samples"] for o in outs)
                dropped = sum(o["dropped_samples"] for o in outs)
                rows.append((side, rec["throughput"], rec["latency"]["p99"], cpu_us, sent, dropped))
                print(f"run {k + 1:2}/{len(order)} live {side:3}: {rec['throughput']:7.0f} writes/s, "
                      f"p99 {rec['latency']['p99']:6.1f} ms, scen CPU/request {cpu_us:5.1f} us"
                      + (f", pushed {sent} samples, dropped {dropped}" if side == "on" else ""), flush=True)
        print(f"\ncheck-perf load={args.load}, {args.duration}s per run, {args.rounds} rounds, "
              f"--out-interval {args.interval} (medians)")
        print(f"{'live output':12} {'writes/s':>9} {'p99 ms':>8} {'scen CPU/request':>17}")
        med = {}
        for side in ("off", "on"):
            r = [x for x in rows if x[0] == side]
            med[side] = [statistics.median(x[i] for x in r) for i in (1, 2, 3)]
            print(f"{side:12} {med[side][0]:9.0f} {med[side][1]:8.1f} {med[side][2]:15.1f}us")
        print(f"\nCPU per request with --out: {med['on'][2] / med['off'][2]:.3f} x without "
              f"(limit 1.10); writes/s with --out: {med['on'][0]:.0f} (target 8,000 at load l)")
    finally:
        etcd.__exit__(None, None, None)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

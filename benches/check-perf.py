#!/usr/bin/env python3
"""scen vs etcdctl check perf, on one etcd, side by side.

Starts one etcd on loopback, then runs, one after the other against it:
  etcdctl check perf --load=m | l      and   scen run scenarios/check-perf.rhai --set load=m | l
and a closed-loop put load (64 clients, 256-byte values, benches/closed-loop.rhai).
For each run it prints achieved writes/s, p99 (scen only: etcdctl does not report it), slowest
request, and CPU per write of the client process (wait4 rusage) and of the etcd server (/proc).
Between runs the store is compacted and defragmented so every run starts alike.

Usage: benches/check-perf.py [--loads m,l] [--duration 60] [--skip-etcdctl] [--set transport=etcd-client]
                             [--baseline PATH-TO-AN-EARLIER-SCEN-BUILD]
With --baseline, an earlier build of scen runs each load too, right after this one on the same
etcd, and the table ends with the new build's ratios to it: a refactor of the load loop shows
that it costs nothing (or what it costs) in one run.
Takes about (2 × loads × duration + 30) seconds. Build: cargo build --release --bin scen.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchetcd import Etcd, reset  # noqa: E402
CLK = os.sysconf("SC_CLK_TCK")


def server_cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def run_measured(cmd, etcd_pid):
    """Runs cmd; returns (stdout+stderr, exit code, client CPU s, server CPU s, wall s)."""
    s0, t0 = server_cpu(etcd_pid), time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return out, p.returncode, ru.ru_utime + ru.ru_stime, server_cpu(etcd_pid) - s0, time.time() - t0


def parse_etcdctl(out, duration):
    num = lambda pat: float(m.group(1)) if (m := re.search(pat, out)) else float("nan")
    rate = num(r"Throughput (?:is|too low:) (\d+) writes/s")
    slowest = num(r"Slowest request took (?:too long: )?([\d.]+)s")
    stddev = num(r"Stddev (?:is|too high:) ([\d.]+)s")
    verdict = "PASS" if re.search(r"^PASS$", out, re.M) else "FAIL"
    return {"writes_s": rate, "p99_ms": None, "slowest_ms": slowest * 1e3, "stddev_ms": stddev * 1e3,
            "ops": rate * duration, "verdict": verdict}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loads", default="m,l")
    ap.add_argument("--duration", type=int, default=60, help="seconds per scen run (etcdctl's is fixed at 60)")
    ap.add_argument("--skip-etcdctl", action="store_true")
    ap.add_argument("--scen", default=os.path.join(ROOT, "target/release/scen"))
    ap.add_argument("--baseline", help="an earlier scen binary, run beside --scen on each load")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="extra parameter for both scen scenarios (e.g. transport=etcd-client)")
    args = ap.parse_args()
    if not os.path.exists(args.scen):
        sys.exit(f"{args.scen} missing: run cargo build --release --bin scen")

    extra = [a for kv in args.set for a in ("--set", kv)]
    work = tempfile.mkdtemp(prefix="scen-bench-")
    etcd = Etcd(work)
    try:
        url = etcd.__enter__()
        rows = []
        for load in args.loads.split(","):
            if not args.skip_etcdctl:
                reset(url)
                out, code, ccpu, scpu, _ = run_measured(["etcdctl", f"--endpoints={url}", "check", "perf", f"--load={load}"], etcd.pid)
                r = parse_etcdctl(out, 60)
                r.update(tool="etcdctl", load=load, client_cpu_us=ccpu * 1e6 / max(r["ops"], 1), server_cpu_us=scpu * 1e6 / max(r["ops"], 1))
                rows.append(r)
            builds = [("scen", args.scen)] + ([("scen@base", args.baseline)] if args.baseline else [])
            for tool, binary in builds:
                reset(url)
                report = os.path.join(work, f"{tool}-{load}.json")
                out, code, ccpu, scpu, _ = run_measured(
                    [binary, "run", "scenarios/check-perf.rhai", "--endpoints", url, "--set", f"load={load}",
                     "--set", f"duration={args.duration}s", "--report", report, "-q", *extra], etcd.pid)
                rec = json.load(open(report))["steps"][0]["record"]
                rows.append({"tool": tool, "load": load, "writes_s": rec["throughput"], "p99_ms": rec["latency"]["p99"],
                             "slowest_ms": rec["latency"]["max"], "stddev_ms": rec["latency"]["stddev"], "ops": rec["ok"],
                             "verdict": "PASS" if code == 0 else "FAIL",
                             "client_cpu_us": ccpu * 1e6 / max(rec["ok"], 1), "server_cpu_us": scpu * 1e6 / max(rec["ok"], 1)})

        reset(url)
        report = os.path.join(work, "closed.json")
        _, code, ccpu, scpu, _ = run_measured([args.scen, "run", "benches/closed-loop.rhai", "--endpoints", url,
                                               "--report", report, "-q", *extra], etcd.pid)
        rec = json.load(open(report))["steps"][0]["record"]

        print(f"\n{'tool':9} {'load':4} {'writes/s':>9} {'p99 ms':>8} {'slowest ms':>10} {'stddev ms':>9} "
              f"{'client CPU/put':>15} {'server CPU/put':>15} verdict")
        for r in rows:
            p99 = "n/a" if r["p99_ms"] is None else f"{r['p99_ms']:.1f}"
            print(f"{r['tool']:9} {r['load']:4} {r['writes_s']:9.0f} {p99:>8} {r['slowest_ms']:10.1f} {r['stddev_ms']:9.1f} "
                  f"{r['client_cpu_us']:13.1f}us {r['server_cpu_us']:13.1f}us {r['verdict']}")
        for load in args.loads.split(","):
            e = [r for r in rows if r["tool"] == "etcdctl" and r["load"] == load]
            s = [r for r in rows if r["tool"] == "scen" and r["load"] == load]
            if e and s:
                print(f"load {load}: scen client CPU per put = {s[0]['client_cpu_us'] / e[0]['client_cpu_us']:.2f} x etcdctl's")
            b = [r for r in rows if r["tool"] == "scen@base" and r["load"] == load]
            if b and s:
                print(f"load {load}: this build / the baseline: writes/s {s[0]['writes_s'] / b[0]['writes_s']:.3f}, "
                      f"client CPU per put {s[0]['client_cpu_us'] / b[0]['client_cpu_us']:.3f}")
        client_us, server_us = ccpu * 1e6 / rec["ok"], scpu * 1e6 / rec["ok"]
        print(f"\nclosed loop, 64 clients, 256 B values: {rec['throughput']:.0f} puts/s, p99 {rec['latency']['p99']:.1f} ms; "
              f"client CPU/put {client_us:.1f}us, server CPU/put {server_us:.1f}us, ratio {client_us / server_us:.2f}")
    finally:
        etcd.__exit__(None, None, None)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

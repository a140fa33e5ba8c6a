#!/usr/bin/env python3
"""scen beside etcd's own `benchmark` tool, on one etcd, interleaved.

Builds etcd's benchmark from its Go module at the installed etcd's version
(scripts/build-etcd-benchmark.sh, cached), starts one etcd on loopback, and runs each workload
with both tools, alternating which goes first, for --rounds rounds, compacting and defragmenting
before every run:

  put at 1, 64 and 1,000 clients     benchmark put --key-size 8 --val-size 256
  range, linearizable / serializable  benchmark range <key> --consistency l|s
  txn-put                             benchmark txn-put --txn-ops 1
  watch latency (10 watchers)         benchmark watch-latency --put-rate 100 (events/s, delay from a
                                      put's acknowledgement to each event, CPU per event)

scen runs benches/peers/etcd-benchmark.rhai with the same clients, connections, total and sizes.
Figures per tool: throughput (requests/s), p50 and p99 as each tool reports them, and client CPU
per request (the process's user + system time from wait4, over requests). The table gives the
medians over rounds and the ratios scen/benchmark. Targets: scen's throughput >= the
benchmark's at every point, scen's CPU per request <= 0.5x; the exit code is 1 when scen falls
behind one (2 when a tool could not run).

Usage: benches/peers/etcd-benchmark.py [--rounds 3] [--scale 1.0] [--scen target/release/scen]
Takes about rounds x 2 x (sum of the runs) ~ 4 min at scale 1. Build: cargo build --release --bin scen.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
from benchetcd import Etcd, etcdctl, reset  # noqa: E402

# name, benchmark arguments (after the globals), scen parameters, total at scale 1
POINTS = [
    ("put 1 client", 1, 1, ["put", "--key-size", "8", "--val-size", "256", "--key-space-size", "100000"],
     {"op": "put", "key_space": 100000}, 1500),
    ("put 64 clients", 64, 8, ["put", "--key-size", "8", "--val-size", "256", "--key-space-size", "100000"],
     {"op": "put", "key_space": 100000}, 20000),
    ("put 1000 clients", 1000, 100, ["put", "--key-size", "8", "--val-size", "256", "--key-space-size", "100000"],
     {"op": "put", "key_space": 100000}, 40000),
    ("range linearizable", 64, 8, ["range", "KEY", "--consistency", "l"],
     {"op": "get", "key_space": 1}, 30000),
    ("range serializable", 64, 8, ["range", "KEY", "--consistency", "s"],
     {"op": "get", "key_space": 1, "serializable": "true"}, 30000),
    ("txn-put", 64, 8, ["txn-put", "--txn-ops", "1", "--key-size", "8", "--val-size", "256", "--key-space-size", "100000"],
     {"op": "txn_mixed", "key_space": 100000, "txn_ops": 1}, 20000),
    # 10 watchers of one key, 100 puts/s: the delay from a put's acknowledgement to each event.
    ("watch latency", 10, 1, ["watch-latency", "--put-rate", "100", "--key-size", "32", "--val-size", "32"],
     {"op": "put", "key_space": 1, "value_size": 32, "rate": 100, "watchers": 10, "clients": 1}, 1000),
]
WATCH = "watch latency"


def measured(cmd):
    """Runs cmd; (output, exit code, client CPU seconds from wait4, wall seconds)."""
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    return out, os.waitstatus_to_exitcode(status), ru.ru_utime + ru.ru_stime, time.time() - t0


def parse_benchmark(out):
    num = lambda pat: float(m.group(1)) if (m := re.search(pat, out)) else None
    rate = num(r"Requests/sec:\s+([\d.]+)")
    p50 = num(r"\b50(?:\.0)?% in ([\d.]+) secs")
    p99 = num(r"\b99(?:\.0)?% in ([\d.]+) secs")
    return {"rate": rate, "p50": p50 and p50 * 1e3, "p99": p99 and p99 * 1e3}


def run_benchmark(bench, url, clients, conns, args, total):
    args = [a if a != "KEY" else "bench-key" for a in args]
    cmd = [bench, f"--endpoints={url}", f"--clients={clients}", f"--conns={conns}", *args, f"--total={total}"]
    out, code, cpu, wall = measured(cmd)
    if code != 0:
        raise SystemExit(f"benchmark failed ({code}): {' '.join(cmd)}\n{out[-2000:]}")
    f = parse_benchmark(out)
    # watch-latency reports one result per event: a put's total times its watchers.
    per = total * clients if args[0] == "watch-latency" else total
    f["cpu_per_req_us"] = cpu / per * 1e6
    return f


def run_scen(scen, url, clients, conns, params, total, work):
    report = os.path.join(work, "scen.json")
    params = {"clients": clients, "connections": conns, **params, "total": total}
    cmd = [scen, "run", os.path.join(HERE, "etcd-benchmark.rhai"), "--endpoints", url, "-q",
           "--report", report]
    for k, v in params.items():
        cmd += ["--set", f"{k}={v}"]
    out, code, cpu, wall = measured(cmd)
    if code != 0:
        raise SystemExit(f"scen failed ({code}): {' '.join(cmd)}\n{out[-2000:]}")
    r = json.load(open(report))
    load = next(s for s in r["steps"] if s["name"] == "load")["record"]
    if params.get("watchers"):
        w = load["watch"]
        return {"rate": w["received"] / (load["duration_ms"] / 1e3), "p50": w["delay"]["p50"],
                "p99": w["delay"]["p99"], "cpu_per_req_us": cpu / max(1, w["received"]) * 1e6}
    return {"rate": load["throughput"], "p50": load["latency"]["p50"], "p99": load["latency"]["p99"],
            "cpu_per_req_us": cpu / total * 1e6}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every point's total")
    ap.add_argument("--scen", default=os.path.join(ROOT, "target/release/scen"))
    ap.add_argument("--only", default="", help="comma-separated point names (default: all)")
    args = ap.parse_args()
    built = subprocess.run([os.path.join(ROOT, "scripts/build-etcd-benchmark.sh")], capture_output=True, text=True)
    if built.returncode != 0:
        print(built.stderr, file=sys.stderr)
        print("blocked: etcd's benchmark could not be built (see above)", file=sys.stderr)
        return 2
    bench = built.stdout.strip().splitlines()[-1]
    version = subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    points = [p for p in POINTS if not args.only or p[0] in args.only.split(",")]
    results = {p[0]: {"scen": [], "benchmark": []} for p in points}
    with tempfile.TemporaryDirectory(prefix="scen-peer-") as work, Etcd(work) as url:
        etcdctl(url, "put", "bench-key", "x" * 256)
        for rnd in range(args.rounds):
            for name, clients, conns, bargs, params, total in points:
                total = max(10, int(total * args.scale))
                order = ["benchmark", "scen"] if rnd % 2 == 0 else ["scen", "benchmark"]
                for tool in order:
                    reset(url)
                    if tool == "benchmark":
                        f = run_benchmark(bench, url, clients, conns, bargs, total)
                    else:
                        f = run_scen(args.scen, url, clients, conns, params, total, work)
                    results[name][tool].append(f)
                    print(f"round {rnd + 1} {name:<20} {tool:<9} {f['rate']:>9.0f}/s  p50 {f['p50']:.2f} ms  "
                          f"p99 {f['p99']:.2f} ms  cpu {f['cpu_per_req_us']:.1f} us/req", file=sys.stderr, flush=True)
    med = lambda rs, k: statistics.median(r[k] for r in rs if r[k] is not None)
    print(f"\nscen vs etcd's benchmark ({version}, benchmark built from go.etcd.io/etcd/v3@v{version.split()[-1]}), "
          f"{args.rounds} interleaved rounds, medians; one etcd on loopback\n")
    print(f"{'workload':<20} {'clients/conns':>13} | {'scen req/s':>10} {'bench req/s':>11} {'ratio':>6} | "
          f"{'scen p50/p99 ms':>16} {'bench p50/p99 ms':>17} | {'scen cpu':>8} {'bench cpu':>9} {'ratio':>6}")
    behind = []
    for name, clients, conns, *_ in points:
        s, b = results[name]["scen"], results[name]["benchmark"]
        sr, br = med(s, "rate"), med(b, "rate")
        sc, bc = med(s, "cpu_per_req_us"), med(b, "cpu_per_req_us")
        print(f"{name:<20} {f'{clients}/{conns}':>13} | {sr:>10.0f} {br:>11.0f} {sr / br:>5.2f}x | "
              f"{med(s, 'p50'):>7.2f}/{med(s, 'p99'):<8.2f} {med(b, 'p50'):>8.2f}/{med(b, 'p99'):<8.2f} | "
              f"{sc:>6.1f}us {bc:>7.1f}us {sc / bc:>5.2f}x")
        # A watch load's rate is its put rate on both sides: events/s is shown, not gated.
        if sr < br and name != WATCH:
            behind.append(f"{name}: throughput {sr:.0f}/s < {br:.0f}/s")
        if sc > 0.5 * bc:
            behind.append(f"{name}: CPU per request {sc:.1f} us > 0.5 x {bc:.1f} us")
    print("\ntargets: scen's throughput >= the benchmark's, scen's client CPU per request <= 0.5x")
    for b in behind:
        print(f"  behind: {b}")
    return 1 if behind else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""KWOK's controller beside cluster::heartbeat at 10,000 and 50,000 nodes, interleaved.

Builds KWOK (and the control plane it needs) from their Go modules (scripts/build-control-plane.sh:
kwok v0.8.0, kube v1.37.2, cached) and, for each node count and --rounds rounds, runs
benches/peers/kwok.rhai three ways, in an order that rotates each round:

  kwok       N nodes through the embedded control plane, KWOK's controller makes them Ready and
             renews their leases (every 10 s once Ready; the window starts after every node is);
  apiserver  the same nodes with KWOK off: cluster::heartbeat renews the leases through the same
             kube-apiserver, kubelet-style (a merge patch every 10 s);
  etcd       no control plane: the nodes straight into etcd in kube-apiserver's layout, and
             cluster::heartbeat renewing their leases there (a compare-and-swap every 10 s).

Figures per way: renewals/s held over the window (of N/10 s due), the renewer's CPU per renewal
(KWOK's process, or scen's, during the window) and the renewer's peak RSS over the run (sampled
each second from /proc). Renewals through the API server are counted by kube-apiserver
(apiserver_request_duration_seconds for leases, update + patch); into etcd by scen's record.
Targets: scen's CPU per renewal through the API server <= KWOK's, and scen holding at least
KWOK's renewals/s. Exits 1 when scen misses one, 2 when a tool could not be built.

Usage: benches/peers/kwok.py [--nodes 10000,50000] [--rounds 3] [--window 30s]
Build: cargo build --release --bin scen.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WAYS = ["kwok", "apiserver", "etcd"]


def descendants(pid):
    """pid and every process under it, with its command name."""
    out, todo = {}, [pid]
    while todo:
        p = todo.pop()
        try:
            out[p] = open(f"/proc/{p}/comm").read().strip()
            for t in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in open(f"/proc/{p}/task/{t}/children").read().split()]
        except OSError:
            pass
    return out


def rss(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None


class PeakRss(threading.Thread):
    """Samples the RSS of scen and its children each second: the peak per command name."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, {}, threading.Event()

    def run(self):
        while not self.stop.wait(1.0):
            for p, name in descendants(self.pid).items():
                v = rss(p)
                if v is not None:
                    self.peak[name] = max(self.peak.get(name, 0), v)


def run(scen, nodes, way, window, clients, work):
    report = os.path.join(work, f"{way}.json")
    if os.path.exists(report):
        os.remove(report)
    cmd = [scen, "run", os.path.join(HERE, "kwok.rhai"), "-q", "--report", report,
           "--set", f"nodes={nodes}", "--set", f"via={way}", "--set", f"window={window}",
           "--set", f"clients={clients}"]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sampler = PeakRss(p.pid)
    sampler.start()
    _, err = p.communicate()
    sampler.stop.set()
    if not os.path.exists(report):
        raise SystemExit(f"scen wrote no report (exit {p.returncode}): {err.strip()[-600:]}")
    r = json.load(open(report))
    if p.returncode != 0:
        raise SystemExit(f"scen exited {p.returncode} ({way}, {nodes} nodes): "
                         f"{(r.get('error') or {}).get('message', err.strip()[-600:])}")
    steps = {s["name"]: s for s in r["steps"]}
    lease = steps["leases"]
    secs = lease["duration_ms"] / 1e3
    if way == "etcd":
        rec = lease["record"]
        renewals = rec["leases"]["ok"]
        cpu_ms = rec["client_cpu_ms"]
        created_s = steps["nodes"]["duration_ms"] / 1e3
    else:
        api = lease["record"]["apiserver"]
        verbs = api["request_latency"].get("leases", {})
        # KWOK renews with an update (PUT), scen kubelet-style with a merge patch.
        renewals = sum(verbs.get(v, {}).get("count", 0) for v in ("update", "patch"))
        who = "kwok" if way == "kwok" else "scen"
        cpu_ms = api["processes"].get(who, {}).get("cpu")
        created_s = steps["nodes"]["duration_ms"] / 1e3
    renewer = "kwok" if way == "kwok" else "scen"
    return {"renewals": renewals, "rate": renewals / secs, "due": nodes / 10.0,
            "cpu_us": cpu_ms * 1e3 / renewals if cpu_ms is not None and renewals else None,
            "rss": sampler.peak.get(renewer), "apiserver_rss": sampler.peak.get("kube-apiserver"),
            "setup_s": created_s}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", default="10000,50000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--window", default="30s")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--ways", default=",".join(WAYS))
    ap.add_argument("--scen", default=os.path.join(ROOT, "target/release/scen"))
    args = ap.parse_args()
    if not os.path.exists(args.scen):
        sys.exit(f"{args.scen} missing: run cargo build --release --bin scen")
    built = subprocess.run([os.path.join(ROOT, "scripts/build-control-plane.sh")], capture_output=True, text=True)
    if built.returncode != 0:
        print(built.stderr[-3000:], file=sys.stderr)
        print("blocked: the control plane and KWOK could not be built (see above)", file=sys.stderr)
        return 2
    ways = args.ways.split(",")
    counts = [int(n) for n in args.nodes.split(",")]
    res = {(n, w): [] for n in counts for w in ways}
    with tempfile.TemporaryDirectory(prefix="scen-kwok-") as work:
        for rnd in range(args.rounds):
            for n in counts:
                order = ways[rnd % len(ways):] + ways[:rnd % len(ways)]
                for w in order:
                    t0 = time.time()
                    f = run(args.scen, n, w, args.window, args.clients, work)
                    res[(n, w)].append(f)
                    print(f"round {rnd + 1} {n:>6} nodes {w:<9} {f['rate']:8.1f} renewals/s of {f['due']:.0f} due, "
                          f"{f['cpu_us'] or 0:6.0f} us CPU/renewal, RSS {(f['rss'] or 0) / 2**20:5.0f} MiB "
                          f"(nodes created in {f['setup_s']:.0f} s; run {time.time() - t0:.0f} s)",
                          file=sys.stderr, flush=True)

    def med(rs, k):
        v = [r[k] for r in rs if r[k] is not None]
        return statistics.median(v) if v else None

    label = {"kwok": "KWOK controller (through kube-apiserver)",
             "apiserver": "scen cluster::heartbeat (through kube-apiserver)",
             "etcd": "scen cluster::heartbeat (straight into etcd)"}
    print(f"\nnode lease renewals over {args.window}: KWOK v0.8.0 vs scen, kube v1.37.2, embedded etcd, "
          f"{args.rounds} interleaved rounds, medians\n")
    print(f"{'nodes':>6}  {'who':<50} {'renewals/s':>10} {'of due':>7} {'CPU/renewal':>12} {'peak RSS':>9} "
          f"{'apiserver RSS':>14}")
    behind = []
    for n in counts:
        row = {}
        for w in ways:
            rs = res[(n, w)]
            row[w] = {k: med(rs, k) for k in ("rate", "due", "cpu_us", "rss", "apiserver_rss")}
            c = row[w]
            us = lambda v: "—" if v is None else f"{v:.0f} µs"
            mib = lambda v: "—" if v is None else f"{v / 2**20:.0f} MiB"
            print(f"{n:>6}  {label[w]:<50} {c['rate']:>10.1f} {c['due']:>7.0f} {us(c['cpu_us']):>12} "
                  f"{mib(c['rss']):>9} {mib(c['apiserver_rss']):>14}")
        if "kwok" in row and "apiserver" in row:
            k, s = row["kwok"], row["apiserver"]
            if k["cpu_us"] and s["cpu_us"]:
                print(f"{'':>6}  scen / KWOK CPU per renewal through the API server: {s['cpu_us'] / k['cpu_us']:.2f}x")
                if s["cpu_us"] > k["cpu_us"]:
                    behind.append(f"{n} nodes: scen's CPU per renewal {s['cpu_us']:.0f} µs > KWOK's {k['cpu_us']:.0f} µs")
            if s["rate"] < k["rate"]:
                behind.append(f"{n} nodes: scen held {s['rate']:.1f} renewals/s < KWOK's {k['rate']:.1f}")
    print("\ntargets: through the same API server, scen's CPU per renewal <= KWOK's and its renewals/s >= KWOK's")
    for b in behind:
        print(f"  behind: {b}")
    return 1 if behind else 0


if __name__ == "__main__":
    sys.exit(main())

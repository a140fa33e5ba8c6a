#!/usr/bin/env python3
"""The embedded control plane, measured: kube-apiserver, kube-scheduler, kube-controller-manager
and KWOK on scen's etcd (benches/control-plane.rhai).

Prints:
  - the time until every component was ready;
  - N KWOK nodes + M pods through the kube backend: objects/s created, time until all were bound
    by kube-scheduler and all Running by KWOK;
  - API latency of the pods' creates from scen's client and from the API server's own histogram,
    side by side (the server's p50/p99 are interpolated inside its buckets: the bucket is shown);
  - scen's own CPU per API call during the create step;
  - M VMIs through the API server (created, scheduled, running): objects/s and create p99;
  - node lease renewals over a window, by KWOK's controller (KWOK on) and by cluster::heartbeat
    through the same API server (KWOK off): renewals/s held and CPU per renewal of each.

Usage: benches/control-plane.py [--nodes 100] [--pods 1000] [--vmis 1000] [--lease-nodes 10000] [--window 30s]
Build: cargo build --release --bin scen; scripts/build-control-plane.sh.
Exits 1 when scen's CPU per lease renewal is above KWOK's (the heartbeat target).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(scen, sets):
    with tempfile.TemporaryDirectory() as work:
        report = os.path.join(work, "r.json")
        args = [scen, "run", "benches/control-plane.rhai", "-q", "--report", report]
        for k, v in sets.items():
            args += ["--set", f"{k}={v}"]
        p = subprocess.run(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if not os.path.exists(report):
            sys.exit(f"scen wrote no report (exit {p.returncode}): {p.stderr.strip()[-400:]}")
        r = json.load(open(report))
        if p.returncode != 0:
            print(f"  (exit {p.returncode}: {(r.get('error') or {}).get('message', '')[:300]})")
        return r


def step(r, name):
    return next(s for s in r["steps"] if s["name"] == name)


def bucket_of(dist, q):
    """The bucket (lower, upper] of a bucketed distribution holding quantile q."""
    b = dist.get("buckets") or []
    total = dist.get("count") or 0
    lo = 0.0
    for le, c in b:
        if c >= q * total:
            return lo, le
        lo = le if le is not None else lo
    return lo, None


def fmt_ms(v):
    return "—" if v is None else (f"{v:.1f} ms" if v < 1000 else f"{v / 1e3:.2f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--vmis", type=int, default=1000)
    ap.add_argument("--lease-nodes", type=int, default=10000)
    ap.add_argument("--window", default="30s")
    ap.add_argument("--scen", default=os.path.join(ROOT, "target/release/scen"))
    args = ap.parse_args()
    if not os.path.exists(args.scen):
        sys.exit(f"{args.scen} missing: run cargo build --release --bin scen")

    r = run(args.scen, {"nodes": args.nodes, "pods": args.pods, "vmis": args.vmis, "lease_window": "1s"})
    cp = r["control_plane"]
    print(f"control plane ready in {cp['startup_ms'] / 1e3:.2f} s: " + ", ".join(
        f"{c['component']} {c['ready_ms'] / 1e3:.2f} s" for c in cp["components"]))
    c = step(r, "create")["record"]
    pods = c.get("pods") or {}
    print(f"\n{args.nodes} nodes + {args.pods} pods through the kube backend")
    print(f"  created           {c['objects']} objects at {c['throughput']:.0f} objects/s (the step, waits included: {c['duration_ms'] / 1e3:.2f} s)")
    print(f"  all scheduled     {fmt_ms(pods.get('all_scheduled_ms'))} (kube-scheduler; per pod p99 {fmt_ms(pods.get('schedule_latency', {}).get('p99'))})")
    print(f"  all Running       {fmt_ms(pods.get('all_running_ms'))} (KWOK; pod startup p99 {fmt_ms(pods.get('startup_latency', {}).get('p99'))})")
    print(f"  all nodes Ready   {fmt_ms(c.get('nodes_ready_ms'))} (KWOK)")
    client = c["api"]["pods"]["create"]["latency"]
    server = c["apiserver"]["request_latency"]["pods"]["create"]
    print("\n  pod create latency    p50            p99            samples")
    print(f"  scen (client)         {fmt_ms(client['p50']):14} {fmt_ms(client['p99']):14} {client['count']}")
    lo50, hi50 = bucket_of(server, 0.5)
    lo99, hi99 = bucket_of(server, 0.99)
    print(f"  kube-apiserver        {fmt_ms(server['p50']):14} {fmt_ms(server['p99']):14} {server['count']}"
          f"   (buckets {fmt_ms(lo50)}–{fmt_ms(hi50)} and {fmt_ms(lo99)}–{fmt_ms(hi99)})")
    calls = sum(v["calls"] for verbs in c["api"].values() for v in verbs.values())
    scen_cpu = c["apiserver"]["processes"].get("scen", {}).get("cpu")
    if scen_cpu is not None and calls:
        print(f"  scen CPU per API call {scen_cpu * 1e3 / calls:.0f} µs ({calls} calls, {scen_cpu:.0f} ms CPU)")

    v = step(r, "vmis")["record"]
    if args.vmis and v.get("phases"):
        cr = v["phases"]["create"]
        srv = v["apiserver"]["request_latency"].get("virtualmachineinstances", {}).get("create", {})
        print(f"\n{args.vmis} VMIs through the API server (CRD registered by scen): {cr['throughput']:.0f} created/s, "
              f"create p99 {fmt_ms(cr['latency']['p99'])} (client, from the phase's start: waiting for one of 16 requests in flight included), "
              f"{fmt_ms(srv.get('p99'))} (kube-apiserver), "
              f"{v['errors']} errors")

    print(f"\n{args.lease_nodes} nodes' leases over {args.window}, through the same API server")
    print(f"  {'who':22} {'renewals':>9} {'renewals/s':>11} {'CPU/renewal':>12} {'RSS':>9}")
    per = {}
    for kwok in (True, False):
        r = run(args.scen, {"nodes": args.lease_nodes, "pods": 0, "vmis": 0, "kwok": str(kwok).lower(),
                            "lease_window": args.window, "clients": 64})
        s = step(r, "leases")
        api = s["record"]["apiserver"]
        # KWOK renews with an update (PUT), kubelet-style heartbeats with a merge patch.
        verbs = api["request_latency"].get("leases", {})
        updates = sum(verbs.get(v, {}).get("count", 0) for v in ("update", "patch"))
        secs = s["duration_ms"] / 1e3
        who = "kwok" if kwok else "scen"
        proc = api["processes"].get(who, {})
        cpu = proc.get("cpu")
        per[who] = (cpu / updates) if (cpu is not None and updates) else None
        label = "KWOK controller" if kwok else "scen cluster::heartbeat"
        ready = step(r, "create")["record"].get("nodes_ready_ms")
        if kwok:
            print(f"  (KWOK had every node Ready {fmt_ms(ready)} after the create began; the window starts after that)")
        print(f"  {label:22} {updates:9} {updates / secs:11.1f} "
              f"{'—' if per[who] is None else f'{per[who] * 1e3:.0f} µs':>12} {proc.get('rss_bytes', 0) / 2**20:7.0f} MiB")
    if per.get("scen") is not None and per.get("kwok") is not None:
        ratio = per["scen"] / per["kwok"]
        print(f"  scen / KWOK CPU per renewal: {ratio:.2f}x")
        if ratio > 1:
            sys.exit(1)


if __name__ == "__main__":
    main()

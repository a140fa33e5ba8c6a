#!/usr/bin/env python3
"""scen beside kube-burner, on the same embedded control plane, interleaved.

Builds kube-burner from its Go module (scripts/build-kube-burner.sh, one exact release, cached)
and runs kube-burner's own job files (benches/peers/kube-burner/{node-density,cluster-density}.yml)
and scen's kube backend on the same objects, read from those job files
(benches/peers/kube-burner.rhai), alternating which goes first, for --rounds rounds. Every run
gets a fresh control plane (kube-apiserver, kube-scheduler, kube-controller-manager and KWOK
v1.37.2/v0.8.0 from scripts/build-control-plane.sh) on a fresh etcd, with its KWOK nodes Ready
before the job starts:

  node-density     N pods on the KWOK nodes, until every one is Running
  cluster-density  per namespace: deployments (their pods made by the controllers), services,
                   configmaps and secrets, until every pod is Running

Figures per tool: objects/s created (scen's over its creates; kube-burner's between the first and
last create a `kubectl get -w` of each of its resources saw), time from the job's start until every pod was Running, pod
create p50/p99 as the tool reports it (kube-burner reports none of its own calls) and as
kube-apiserver's apiserver_request_duration_seconds says for that tool's calls (interpolated in
its buckets: the bucket is shown), and client CPU per object created (scen: its own process
during the step; kube-burner: its process from wait4). Targets: scen's objects/s >= kube-burner's,
its CPU per object <= kube-burner's, and scen's client p99 inside the span the API server's
histogram allows for it: not below the p99's bucket, not above the bucket's upper bound plus the
larger of what scen spends around a call (its client p50 minus the server's) and the spread of
its own p99 between rounds (its noise). Exits 1 when
scen misses a target, 2 when a tool could not run (kube-burner's module not served, say).

Usage: benches/peers/kube-burner.py [--rounds 3] [--jobs node-density,cluster-density] [--scale 1.0]
                                    [--kube-burner PATH (one built elsewhere)]
Build: cargo build --release --bin scen; scripts/build-control-plane.sh.
"""

import argparse
import glob
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
JOBS = os.path.join(HERE, "kube-burner")
NODES = 20


def job_shape(name, scale):
    """The objects kube-burner's job file makes, as scen's parameters."""
    cfg = yaml.safe_load(open(os.path.join(JOBS, f"{name}.yml")))
    job = cfg["jobs"][0]
    iterations = max(1, int(job["jobIterations"] * scale))
    shape = {"job": name, "namespaces": iterations if job.get("namespacedIterations") else 1,
             "pods": 0, "deployments": 0, "services": 0, "configmaps": 0, "secrets": 0}
    for o in job["objects"]:
        kind = yaml.safe_load(re.sub(r"\{\{[^}]*\}\}", "0", open(os.path.join(JOBS, o["objectTemplate"])).read()))["kind"]
        n = iterations * o.get("replicas", 1)
        if kind == "Pod":
            shape["pods"] += n
        elif kind == "Deployment":
            shape["deployments"] += n
            shape["pods"] += n * int((o.get("inputVars") or {}).get("podReplicas", 1))
        else:
            shape[{"Service": "services", "ConfigMap": "configmaps", "Secret": "secrets"}[kind]] += n
    # The objects the tool itself creates (the controllers make the deployments' pods; the
    # namespaces are left out on both sides).
    objects = shape["deployments"] + shape["services"] + shape["configmaps"] + shape["secrets"]
    shape["objects"] = objects + (0 if shape["deployments"] else shape["pods"])
    return shape, iterations


def scaled_job(name, iterations, work):
    """kube-burner's job file with jobIterations set to `iterations` (its templates stay where
    they are: kube-burner runs in their directory)."""
    cfg = yaml.safe_load(open(os.path.join(JOBS, f"{name}.yml")))
    cfg["jobs"][0]["jobIterations"] = iterations
    path = os.path.join(work, f"{name}.yml")
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return path


def bucket_quantile(buckets, q):
    """(interpolated value, lower, upper) of quantile q in cumulative [(le, count)] buckets (ms)."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None, None, None
    lo, below = 0.0, 0
    for le, c in buckets:
        if c >= q * total:
            if le is None or le == float("inf"):
                return lo, lo, None
            inside = c - below
            v = lo + (le - lo) * ((q * total - below) / inside if inside else 1.0)
            return v, lo, le
        lo, below = le, c
    return None, None, None


def fmt_ms(v):
    return "—" if v is None else (f"{v:.1f} ms" if v < 1000 else f"{v / 1e3:.2f} s")


def scen_run(scen, params, work, tmp):
    report = os.path.join(work, "scen.json")
    if os.path.exists(report):
        os.remove(report)
    cmd = [scen, "run", os.path.join(HERE, "kube-burner.rhai"), "-q", "--report", report]
    for k, v in params.items():
        cmd += ["--set", f"{k}={v}"]
    env = dict(os.environ, TMPDIR=tmp)
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), report


def run_scen(scen, shape, clients, work):
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        p, report = scen_run(scen, {**{k: v for k, v in shape.items() if k != "objects"}, "nodes": NODES,
                                    "clients": clients}, work, tmp)
        _, err = p.communicate()
    if not os.path.exists(report):
        raise SystemExit(f"scen wrote no report (exit {p.returncode}): {err.strip()[-600:]}")
    r = json.load(open(report))
    if p.returncode != 0:
        raise SystemExit(f"scen exited {p.returncode}: {(r.get('error') or {}).get('message', err.strip()[-600:])}")
    s = next(s for s in r["steps"] if s["name"] == "job")
    rec = s["record"]
    server = rec["apiserver"]["request_latency"].get("pods" if shape["job"] == "node-density" else "deployments", {}).get("create", {})
    sv = [(b[0], b[1]) for b in server.get("buckets") or []]
    if shape["job"] == "node-density":
        create = rec["phases"]["create"]
        objects, rate, client = create["count"], create["throughput"], create["latency"]
        running_ms = rec["phases"]["run"]["wall_ms"]
        running_ms = running_ms and running_ms + create["wall_ms"] + rec["phases"]["schedule"]["wall_ms"]
    else:
        objects = rec["objects"] - rec["by_kind"].get("namespace", {}).get("count", 0)
        rate = rec["throughput"] * objects / max(1, rec["objects"])  # the create window, namespaces left out
        client = rec["api"]["deployments"]["create"]["latency"]
        running_ms = (rec.get("pods") or {}).get("all_running_ms")
    cpu = rec["apiserver"]["processes"].get("scen", {}).get("cpu")
    return {"objects": objects, "rate": rate, "running_ms": running_ms, "p50": client["p50"], "p99": client["p99"],
            "server": sv, "cpu_per_obj_us": cpu * 1e3 / objects if cpu is not None and objects else None}


def scrape_histogram(kubectl, kubeconfig, resource):
    """kube-apiserver's cumulative create-latency buckets for `resource` ({le ms: count})."""
    out = subprocess.run([kubectl, "--kubeconfig", kubeconfig, "get", "--raw", "/metrics"], capture_output=True,
                         text=True, check=True).stdout
    b = {}
    for line in out.splitlines():
        if line.startswith("apiserver_request_duration_seconds_bucket{") and f'resource="{resource}"' in line \
                and 'verb="POST"' in line:
            le = re.search(r'le="([^"]+)"', line).group(1)
            key = float("inf") if le == "+Inf" else float(le) * 1e3
            b[key] = b.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return b


def shape_kinds(shape):
    """The resources kube-burner creates itself for the job."""
    if not shape["deployments"]:
        return ["pods"]
    return [k for k in ("deployments", "services", "configmaps", "secrets") if shape[k]]


class CreateWatch(threading.Thread):
    """`kubectl get -w` on one resource in every namespace: when each new object was first seen."""

    def __init__(self, kubectl, kubeconfig, resource):
        super().__init__(daemon=True)
        self.p = subprocess.Popen([kubectl, "--kubeconfig", kubeconfig, "get", resource, "-A", "-w",
                                   "--watch-only", "-o", "name"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.added, self.seen = set(), []
        self.start()

    def run(self):
        for line in self.p.stdout:
            # Every change prints the object's name; its first is its creation (--watch-only:
            # nothing from before the watch began).
            name = line.strip()
            if name and name not in self.added:
                self.added.add(name)
                self.seen.append(time.monotonic())

    def close(self):
        self.p.terminate()
        self.p.wait()
        self.join(timeout=5)
        return self.seen


def run_kube_burner(burner, scen, kubectl, shape, iterations, work):
    """kube-burner's job on a control plane scen holds up (job=hold): every figure from outside."""
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        p, _ = scen_run(scen, {"job": "hold", "nodes": NODES}, work, tmp)
        try:
            deadline = time.time() + 300
            kubeconfig = None
            while time.time() < deadline and p.poll() is None:
                found = glob.glob(os.path.join(tmp, "*", "kubeconfig"))
                if found:
                    kubeconfig = found[0]
                    # Ready nodes mean the nodes step ended and the hold began.
                    ready = subprocess.run([kubectl, "--kubeconfig", kubeconfig, "wait", "--for=condition=Ready",
                                            "nodes", "--all", "--timeout=5s"], capture_output=True, text=True)
                    nodes = subprocess.run([kubectl, "--kubeconfig", kubeconfig, "get", "nodes", "-o", "name"],
                                           capture_output=True, text=True).stdout.split()
                    if ready.returncode == 0 and len(nodes) >= NODES:
                        break
                time.sleep(1)
            else:
                raise SystemExit(f"no control plane with {NODES} Ready nodes from scen (exit {p.poll()})")
            resource = "pods" if shape["job"] == "node-density" else "deployments"
            before = scrape_histogram(kubectl, kubeconfig, resource)
            watches = [CreateWatch(kubectl, kubeconfig, kind) for kind in shape_kinds(shape)]
            cfg = scaled_job(shape["job"], iterations, work)
            t0 = time.time()
            kb = subprocess.Popen([burner, "init", "-c", cfg, "--kubeconfig", kubeconfig, "--uuid", "scen-peer"],
                                  cwd=JOBS, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            out = kb.stdout.read()
            _, status, ru = os.wait4(kb.pid, 0)
            wall = time.time() - t0
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"kube-burner failed: {out[-2000:]}")
            after = scrape_histogram(kubectl, kubeconfig, resource)
            seen = [t for w in watches for t in w.close()]
        finally:
            p.send_signal(signal.SIGINT)
            p.wait(timeout=120)
    les = sorted(after)
    sv = [(None if le == float("inf") else le, after[le] - before.get(le, 0)) for le in les]
    objects = shape["objects"]
    if len(seen) < objects:
        raise SystemExit(f"the watches saw {len(seen)} of kube-burner's {objects} objects created")
    # Objects/s over the creates as a watcher saw them arrive, as scen's own figure is over its creates.
    window = max(seen) - min(seen)
    rate = (objects - 1) / window if window > 0 else None
    return {"objects": objects, "rate": rate, "running_ms": wall * 1e3, "p50": None, "p99": None,
            "server": sv, "cpu_per_obj_us": (ru.ru_utime + ru.ru_stime) * 1e6 / objects}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--jobs", default="node-density,cluster-density")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies each job's jobIterations")
    ap.add_argument("--clients", type=int, default=16, help="scen's API calls in flight")
    ap.add_argument("--scen", default=os.path.join(ROOT, "target/release/scen"))
    ap.add_argument("--kube-burner", help="a kube-burner binary to use instead of building one")
    args = ap.parse_args()
    if not os.path.exists(args.scen):
        sys.exit(f"{args.scen} missing: run cargo build --release --bin scen")
    if args.kube_burner:
        burner = args.kube_burner
    else:
        built = subprocess.run([os.path.join(ROOT, "scripts/build-kube-burner.sh")], capture_output=True, text=True)
        burner = built.stdout.strip().splitlines()[-1] if built.returncode == 0 else None
    blocked = None
    if burner is None:
        print(built.stderr, file=sys.stderr)
        why = [l for l in built.stderr.splitlines() if l.startswith("go: ")]
        blocked = why[0][4:].split(": ", 1)[-1] if why else "see scripts/build-kube-burner.sh's output above"
        print(f"blocked: kube-burner could not be built ({blocked}); scen's side runs alone\n", file=sys.stderr)
    kubectl = subprocess.run(["sh", "-c", "command -v kubectl"], capture_output=True, text=True).stdout.strip()
    tools = ["scen"] + (["kube-burner"] if burner else [])
    jobs = args.jobs.split(",")
    results = {j: {t: [] for t in tools} for j in jobs}
    shapes = {j: job_shape(j, args.scale) for j in jobs}
    with tempfile.TemporaryDirectory(prefix="scen-peer-") as work:
        for rnd in range(args.rounds):
            for j in jobs:
                shape, iterations = shapes[j]
                for tool in (tools if rnd % 2 == 0 else tools[::-1]):
                    if tool == "scen":
                        f = run_scen(args.scen, shape, args.clients, work)
                    else:
                        f = run_kube_burner(burner, args.scen, kubectl, shape, iterations, work)
                    results[j][tool].append(f)
                    print(f"round {rnd + 1} {j:<16} {tool:<11} {f['objects']} objects {f['rate']:7.1f}/s  "
                          f"all Running {fmt_ms(f['running_ms'])}  client p99 {fmt_ms(f['p99'])}  "
                          f"cpu {f['cpu_per_obj_us'] or 0:.0f} us/object", file=sys.stderr, flush=True)

    def med(rs, k):
        v = [r[k] for r in rs if r[k] is not None]
        return statistics.median(v) if v else None

    def server_q(rs, q):
        """The server's quantile over every round's calls (buckets summed), with its bucket."""
        total = {}
        for r in rs:
            for le, c in r["server"]:
                total[le] = total.get(le, 0) + c
        return bucket_quantile(sorted(total.items(), key=lambda x: float("inf") if x[0] is None else x[0]), q)

    print(f"\nscen vs kube-burner on the embedded control plane (kube v1.37.2, KWOK v0.8.0, {NODES} KWOK nodes), "
          f"{args.rounds} interleaved rounds, medians\n")
    behind = []
    for j in jobs:
        shape, iterations = shapes[j]
        what = (f"{shape['pods']} pods" if j == "node-density" else
                f"{shape['namespaces']} namespaces: {shape['deployments']} deployments ({shape['pods']} pods), "
                f"{shape['services']} services, {shape['configmaps']} configmaps, {shape['secrets']} secrets")
        print(f"{j} ({iterations} iterations of {j}.yml: {what})")
        print(f"  {'tool':<12} {'objects/s':>9} {'all Running':>12} {'client p50/p99':>18} "
              f"{'kube-apiserver p50/p99 (p99 bucket)':>40} {'CPU/object':>11}")
        row = {}
        for tool in ["scen", "kube-burner"]:
            rs = results[j].get(tool)
            if not rs:
                print(f"  {tool:<12} {'—':>9} {'—':>12} {'—':>18} {'—':>40} {'—':>11}   (not run: {blocked})")
                continue
            s50, _, _ = server_q(rs, 0.5)
            s99, lo99, hi99 = server_q(rs, 0.99)
            row[tool] = {k: med(rs, k) for k in ("rate", "running_ms", "p50", "p99", "cpu_per_obj_us")}
            row[tool].update(s50=s50, s99=s99, lo99=lo99, hi99=hi99)
            c = row[tool]
            client = f"{fmt_ms(c['p50'])}/{fmt_ms(c['p99'])}" if c["p99"] is not None else "— (none reported)"
            print(f"  {tool:<12} {c['rate']:>9.1f} {fmt_ms(c['running_ms']):>12} {client:>18} "
                  f"{fmt_ms(s50) + '/' + fmt_ms(s99) + ' (' + fmt_ms(lo99) + '–' + fmt_ms(hi99) + ')':>40} "
                  f"{c['cpu_per_obj_us'] / 1e3:>8.2f} ms")
        s = row["scen"]
        # The client sees the server's time plus its own around the call (TLS, HTTP/1.1 pool,
        # scheduling on a shared 2-core box): at least the client p50 minus the server p50, and
        # its p99 moves between rounds by as much as the spread of those rounds (its noise).
        p99s = [r["p99"] for r in results[j]["scen"] if r["p99"] is not None]
        noise = max(p99s) - min(p99s) if len(p99s) > 1 else 0.0
        margin = max(0.0, (s["p50"] or 0) - (s["s50"] or 0), noise)
        print(f"  scen's client p99 by round: {', '.join(fmt_ms(v) for v in p99s)} (spread {fmt_ms(noise)}); "
              f"the server's p99 is known only to its bucket")
        if s["p99"] is not None and s["lo99"] is not None:
            upper = None if s["hi99"] is None else s["hi99"] + margin
            if s["p99"] < s["lo99"] or (upper is not None and s["p99"] > upper):
                behind.append(f"{j}: scen's client p99 {fmt_ms(s['p99'])} outside the server's "
                              f"{fmt_ms(s['lo99'])}–{fmt_ms(upper)} (its p99 bucket + {fmt_ms(margin)}: the "
                              f"client's own time or its noise between rounds)")
        if "kube-burner" in row:
            b = row["kube-burner"]
            if s["rate"] < b["rate"]:
                behind.append(f"{j}: {s['rate']:.1f} objects/s < kube-burner's {b['rate']:.1f}")
            if s["cpu_per_obj_us"] > b["cpu_per_obj_us"]:
                behind.append(f"{j}: CPU per object {s['cpu_per_obj_us']:.0f} us > kube-burner's {b['cpu_per_obj_us']:.0f}")
        print()
    print("targets: scen's objects/s >= kube-burner's, CPU per object <= kube-burner's, "
          "scen's client p99 within the API server's p99 bucket (plus the client's own margin)")
    for b in behind:
        print(f"  behind: {b}")
    if behind:
        return 1
    return 2 if blocked else 0


if __name__ == "__main__":
    sys.exit(main())

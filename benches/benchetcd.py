"""One etcd on loopback for a benchmark, and the etcdctl calls benchmarks share.

    from benchetcd import Etcd, etcdctl, reset
    with Etcd(workdir) as url:
        reset(url)            # compact to the current revision and defragment
"""

import json
import socket
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def etcdctl(url, *args, check=True):
    return subprocess.run(["etcdctl", f"--endpoints={url}", *args], capture_output=True, text=True,
                          check=check).stdout


def reset(url):
    """Compact to the current revision and defragment: each run starts from a small, clean store."""
    status = json.loads(etcdctl(url, "endpoint", "status", "-w", "json"))
    rev = status[0]["Status"]["header"]["revision"]
    etcdctl(url, "compact", str(rev), "--physical", check=False)
    etcdctl(url, "defrag", check=False)


class Etcd:
    """A one-member etcd in `work`, healthy on entry, stopped on exit; `pid` for CPU accounting."""

    def __init__(self, work):
        self.work = work
        c, p = free_port(), free_port()
        self.url = f"http://127.0.0.1:{c}"
        self.peer = f"http://127.0.0.1:{p}"

    def __enter__(self):
        self.proc = subprocess.Popen(
            ["etcd", "--name=bench", f"--data-dir={self.work}/data", f"--listen-client-urls={self.url}",
             f"--advertise-client-urls={self.url}", f"--listen-peer-urls={self.peer}",
             f"--initial-advertise-peer-urls={self.peer}", f"--initial-cluster=bench={self.peer}",
             "--log-level=warn"], stdout=subprocess.DEVNULL, stderr=open(f"{self.work}/etcd.log", "w"))
        self.pid = self.proc.pid
        for _ in range(100):
            if subprocess.run(["etcdctl", f"--endpoints={self.url}", "endpoint", "health"],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        return self.url

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()

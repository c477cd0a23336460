"""``python -m bench.http_scrape``: what one gateway node's HTTP port costs per request, on the lab.

Starts a node (its own cluster id, on a spare controller address of the lab) from this checkout and, with
``--against REV``, a second one from that git revision (exported to a temporary directory), waits until both are
ready, then in ``--rounds`` interleaved rounds times ``--requests`` sequential GETs of each path over a fresh
connection each (what Prometheus and the role's checks do). It reports per node and path the median and p99
latency and the node's own CPU time per request (user+sys from /proc, which a busy machine disturbs less than
latency). It makes no assertion.

    .venv/bin/python -m bench.http_scrape --against 4732720 --rounds 3 --requests 200
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from lab.state import LabState
from lab.gateway_process import REPO, GatewayNode

PATHS = ("/metrics", "/health/ready", "/cluster")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def time_path(node: GatewayNode, path: str, requests: int) -> tuple[list[float], float]:
    url = f"http://{node.address}:{node.http_port}{path}"
    samples = []
    cpu_before = cpu_seconds(node.process.pid)
    for _ in range(requests):
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=5) as response:
            response.read()
        samples.append((time.perf_counter() - start) * 1000)
    return samples, cpu_seconds(node.process.pid) - cpu_before


def start_node(lab: LabState, source: Path, address: str, port_start: int) -> GatewayNode:
    node = GatewayNode(lab, address, port_start, port_start + 90, Path(tempfile.mkdtemp(prefix="kgw-http-scrape-")),
                       source=source)  # the node runs `python -m gateway_app` there
    return node.start(timeout_s=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", metavar="REV", help="also run a node from this git revision, interleaved")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--port-start", type=int, default=17800)
    args = parser.parse_args()
    lab = LabState.load(int(os.environ.get("KGW_LAB_INSTANCE", "0")))
    sources = {"this checkout": REPO}
    if args.against:
        exported = Path(tempfile.mkdtemp(prefix="kgw-http-scrape-src-"))
        archive = subprocess.run(["git", "archive", args.against, "gateway_app"], cwd=REPO,
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(exported)], input=archive, check=True)
        sources[args.against] = exported
    nodes = {name: start_node(lab, source, lab.gateway_addresses[-1 - i], args.port_start + 100 * i)
             for i, (name, source) in enumerate(sources.items())}
    samples = {name: {path: [] for path in PATHS} for name in nodes}
    cpu = {name: {path: 0.0 for path in PATHS} for name in nodes}
    try:
        for node in nodes.values():  # warm up
            for path in PATHS:
                time_path(node, path, 5)
        for _ in range(args.rounds):
            for name, node in nodes.items():
                for path in PATHS:
                    latencies, seconds = time_path(node, path, args.requests)
                    samples[name][path] += latencies
                    cpu[name][path] += seconds
    finally:
        for node in nodes.values():
            node.stop()
    report = {}
    for name in nodes:
        report[name] = {}
        for path in PATHS:
            ordered = sorted(samples[name][path])
            report[name][path] = {"median_ms": round(statistics.median(ordered), 3),
                                  "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1], 3),
                                  "cpu_ms_per_request": round(1000 * cpu[name][path] / len(ordered), 3)}
    print(json.dumps({"load_average": os.getloadavg()[0], "requests_per_path": args.rounds * args.requests,
                      "nodes": report}, indent=1))


if __name__ == "__main__":
    main()

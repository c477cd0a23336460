"""``python -m bench.metadata_shapes``: where one gateway node's Metadata rate goes, beside a C relay's.

`python -m bench` finds one gateway node answering about 0.6 of a broker's Metadata rate, where HAProxy in front of
the same broker answers about 0.9. This asks why, on the lab, for a few load shapes (connections x requests
pipelined on each; 1x1 is one request at a time, bench.metadata_load's 4x16 the benchmark's): in interleaved rounds,
the broker alone, one gateway node in front of it and HAProxy in front of it, and for the two relays

* CPU per request (user+sys of the process from /proc, over the requests the load answered);
* context switches per request, summed over the process's threads: voluntary (it waited for the next bytes) and
  involuntary (it was preempted by the brokers and the clients that share the machine's cores);
* system calls per request, from ``strace -c -f`` attached for one more run of each shape (under strace, so not
  timed; the counts are what matter);
* with ``--perf``, the share of CPU samples in the kernel, in the interpreter (libpython) and elsewhere, from
  ``perf record`` over one more run of each shape.

Needs a lab (``python -m lab up``), HAProxy (``scripts/bootstrap`` installs it), strace, and perf for ``--perf``.
Runs in about three minutes with the defaults and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from lab.provenance import commit
from lab.state import LabState

from .__main__ import REPO, RELAY_ADDRESS_INDEX, cpu_seconds, gateway_node
from .reference_relay import haproxy_relay

SHAPES = ((1, 1), (4, 16), (32, 32))
PACKAGES = {"strace": "strace", "haproxy": "haproxy", "perf": "linux-perf"}
STRACE_LINE = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")
PERF_DSO_LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)")


def load(endpoint: str, connections: int, depth: int, seconds: float) -> subprocess.Popen:
    """bench.metadata_load in a process of its own, with this shape."""
    return subprocess.Popen([sys.executable, "-m", "bench.metadata_load", endpoint, str(seconds), str(connections),
                             str(depth)], cwd=REPO, stdout=subprocess.PIPE, text=True)


def answered(proc: subprocess.Popen, seconds: float) -> dict[str, float]:
    """What a load process printed (requests_per_s, requests); it must have ended well."""
    out, _ = proc.communicate(timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"bench.metadata_load exited {proc.returncode}")
    return json.loads(out)


def context_switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of every thread of `pid` so far."""
    voluntary = involuntary = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        voluntary += int(fields["voluntary_ctxt_switches"])
        involuntary += int(fields["nonvoluntary_ctxt_switches"])
    return voluntary, involuntary


def strace_counts(text: str) -> dict[str, int]:
    """Calls per system call from the summary table of ``strace -c`` (its 'total' row left out)."""
    counts = {}
    for line in text.splitlines():
        match = STRACE_LINE.match(line)
        if match and match.group(2) != "total":
            counts[match.group(2)] = int(match.group(1))
    return counts


def dso_shares(text: str) -> dict[str, float]:
    """Per cent of samples per binary from ``perf report --sort dso -g none``, folded into kernel, interpreter
    (libpython), event loop (uvloop), libc and other."""
    shares = {"kernel": 0.0, "interpreter": 0.0, "event loop": 0.0, "libc": 0.0, "other": 0.0}
    for line in text.splitlines():
        match = PERF_DSO_LINE.match(line)
        if not match:
            continue
        share, dso = float(match.group(1)), match.group(2)
        kind = ("kernel" if dso.startswith("[kernel") else "interpreter" if dso.startswith("libpython")
                else "event loop" if dso.startswith("loop.cpython") else "libc" if dso.startswith("libc") else "other")
        shares[kind] = round(shares[kind] + share, 2)
    return shares


@contextmanager
def attached(argv: list[str]):
    """A tracer attached for the block, stopped with SIGINT (strace and perf then write their summary)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # attached before the load starts
    result: dict[str, str] = {}
    try:
        yield result
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        result["stdout"], result["stderr"] = out, err


def measured(pid: int, endpoint: str, connections: int, depth: int, seconds: float) -> dict:
    """One timed run through the relay process `pid`: its rate, CPU and context switches per request."""
    cpu, switches = cpu_seconds(pid), context_switches(pid)
    done = answered(load(endpoint, connections, depth, seconds), seconds)
    requests = done["requests"]
    voluntary, involuntary = (after - before for before, after in zip(switches, context_switches(pid)))
    return {"rate": done["requests_per_s"], "cpu_us_per_request": 1e6 * (cpu_seconds(pid) - cpu) / requests,
            "voluntary_per_request": voluntary / requests, "involuntary_per_request": involuntary / requests}


def traced(pid: int, endpoint: str, connections: int, depth: int, seconds: float) -> dict[str, float]:
    """System calls per request of the relay process `pid` over one more run (strace -c -f)."""
    with attached(["strace", "-c", "-f", "-p", str(pid)]) as out:
        requests = answered(load(endpoint, connections, depth, seconds), seconds)["requests"]
    return {name: round(calls / requests, 2) for name, calls in strace_counts(out["stderr"]).items()
            if calls / requests >= 0.01}


def profiled(pid: int, endpoint: str, connections: int, depth: int, seconds: float) -> dict[str, float]:
    """Where the relay process's CPU samples fall over one more run (perf record, no call graphs)."""
    with tempfile.TemporaryDirectory(prefix="bench-shapes-") as tmp:
        data = f"{tmp}/perf.data"
        with attached(["perf", "record", "-q", "-F", "999", "-p", str(pid), "-o", data]):
            answered(load(endpoint, connections, depth, seconds), seconds)
        report = subprocess.run(["perf", "report", "-i", data, "--sort", "dso", "-g", "none", "--stdio"],
                                capture_output=True, text=True, check=True)
    return dso_shares(report.stdout)


def medians(runs: list[dict]) -> dict:
    return {key: round(statistics.median(run[key] for run in runs), 3) for key in runs[0]}


def run(lab: LabState, args: argparse.Namespace) -> dict:
    broker = lab.brokers[0]
    relay_address = lab.gateway_addresses[RELAY_ADDRESS_INDEX]
    results: dict = {"command": " ".join(["python -m bench.metadata_shapes", *sys.argv[1:]]), "commit": commit(),
                     "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rounds": args.rounds,
                     "seconds": args.seconds, "broker": broker.endpoint,
                     "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}, "shapes": []}
    with gateway_node(lab, {"GATEWAY_EVENT_LOOP": "uvloop"}) as (gateway_pid, gateway), \
            haproxy_relay(relay_address, broker.address, broker.port, 1, lab.layout.log_dir) as haproxy_pid:
        relays = {"gateway": (gateway_pid, gateway), "haproxy": (haproxy_pid, f"{relay_address}:{broker.port}")}
        for connections, depth in args.shapes:
            load_args = (connections, depth, args.seconds)
            broker_runs, relay_runs = [], {name: [] for name in relays}
            for _ in range(args.rounds):
                broker_runs.append(answered(load(broker.endpoint, *load_args), args.seconds)["requests_per_s"])
                for name, (pid, endpoint) in relays.items():
                    relay_runs[name].append(measured(pid, endpoint, *load_args))
            entry = {"connections": connections, "depth": depth, "broker_rate": broker_runs,
                     "broker_rate_median": round(statistics.median(broker_runs))}
            for name, (pid, endpoint) in relays.items():
                figures = medians(relay_runs[name])
                figures["of_broker"] = round(figures["rate"] / entry["broker_rate_median"], 3)
                figures["runs"] = relay_runs[name]
                figures["syscalls_per_request"] = traced(pid, endpoint, *load_args)
                if args.perf:
                    figures["cpu_samples_percent"] = profiled(pid, endpoint, *load_args)
                entry[name] = figures
            results["shapes"].append(entry)
            print(json.dumps({k: v for k, v in entry.items() if k != "broker_rate"}, default=str)[:600], flush=True)
    results["machine"]["loadavg_end"] = os.getloadavg()
    return results


def shape(text: str) -> tuple[int, int]:
    connections, _, depth = text.partition("x")
    try:
        value = int(connections), int(depth)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not CONNECTIONSxDEPTH") from None
    if not (1 <= value[0] <= 256 and 1 <= value[1] <= 256):
        raise argparse.ArgumentTypeError(f"{text!r}: connections and depth from 1 to 256")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metadata_shapes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", dest="shapes", type=shape, action="append", metavar="CxD",
                        help="connections x pipelined requests (repeatable; default 1x1, 4x16, 32x32)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per shape (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each run (default %(default)s)")
    parser.add_argument("--perf", action="store_true", help="also sample each relay with perf (kernel/interpreter)")
    parser.add_argument("--out", type=Path, default=REPO / "metadata-shapes.json")
    args = parser.parse_args()
    args.shapes = args.shapes or list(SHAPES)
    if not 1 <= args.rounds <= 20 or not 0.5 <= args.seconds <= 60:
        parser.error("--rounds from 1 to 20, --seconds from 0.5 to 60")
    for tool in ("strace", "haproxy", *(["perf"] if args.perf else [])):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (Debian: apt-get install {PACKAGES[tool]})")
    results = run(LabState.load(), args)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

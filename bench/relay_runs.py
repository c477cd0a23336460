"""What bench.fetch_relay and bench.produce_relay share: loopback benchmarks of one gateway node's relay, no lab.

Each runs its own module as three processes (``python -m MODULE --serve ROLE READY ARGS...``: a stand-in broker, a
gateway node's listener, and the measuring client in the parent), measures a fresh gateway per mode and round, and
reports the gateway's CPU per GB in each mode and the candidate mode's over the baseline's. The modules differ only
in what they send and serve.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def started(module: str, role: str, *args: str) -> tuple[subprocess.Popen, int]:
    """One of `module`'s serving processes (its --serve ROLE READY ARGS...), and the port it listens on."""
    ready = Path(f"/tmp/bench-{module.rsplit('.', 1)[-1].replace('_', '-')}-{os.getpid()}-{role}")
    ready.unlink(missing_ok=True)
    process = subprocess.Popen([sys.executable, "-m", module, "--serve", role, str(ready), *args], cwd=REPO)
    deadline = time.monotonic() + 30
    while not (ready.exists() and ready.read_text()):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(f"the {role} did not start")
        time.sleep(0.05)
    port = int(ready.read_text())
    ready.unlink()
    return process, port


def paired_runs(module: str, broker_port: int, modes: tuple[str, ...], rounds: int, warm: Callable[[int], object],
                run: Callable[[int], int]) -> dict[str, list[dict]]:
    """`rounds` rounds of a fresh gateway per mode (its --serve gateway BROKER_PORT MODE), warmed up (warm(port): its
    connection, first frames) and then measured: the gateway's CPU per GB of what run(port) says it relayed, and the
    rate."""
    runs: dict[str, list[dict]] = {mode: [] for mode in modes}
    for _ in range(rounds):
        for mode in modes:
            gateway, port = started(module, "gateway", str(broker_port), mode)
            try:
                warm(port)
                cpu, clock = cpu_seconds(gateway.pid), time.monotonic()
                relayed = run(port)
                cpu, clock = cpu_seconds(gateway.pid) - cpu, time.monotonic() - clock
            finally:
                gateway.kill()
                gateway.wait()
            runs[mode].append({"cpu_s_per_gb": cpu / (relayed / 1e9), "mb_s": relayed / clock / 1e6, "bytes": relayed})
    return runs


def provenance(module: str) -> dict:
    """When, from which commit and on how busy a machine a run started (its end's load is added after it)."""
    return {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([f"python -m {module}", *sys.argv[1:]]),
            "commit": subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True,
                                     text=True).stdout.strip(),
            "machine": {"cpus": os.cpu_count(), "loadavg_start": list(os.getloadavg())}}


def measured(module: str, broker_args: tuple[str, ...], modes: tuple[str, str], rounds: int,
             warm: Callable[[int], object], run: Callable[[int], int]) -> dict:
    """A whole run against a fresh stand-in broker: its provenance, every run of both modes (baseline, candidate),
    each mode's median CPU per GB and the candidate's over the baseline's (None when the baseline was too short to
    tick)."""
    result = provenance(module)
    broker, broker_port = started(module, "broker", *broker_args)
    try:
        runs = paired_runs(module, broker_port, modes, rounds, warm, run)
    finally:
        broker.kill()
        broker.wait()
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    medians = {mode: statistics.median(run["cpu_s_per_gb"] for run in rows) for mode, rows in runs.items()}
    baseline, candidate = modes
    return {**result, "runs": runs, "median_cpu_s_per_gb": medians,
            "splice_over_copy": medians[candidate] / medians[baseline] if medians[baseline] else None}


def parser(doc: str, modes: tuple[str, str]) -> argparse.ArgumentParser:
    """The options both benchmarks take; each adds its own sizes."""
    options = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    options.add_argument("--rounds", type=int, default=5, help="rounds of (%s, %s)" % modes)
    options.add_argument("--out", type=Path, help="write the figures to this JSON file")
    options.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)  # the broker and gateway processes
    return options


def run(options: argparse.ArgumentParser, serve: Callable[[str, Path, list[str]], None],
        measure: Callable[[argparse.Namespace], dict], headline: Callable[[argparse.Namespace], dict] = lambda _: {}) -> None:
    """A benchmark's main: in a serving process (--serve ROLE READY ARGS...) serve(ROLE, READY, ARGS); otherwise
    measure, write and print the result, the headline's figures first."""
    args = options.parse_args()
    if args.serve:
        role, ready, *rest = args.serve
        serve(role, Path(ready), rest)
        return
    report(measure(args), args.out, **headline(args))


def report(result: dict, out: Path | None, **headline: object) -> None:
    """Write the whole result to `out` (if given) and print the headline: the medians and the ratio."""
    if out:
        out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({**headline, "median_cpu_s_per_gb": result["median_cpu_s_per_gb"],
                      "splice_over_copy": result["splice_over_copy"]}))

"""The doctor's output: a table of hosts, the problems, one verdict line; or the same as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from .facts import HostFacts
from .inventory import Target
from .verdict import Problem

COLUMNS = ("HOST", "ROLE", "RACK", "UNIT", "RESTARTS", "VERSION", "READY", "MEMBERS", "EPOCH", "DIGEST", "BROKERS",
           "CLOCK ms", "PROBLEMS")


def row(target: Target, host: HostFacts, problems: int) -> tuple[str, ...]:
    f = host.facts
    if host.error:
        cells = ["unreachable"] + ["-"] * 9
    elif target.role == "gateway":
        cluster = f.get("cluster", {})
        reach = f.get("broker_reach", {})
        cells = [
            f.get("unit", {}).get("ActiveState", "?"), f.get("unit", {}).get("NRestarts", "?"),
            f.get("version") or "-",
            "yes" if f.get("ready", {}).get("status") == 200 else "NO",
            str(len(cluster.get("members", []))) if "error" not in cluster else "-",
            str(cluster.get("epoch", "-")), str(cluster.get("mapping_digest") or "-"),
            f"{sum(1 for r in reach.values() if r.get('ok'))}/{len(reach)}",
        ]
    else:
        servers = f.get("haproxy", {}).get("servers", [])
        up = sum(1 for s in servers if s["status"].startswith("UP"))
        cells = [f.get("unit", {}).get("ActiveState", "?"), f.get("unit", {}).get("NRestarts", "?"), "-",
                 f"{up}/{len(servers)} UP", "-", "-", "-", "-"]
    clock = f"{host.clock_offset_s * 1000:+.1f}" if host.clock_offset_s is not None else "-"
    return (target.name, target.role, target.rack or "-", *map(str, cells), clock, str(problems))


def verdict_line(targets: list[Target], problems: list[Problem], elapsed_s: float) -> str:
    gateways = sum(1 for t in targets if t.role == "gateway")
    lbs = len(targets) - gateways
    fleet = f"{gateways} gateway{'s' * (gateways != 1)}, {lbs} load balancer{'s' * (lbs != 1)}"
    if not problems:
        return f"HEALTHY: {fleet}, no problems ({elapsed_s:.1f} s)"
    hosts: dict[str, list[str]] = {}
    for p in problems:
        checks = hosts.setdefault(p.host, [])
        if p.check not in checks:
            checks.append(p.check)
    named = "; ".join(f"{h} ({', '.join(c)})" for h, c in hosts.items())
    return f"UNHEALTHY: {len(problems)} problem{'s' * (len(problems) != 1)} on {fleet}: {named} ({elapsed_s:.1f} s)"


def table(targets: list[Target], facts: list[HostFacts], problems: list[Problem], elapsed_s: float) -> str:
    by_name = {f.name: f for f in facts}
    counts: dict[str, int] = {}
    for p in problems:
        counts[p.host] = counts.get(p.host, 0) + 1
    rows = [COLUMNS] + [row(t, by_name[t.name], counts.get(t.name, 0)) for t in targets if t.name in by_name]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    if problems:
        lines += ["", "problems:"]
        width = max(len(p.host) for p in problems)
        lines += [f"  {p.host.ljust(width)}  {p.check}: {p.detail}" for p in problems]
    lines += ["", verdict_line(targets, problems, elapsed_s)]
    return "\n".join(lines)


def as_json(targets: list[Target], facts: list[HostFacts], problems: list[Problem], elapsed_s: float) -> str:
    by_name = {f.name: f for f in facts}
    hosts: list[dict[str, Any]] = []
    for t in targets:
        host = by_name.get(t.name)
        if host is None:
            continue
        hosts.append({"name": t.name, "role": t.role, "address": t.address, "rack": t.rack, "node_id": t.node_id,
                      "error": host.error, "elapsed_s": round(host.elapsed_s, 3),
                      "clock_offset_s": host.clock_offset_s, "clock_uncertainty_s": host.clock_uncertainty_s,
                      "facts": host.facts})
    return json.dumps({"healthy": not problems, "verdict": verdict_line(targets, problems, elapsed_s),
                       "elapsed_s": round(elapsed_s, 3), "hosts": hosts,
                       "problems": [asdict(p) for p in problems]}, indent=2, sort_keys=True)

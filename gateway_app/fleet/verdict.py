"""From collected facts to problems: pure functions, no I/O (unit-tested on their own).

Every problem names a host (or `fleet`) and the check that found it. Fleet-wide judgements compare hosts:
the installed version, each ready node's member list against the nodes that run and are ready, the mapping digest,
each broker's node and rack, clock offsets, and every load balancer's view of every gateway.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from .facts import HostFacts
from .inventory import Target
from .replica_selectors import RACK_AWARE_SELECTOR, SELECTOR_CONFIG

FLEET = "fleet"


@dataclass(frozen=True)
class Problem:
    host: str
    check: str
    detail: str


@dataclass(frozen=True)
class Limits:
    max_restarts: int = 0
    max_clock_offset_s: float = 0.5
    env_owner: str = "root"
    env_mode: str = "0640"


def judge(targets: list[Target], facts: list[HostFacts], limits: Limits = Limits()) -> list[Problem]:
    by_name = {f.name: f for f in facts}
    gateways = [(t, by_name[t.name]) for t in targets if t.role == "gateway" and t.name in by_name]
    lbs = [(t, by_name[t.name]) for t in targets if t.role == "lb" and t.name in by_name]
    problems: list[Problem] = []
    for target, host in gateways:
        problems += gateway_problems(target, host, limits)
    if load_balancers_in_use(gateways):
        for target, host in lbs:
            problems += lb_problems(target, host, [t for t, _ in gateways])
    problems += version_problems(gateways)
    problems += membership_problems(gateways)
    problems += mapping_problems(gateways)
    problems += clock_problems(facts, limits)
    problems += selector_problems(gateways)
    return problems


# --- one host at a time -----------------------------------------------------------------------------------------

def unit_problems(host: str, unit: str, state: dict[str, Any], limits: Limits) -> list[Problem]:
    if "error" in state:
        return [Problem(host, "unit", f"{unit}: {state['error']}")]
    problems = []
    if state.get("ActiveState") != "active":
        problems.append(Problem(host, "unit", f"{unit} is {state.get('ActiveState')} ({state.get('SubState')})"))
    if state.get("UnitFileState") != "enabled":
        problems.append(Problem(host, "unit", f"{unit} is {state.get('UnitFileState') or 'not installed'}, not enabled"))
    restarts = int(state.get("NRestarts") or 0)
    if restarts > limits.max_restarts:
        problems.append(Problem(host, "restarts", f"systemd restarted {unit} {restarts} times since it was started"))
    return problems


def gateway_problems(target: Target, host: HostFacts, limits: Limits) -> list[Problem]:
    if host.error:
        return [Problem(target.name, "ssh", host.error)]
    f, name = host.facts, target.name
    problems = unit_problems(name, target.probe_args.get("unit", "kafka-gateway"), f.get("unit", {}), limits)
    if not f.get("version"):
        problems.append(Problem(name, "version", f"no kafka-gateway installed in {target.probe_args.get('venv')}"))
    problems += ready_problems(name, f.get("ready", {}))
    problems += env_file_problems(target, f.get("env_file", {}), limits)
    if "error" in f.get("cluster", {}):
        problems.append(Problem(name, "cluster", f"/cluster: {f['cluster']['error']}"))
    reach = f.get("broker_reach") or {}
    if not reach:
        problems.append(Problem(name, "brokers", "no backing broker known (neither /cluster nor the env file names one)"))
    for endpoint, outcome in sorted(reach.items()):
        if not outcome.get("ok"):
            problems.append(Problem(name, "brokers", f"cannot reach broker {endpoint}: {outcome.get('error')}"))
    return problems


def ready_problems(host: str, ready: dict[str, Any]) -> list[Problem]:
    if "error" in ready:
        return [Problem(host, "ready", f"/health/ready: {ready['error']}")]
    if ready.get("status") == 200:
        return []
    checks = ((ready.get("body") or {}).get("checks") or {}).items()
    failing = [f"{check}: {result.get('detail')}" for check, result in sorted(checks) if not result.get("ok")]
    return [Problem(host, "ready", f"not ready (HTTP {ready.get('status')})" + (": " + "; ".join(failing) if failing else ""))]


def env_file_problems(target: Target, env: dict[str, Any], limits: Limits) -> list[Problem]:
    name, path = target.name, target.probe_args.get("env_file")
    if "error" in env and "mode" not in env:
        return [Problem(name, "env-file", f"{path}: {env['error']}")]
    problems = []
    group = target.probe_args.get("group", "kafka-gateway")
    if (env.get("owner"), env.get("group"), env.get("mode")) != (limits.env_owner, group, limits.env_mode):
        problems.append(Problem(name, "env-file", f"{path} is {env.get('owner')}:{env.get('group')} {env.get('mode')}, "
                                                  f"expected {limits.env_owner}:{group} {limits.env_mode}"))
    rack = (env.get("values") or {}).get("GATEWAY_RACK_ID")
    if target.rack is not None and rack != target.rack:
        problems.append(Problem(name, "rack", f"GATEWAY_RACK_ID={rack} in {path}, the inventory says {target.rack}"))
    return problems


def lb_problems(target: Target, host: HostFacts, gateways: list[Target]) -> list[Problem]:
    if host.error:
        return [Problem(target.name, "ssh", host.error)]
    name = target.name
    problems = unit_problems(name, "haproxy", host.facts.get("unit", {}), Limits(max_restarts=1 << 30))
    stats = host.facts.get("haproxy", {})
    if "error" in stats:
        return problems + [Problem(name, "haproxy", f"stats socket: {stats['error']}")]
    servers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in stats.get("servers", []):
        servers[row["server"]].append(row)
    for gateway in gateways:
        if gateway.name not in servers:
            problems.append(Problem(name, "haproxy", f"no HAProxy server for gateway {gateway.name}"))
    for server, rows in sorted(servers.items()):
        bad = [r for r in rows if not r["status"].startswith("UP")]
        if bad:
            first = bad[0]
            why = " ".join(x for x in (first.get("check"), first.get("check_desc")) if x)
            problems.append(Problem(name, "haproxy", f"server {server} is {first['status']} in {len(bad)} of "
                                                     f"{len(rows)} backends" + (f" ({why})" if why else "")))
    return problems


# --- across hosts -----------------------------------------------------------------------------------------------

def cluster_of(host: HostFacts) -> dict[str, Any] | None:
    cluster = host.facts.get("cluster") if not host.error else None
    return cluster if cluster and "error" not in cluster else None


def is_ready(host: HostFacts) -> bool:
    return not host.error and host.facts.get("ready", {}).get("status") == 200


def is_running(host: HostFacts) -> bool:
    return not host.error and host.facts.get("unit", {}).get("ActiveState") == "active"


def load_balancers_in_use(gateways: list[tuple[Target, HostFacts]]) -> bool:
    """HAProxy fronts the gateways only when their internal load balancing is off (deploy.yml skips it otherwise)."""
    modes = {c.get("mode") for _, h in gateways if (c := cluster_of(h))}
    return not modes or modes != {"internal"}


def version_problems(gateways: list[tuple[Target, HostFacts]]) -> list[Problem]:
    versions = {t.name: h.facts["version"] for t, h in gateways if not h.error and h.facts.get("version")}
    counts = Counter(versions.values())
    if len(counts) < 2:
        return []
    common, _ = counts.most_common(1)[0]
    others = sorted(n for n, v in versions.items() if v == common)
    return [Problem(n, "version", f"runs kafka-gateway {v}; {', '.join(others)} run {common}")
            for n, v in sorted(versions.items()) if v != common]


def membership_problems(gateways: list[tuple[Target, HostFacts]]) -> list[Problem]:
    """Each ready node must list every running-and-ready node, and no node that is stopped or not in the inventory.
    (A node that runs but is not ready may or may not be listed: it is reported on its own.)"""
    inventory = {t.node_id for t, _ in gateways}
    healthy = {t.node_id for t, h in gateways if is_running(h) and is_ready(h)}
    stopped = {t.node_id for t, h in gateways if not h.error and not is_running(h)}
    problems = []
    for target, host in gateways:
        cluster = cluster_of(host)
        if not cluster or not is_ready(host):
            continue
        seen = {str(m["node_id"]) for m in cluster.get("members", [])}
        for what, nodes in (("misses running node", healthy - seen), ("lists stopped node", seen & stopped),
                            ("lists node not in the inventory", seen - inventory)):
            if nodes:
                problems.append(Problem(target.name, "members", f"{what}{'s' if len(nodes) > 1 else ''} "
                                                                f"{', '.join(sorted(nodes))}"))
    return problems


def mapping_problems(gateways: list[tuple[Target, HostFacts]]) -> list[Problem]:
    views = {t.name: c for t, h in gateways if (c := cluster_of(h)) and is_ready(h) and c.get("mode") == "internal"}
    problems = []
    digests = Counter(v.get("mapping_digest") for v in views.values())
    if len(digests) > 1:
        common, _ = digests.most_common(1)[0]
        for name, view in sorted(views.items()):
            if view.get("mapping_digest") != common:
                problems.append(Problem(name, "mapping", f"mapping digest {view.get('mapping_digest')} "
                                                         f"(epoch {view.get('epoch')}); the others have {common}"))
    for name, view in sorted(views.items()):
        problems += [Problem(name, "mapping", detail) for detail in mapping_defects(view)]
    return problems


def mapping_defects(view: dict[str, Any]) -> list[str]:
    """Every broker has a node that is a member, in the broker's rack when that rack has a member."""
    racks = {str(m["node_id"]): m.get("rack") for m in view.get("members", [])}
    member_racks = set(racks.values())
    brokers = {b: e.get("rack") for b, e in (view.get("brokers") or {}).items()}
    for broker, entry in (view.get("mapping") or {}).items():
        brokers.setdefault(broker, entry.get("rack"))
    defects = []
    for broker, rack in sorted(brokers.items(), key=lambda item: int(item[0])):
        entry = (view.get("mapping") or {}).get(broker) or {}
        node = entry.get("node_id")
        if entry.get("error") or not node:
            defects.append(f"broker {broker} has no node" + (f": {entry['error']}" if entry.get("error") else ""))
        elif str(node) not in racks:
            defects.append(f"broker {broker} is mapped to {node}, which is not a member")
        elif rack in member_racks and racks[str(node)] != rack:
            defects.append(f"broker {broker} (rack {rack}) is mapped to {node} in rack {racks[str(node)]}, "
                           f"though rack {rack} has a gateway")
    return defects


def clock_problems(facts: list[HostFacts], limits: Limits) -> list[Problem]:
    offsets = {f.name: f for f in facts if f.clock_offset_s is not None}
    if len(offsets) < 2:
        return []
    median = statistics.median(f.clock_offset_s for f in offsets.values())
    problems = []
    for name, f in sorted(offsets.items()):
        apart = f.clock_offset_s - median
        if abs(apart) > limits.max_clock_offset_s + (f.clock_uncertainty_s or 0.0):
            problems.append(Problem(name, "clock", f"clock {apart:+.3f} s from the fleet's median "
                                                   f"(limit {limits.max_clock_offset_s:g} s)"))
    return problems


def selector_problems(gateways: list[tuple[Target, HostFacts]]) -> list[Problem]:
    """With client networks configured, every broker needs RackAwareReplicaSelector: without it the rack the gateway
    gives a consumer's Fetch names no preferred replica, and consumers keep reading from leaders in other racks.
    Each broker is named once for the fleet; a node that could not ask is named itself."""
    problems, lacking = [], {}
    for target, host in gateways:
        selectors = None if host.error else host.facts.get("replica_selectors")
        if not selectors:
            continue
        if "error" in selectors:
            problems.append(Problem(target.name, "replica-selector", f"cannot read the brokers' {SELECTOR_CONFIG}: "
                                                                     f"{selectors['error']}"))
            continue
        for broker, selector in (selectors.get("brokers") or {}).items():
            if selector != RACK_AWARE_SELECTOR:
                lacking[broker] = selector
    for broker, selector in sorted(lacking.items(), key=lambda item: int(item[0])):
        problems.append(Problem(FLEET, "replica-selector", f"broker {broker} has {SELECTOR_CONFIG}="
                                f"{selector or '(unset: the leader serves every fetch)'}; GATEWAY_CLIENT_RACK_NETWORKS "
                                f"is configured, so set {SELECTOR_CONFIG}={RACK_AWARE_SELECTOR} (and broker.rack) "
                                "for consumers to read in their own rack"))
    return problems

"""``python -m bench``: the same workloads direct to the lab's brokers and through one gateway node, interleaved.

Each workload runs as pairs A B A B … (A direct, B through the gateway) so that drift of this shared machine hits
both sides alike; the report gives the median of each side and the ratio of medians. With ``--aa-control`` every
throughput workload is also paired direct against direct, which shows the spread of ratios when nothing differs.
Figures:

* produce MB/s, ProducerPerformance, 1 KiB records, acks=all, unlimited rate: default batching,
  batch.size=131072 linger.ms=1, and 1 KiB requests (batch.size=1024 linger.ms=0: one record a request,
  a twentieth of the records);
* consume MB/s, ConsumerPerformance (fetch MB/s, the group join left out);
* produce latency p50/p99 at a fixed rate of half the direct default-batching maximum, and what the gateway adds:
  from ProducerPerformance (whose percentiles include its own start-up) and in steady state from
  ``bench.latency`` (librdkafka, a warm-up left out, p50/p99/p99.9);
* end-to-end latency (average, p99) from Kafka's own EndToEndLatency: one 1 KiB record at a time, acks=all,
  produced and read back, direct and through the gateway;
* gateway CPU seconds per GB relayed, per workload: user+sys of the gateway process from /proc over the bytes
  its own counters (gateway_bytes_total, both directions) say it relayed, with the mean Produce request size;
* Metadata requests per second the gateway answers, and per CPU-second of its one event-loop core, beside a
  broker's figure;
* with ``--reference-relay``, a third leg in every throughput pair: HAProxy (TCP mode, C, no Kafka parsing) in
  front of a second gateway node, with HAProxy's CPU per GB and the chain's throughput against the gateway alone —
  what one hop costs on this machine when it is not Python (see bench/reference_relay.py); the same chain is a
  third leg of the steady-state and end-to-end latency pairs (what the C hop adds on top of the gateway), and
  Metadata gets a third leg through HAProxy straight in front of the broker (what a C hop leaves of a broker's
  rate, the yardstick of the gateway's own ratio).

A tool run that did not do what it was asked (failed sends, fewer records read than asked, a latency run with
delivery errors or undelivered records) is rejected and stops the benchmark (bench.perf_tools.RejectedRun):
its figures are never averaged in. ``--workload`` runs some workloads only (for development); ``--profile DIR``
adds one unmeasured run per workload through the gateway under py-spy and writes its flame graph to
DIR/WORKLOAD.svg (bench/flame_graph.py); ``--gateway-source`` runs the gateways from another checkout.

Clients run in the controller's namespace (the only place that reaches both the brokers and the gateway), the
gateway on a lab address of the controller. Results go to a JSON file; the README's table is copied from it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from lab.gateway_process import GatewayNode, unique
from lab.provenance import commit
from lab.state import LabState

from . import perf_tools
from .flame_graph import flame_graph
from .latency import accepted
from .reference_relay import haproxy_relay
from .topics import BenchTopics

REPO = Path(__file__).resolve().parent.parent
GATEWAY_ADDRESS_INDEX = -1  # the last spare controller address; tests use the first ones
RELAYED_GATEWAY_ADDRESS_INDEX = -2  # the gateway behind the reference relay
RELAY_ADDRESS_INDEX = -3  # HAProxy, and the address that gateway advertises
GATEWAY_PORT_COUNT = 10  # the gateway's default: bootstrap plus broker ids 1..9
PORT_START = 6969
HTTP_PORT = 8888
TICKS = os.sysconf("SC_CLK_TCK")
WORKLOADS = ("produce_default", "produce_batched", "produce_1k_requests", "consume", "latency", "metadata")


@contextmanager
def gateway_node(lab: LabState, extra_env: dict[str, str], address: str | None = None, advertised: str | None = None,
                 source: Path = REPO):
    """One gateway node, a cluster of its own, on `address` (default: the benchmark's), run from the checkout
    `source`; yields (PID, bootstrap)."""
    address = address or lab.gateway_addresses[GATEWAY_ADDRESS_INDEX]
    env = {"GATEWAY_ADVERTISED_HOST": advertised or address, "GATEWAY_PORT_COUNT": str(GATEWAY_PORT_COUNT),
           "GATEWAY_CLUSTER_ID": unique("bench"), "GATEWAY_NODE_ID": f"bench-{address}", "GATEWAY_LOG_LEVEL": "warning",
           **extra_env}  # the caller's settings win (bench.fuzz names its own cluster)
    node = GatewayNode(lab, address, PORT_START, HTTP_PORT, lab.layout.log_dir, log_name=f"bench-gateway-{address}.log",
                       source=source, **env)
    node.start(timeout_s=60)
    try:
        yield node.process.pid, node.bootstrap
    finally:
        node.stop(timeout_s=60)


def relayed(address: str) -> dict[str, float]:
    """The gateway's byte and request counters: total bytes both directions, Produce requests and bytes."""
    with urllib.request.urlopen(f"http://{address}:{HTTP_PORT}/metrics", timeout=5) as response:
        text = response.read().decode()
    out = {"bytes": 0.0, "produce_requests": 0.0, "produce_request_bytes": 0.0}
    for line in text.splitlines():
        if line.startswith("gateway_bytes_total{"):
            out["bytes"] += float(line.rsplit(" ", 1)[1])
            if 'api="produce",direction="request"' in line:
                out["produce_request_bytes"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith('gateway_requests_total{api="produce"}'):
            out["produce_requests"] = float(line.rsplit(" ", 1)[1])
    return out


class CpuMeter:
    """CPU seconds of one process (a gateway, or the reference relay) and the bytes a gateway relayed meanwhile."""

    def __init__(self, pid: int, address: str) -> None:
        self.pid, self.address = pid, address
        self.seconds = 0.0
        self.counts = {"bytes": 0.0, "produce_requests": 0.0, "produce_request_bytes": 0.0}

    def measure(self, run):
        before, counts = cpu_seconds(self.pid), relayed(self.address)
        result = run()
        self.seconds += cpu_seconds(self.pid) - before
        for key, value in relayed(self.address).items():
            self.counts[key] += value - counts[key]
        return result

    def report(self) -> dict:
        gb = self.counts["bytes"] / 1e9
        requests = self.counts["produce_requests"]
        return {"cpu_s_per_gb": round(self.seconds / gb, 2) if gb else None, "cpu_s": round(self.seconds, 2),
                "relayed_gb": round(gb, 3),
                "mean_produce_request_bytes":
                    round(self.counts["produce_request_bytes"] / requests) if requests else None}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def paired(pairs: int, *legs) -> tuple[list, ...]:
    """Runs the legs in turn (A B A B …, or A B C A B C …); one list of results per leg."""
    results: tuple[list, ...] = tuple([] for _ in legs)
    for _ in range(pairs):
        for leg, out in zip(legs, results):
            out.append(leg())
    return results


def summary(direct: list[float], gateway: list[float], higher_is_better: bool = True) -> dict:
    d, g = statistics.median(direct), statistics.median(gateway)
    # Each pair ran back to back, so its own ratio is what drift of a shared machine disturbs least.
    pairs = [b / a for a, b in zip(direct, gateway) if a]
    return {"direct": direct, "gateway": gateway, "direct_median": round(d, 2), "gateway_median": round(g, 2),
            "ratio": round(g / d, 3) if d else None,
            "pair_ratio_median": round(statistics.median(pairs), 3) if pairs else None,
            "higher_is_better": higher_is_better}


def aa_control(pairs: int, direct) -> dict:
    """Direct against direct, paired like the real runs: the ratios this machine shows when nothing differs."""
    a, b = paired(pairs, direct, direct)
    ratios = sorted(round(y / x, 3) for x, y in zip(a, b) if x)
    return {"pair_ratios": ratios, "median": statistics.median(ratios), "min": ratios[0], "max": ratios[-1]}


def relay_summary(base: list[float], relayed: list[float], over: str = "gateway") -> dict:
    """What goes through the reference relay against `base` of the same rounds: the gateway behind it (the chain's
    throughput), or the endpoint it stands in front of (over="direct": a broker's Metadata rate)."""
    s = summary(base, relayed)
    return {"runs": relayed, "median": s["gateway_median"], f"over_{over}": s["ratio"],
            "pair_ratio_median": s["pair_ratio_median"]}


def added(direct: list[float], gateway: list[float]) -> dict:
    """Latency summary plus what the gateway adds: the difference of medians and the median of pair differences."""
    s = summary(direct, gateway, higher_is_better=False)
    s["added_ms"] = round(s["gateway_median"] - s["direct_median"], 2)
    s["pair_added_ms_median"] = round(statistics.median(g - d for d, g in zip(direct, gateway)), 2)
    return s


def relay_added(gateway: list[float], chain: list[float]) -> dict:
    """What the reference relay in front of the gateway adds to a latency, in the same rounds."""
    s = added(gateway, chain)
    return {"runs": chain, "median": s["gateway_median"], "added_ms": s["added_ms"],
            "pair_added_ms_median": s["pair_added_ms_median"]}


def run(lab: LabState, args: argparse.Namespace) -> dict:
    results: dict = {"pairs": args.pairs, "records": args.records, "record_size": 1024,
                     "event_loop": args.event_loop, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release,
                                 "loadavg_start": os.getloadavg()},
                     "commit": commit(), "command": " ".join(["python -m bench", *sys.argv[1:]]),
                     "workloads": list(args.workload), "gateway_cpu": {}}
    if args.gateway_source != REPO:
        results["gateway_commit"] = commit(args.gateway_source)
    topics = BenchTopics(lab.bootstrap_servers)
    env = {"GATEWAY_EVENT_LOOP": args.event_loop}
    try:
        with gateway_node(lab, env, source=args.gateway_source) as (pid, gateway), ExitStack() as stack:
            relay = stack.enter_context(reference_relay(lab, env, args.gateway_source)) if args.reference_relay else None
            Workloads(lab, args, results, topics, pid, gateway, relay).run_all()
    finally:
        topics.delete_all()
    results["machine"]["loadavg_end"] = os.getloadavg()
    return results


@dataclass(frozen=True)
class Relay:
    endpoint: str  # where clients bootstrap: HAProxy
    haproxy_pid: int
    gateway_address: str  # the gateway behind it, whose counters give the bytes relayed

    @property
    def address(self) -> str:
        return self.endpoint.rsplit(":", 1)[0]


@contextmanager
def reference_relay(lab: LabState, env: dict[str, str], source: Path = REPO):
    relay_address = lab.gateway_addresses[RELAY_ADDRESS_INDEX]
    gateway_address = lab.gateway_addresses[RELAYED_GATEWAY_ADDRESS_INDEX]
    with gateway_node(lab, env, gateway_address, advertised=relay_address, source=source), \
            haproxy_relay(relay_address, gateway_address, PORT_START, GATEWAY_PORT_COUNT, lab.layout.log_dir) as pid:
        yield Relay(f"{relay_address}:{PORT_START}", pid, gateway_address)


class Workloads:
    """Every workload, direct and through the gateway in pairs; each run starts on an empty topic."""

    def __init__(self, lab: LabState, args: argparse.Namespace, results: dict, topics: BenchTopics, pid: int,
                 gateway: str, relay: Relay | None = None) -> None:
        self.lab, self.args, self.results, self.topics = lab, args, results, topics
        self.pid, self.gateway, self.direct = pid, gateway, lab.bootstrap_servers
        self.relay = relay

    def run_all(self) -> None:
        records, chosen = self.args.records, self.args.workload
        rate = self.args.latency_rate
        if "produce_default" in chosen:
            direct_default = self.produce_pair("default", {}, records)
            rate = rate or int(statistics.median(r.records_per_s for r in direct_default) / 2)
        if "produce_batched" in chosen:
            self.produce_pair("batched", {"batch.size": "131072", "linger.ms": "1"}, records)
        if "produce_1k_requests" in chosen:
            self.produce_pair("1k_requests", {"batch.size": "1024", "linger.ms": "0"}, max(1, records // 20))
        if "consume" in chosen:
            self.consume_pairs()
        if "latency" in chosen:
            self.latency_pairs(rate)
        if "metadata" in chosen:
            self.metadata_pairs()

    def profiled(self, workload: str, run) -> None:
        """With --profile: one more run through the gateway, not measured, with py-spy sampling the gateway."""
        if self.args.profile is not None:
            commit = self.results.get("gateway_commit") or self.results["commit"]
            title = f"gateway {commit}, {workload}: py-spy --native, {self.results['started']}"
            with flame_graph(self.pid, self.args.profile / f"{workload}.svg", title):
                run()

    def _meter(self) -> CpuMeter:
        """A fresh count of the gateway's CPU and relayed bytes, one per workload."""
        return CpuMeter(self.pid, self.gateway.rsplit(":", 1)[0])

    def produce(self, endpoint: str, topic: str, records: int, meter: CpuMeter | None = None,
                **options) -> perf_tools.ProduceResult:
        """One ProducerPerformance run on a fresh topic; through the gateway it is counted by `meter`."""
        self.topics.fresh(topic)  # outside the measured window and the gateway's CPU count

        def run() -> perf_tools.ProduceResult:
            return perf_tools.produce(self.lab, endpoint, topic, records, **options)

        return run() if meter is None else meter.measure(run)

    def _relay_legs(self, run) -> tuple[list, CpuMeter | None]:
        """With --reference-relay, the third leg of each pair: `run(endpoint, meter)` through HAProxy."""
        if self.relay is None:
            return [], None
        relay, meter = self.relay, CpuMeter(self.relay.haproxy_pid, self.relay.gateway_address)
        return [lambda: run(relay.endpoint, meter)], meter

    def _relay_latency_leg(self, run) -> list:
        """With --reference-relay, the third leg of a latency pair: `run(endpoint)` through HAProxy and the gateway
        behind it (clients follow the addresses they are told, so HAProxy can only stand in front of a gateway)."""
        return [] if self.relay is None else [lambda: run(self.relay.endpoint)]

    def _report_relay(self, key: str, cpu_key: str, gateway_mb_s: list[float], chain: list, meter: CpuMeter) -> None:
        self.results[key]["reference_relay"] = relay_summary(gateway_mb_s, [r.mb_per_s for r in chain])
        self.results.setdefault("relay_cpu", {})[cpu_key] = meter.report()

    def produce_pair(self, name: str, props: dict[str, str], records: int) -> list:
        topic, meter, key = f"bench-{name}", self._meter(), f"produce_{name}_mb_s"
        relay_legs, relay_meter = self._relay_legs(
            lambda endpoint, relay_meter: self.produce(endpoint, topic, records, relay_meter, props=props))
        a, b, *chain = paired(self.args.pairs, lambda: self.produce(self.direct, topic, records, props=props),
                              lambda: self.produce(self.gateway, topic, records, meter, props=props), *relay_legs)
        self.results[key] = summary([r.mb_per_s for r in a], [r.mb_per_s for r in b])
        self.results["gateway_cpu"][f"produce_{name}"] = meter.report()
        if chain:
            self._report_relay(key, f"produce_{name}", [r.mb_per_s for r in b], chain[0], relay_meter)
        if self.args.aa_control:
            self.results[key]["aa_control"] = aa_control(
                self.args.pairs, lambda: self.produce(self.direct, topic, records, props=props).mb_per_s)
        self.profiled(f"produce_{name}", lambda: self.produce(self.gateway, topic, records, props=props))
        self.topics.delete(topic)
        return a

    def consume_pairs(self) -> None:
        # One topic filled once (direct, untimed) and read whole by every run with a group of its own.
        topic, records, meter = self.topics.fresh("bench-consume"), self.args.records, self._meter()
        perf_tools.produce(self.lab, self.direct, topic, records)

        def consume(endpoint: str) -> perf_tools.ConsumeResult:
            return perf_tools.consume(self.lab, endpoint, topic, records)

        relay_legs, relay_meter = self._relay_legs(
            lambda endpoint, relay_meter: relay_meter.measure(lambda: consume(endpoint)))
        a, b, *chain = paired(self.args.pairs, lambda: consume(self.direct),
                              lambda: meter.measure(lambda: consume(self.gateway)), *relay_legs)
        self.results["consume_mb_s"] = summary([r.mb_per_s for r in a], [r.mb_per_s for r in b])
        self.results["gateway_cpu"]["consume"] = meter.report()
        if chain:
            self._report_relay("consume_mb_s", "consume", [r.mb_per_s for r in b], chain[0], relay_meter)
        if self.args.aa_control:
            self.results["consume_mb_s"]["aa_control"] = aa_control(
                self.args.pairs, lambda: consume(self.direct).mb_per_s)
        self.profiled("consume", lambda: consume(self.gateway))
        self.topics.delete(topic)

    def latency_pairs(self, rate: int) -> None:
        topic, records, meter = "bench-latency", rate * self.args.latency_seconds, self._meter()
        a, b = paired(self.args.pairs, lambda: self.produce(self.direct, topic, records, throughput=rate),
                      lambda: self.produce(self.gateway, topic, records, meter, throughput=rate))
        self.results["latency_rate_records_s"] = rate
        self.results["gateway_cpu"]["produce_fixed_rate"] = meter.report()
        for pct in ("p50_ms", "p99_ms"):
            self.results[f"latency_{pct}"] = added([getattr(r, pct) for r in a], [getattr(r, pct) for r in b])

        # The same rate without ProducerPerformance's start-up in the percentiles (see bench/latency.py).
        def steady(endpoint: str) -> dict:
            self.topics.fresh(topic)
            out = subprocess.run([sys.executable, "-m", "bench.latency", endpoint, topic, str(rate),
                                  str(self.args.latency_seconds)], cwd=REPO, capture_output=True, text=True, check=True)
            return accepted(json.loads(out.stdout))

        a, b, *chain = paired(self.args.pairs, lambda: steady(self.direct), lambda: steady(self.gateway),
                              *self._relay_latency_leg(steady))
        self.results["steady_latency_runs"] = {"direct": a, "gateway": b, **({"relay": chain[0]} if chain else {})}
        for pct in ("p50_ms", "p99_ms", "p999_ms"):
            self.results[f"steady_latency_{pct}"] = added([r[pct] for r in a], [r[pct] for r in b])
            if chain:
                self.results[f"steady_latency_{pct}"]["reference_relay"] = relay_added(
                    [r[pct] for r in b], [r[pct] for r in chain[0]])

        # Kafka's own end-to-end figure: produce one record, read it back, the next (the figure Kroxylicious publishes).
        def end_to_end(endpoint: str) -> perf_tools.EndToEndResult:
            self.topics.fresh(topic)
            return perf_tools.end_to_end(self.lab, endpoint, topic, self.args.e2e_records)

        a, b, *chain = paired(self.args.pairs, lambda: end_to_end(self.direct), lambda: end_to_end(self.gateway),
                              *self._relay_latency_leg(end_to_end))
        self.results["e2e_latency_records"] = self.args.e2e_records
        for pct in ("avg_ms", "p99_ms"):
            self.results[f"e2e_latency_{pct}"] = added([getattr(r, pct) for r in a], [getattr(r, pct) for r in b])
            if chain:
                self.results[f"e2e_latency_{pct}"]["reference_relay"] = relay_added(
                    [getattr(r, pct) for r in b], [getattr(r, pct) for r in chain[0]])
        self.profiled("latency", lambda: steady(self.gateway))
        self.profiled("e2e_latency", lambda: end_to_end(self.gateway))
        self.topics.delete(topic)

    def metadata_pairs(self) -> None:
        def metadata_rate(endpoint: str) -> float:
            out = subprocess.run([sys.executable, "-m", "bench.metadata_load", endpoint,
                                  str(self.args.metadata_seconds)], cwd=REPO, capture_output=True, text=True,
                                 check=True)
            return json.loads(out.stdout)["requests_per_s"]

        def per_cpu_second(pid: int, endpoint: str, out: list[float]) -> float:
            """The rate through the relay process `pid`; its requests per CPU-second go to `out`."""
            before, start = cpu_seconds(pid), time.monotonic()
            rate = metadata_rate(endpoint)
            busy = (cpu_seconds(pid) - before) / (time.monotonic() - start)  # cores the relay used
            out.append(round(rate / busy, 1) if busy else 0.0)
            return rate

        broker, per_core, relay_per_core = self.lab.brokers[0], [], []
        with ExitStack() as stack:
            legs = [lambda: metadata_rate(broker.endpoint), lambda: per_cpu_second(self.pid, self.gateway, per_core)]
            if self.relay is not None:
                # HAProxy straight in front of the broker: what a hop that is not Python leaves of the broker's rate
                # (the Metadata load follows no advertised address, so no gateway needs to stand behind it).
                relay_pid = stack.enter_context(haproxy_relay(self.relay.address, broker.address, broker.port, 1,
                                                              self.lab.layout.log_dir))
                relay_endpoint = f"{self.relay.address}:{broker.port}"
                legs.append(lambda: per_cpu_second(relay_pid, relay_endpoint, relay_per_core))
            a, b, *chain = paired(self.args.pairs, *legs)
        self.results["metadata_requests_s"] = summary(a, b)
        self.results["metadata_requests_per_gateway_cpu_s"] = {"runs": per_core, "median": statistics.median(per_core)}
        if chain:
            self.results["metadata_requests_s"]["reference_relay"] = {
                **relay_summary(a, chain[0], over="direct"), "requests_per_relay_cpu_s": statistics.median(relay_per_core)}
        self.profiled("metadata", lambda: metadata_rate(self.gateway))


def print_table(results: dict) -> None:
    rate = results.get("latency_rate_records_s")
    rows = [
        ("produce MB/s, default batching", "produce_default_mb_s"),
        ("produce MB/s, batch.size=131072 linger.ms=1", "produce_batched_mb_s"),
        ("produce MB/s, 1 KiB requests (batch.size=1024 linger.ms=0)", "produce_1k_requests_mb_s"),
        ("consume MB/s (fetch)", "consume_mb_s"),
        (f"produce p50 ms at {rate} rec/s", "latency_p50_ms"),
        (f"produce p99 ms at {rate} rec/s", "latency_p99_ms"),
        (f"steady-state p50 ms at {rate} rec/s (librdkafka, warm-up left out)", "steady_latency_p50_ms"),
        (f"steady-state p99 ms at {rate} rec/s", "steady_latency_p99_ms"),
        (f"steady-state p99.9 ms at {rate} rec/s", "steady_latency_p999_ms"),
        ("EndToEndLatency average ms (one record at a time)", "e2e_latency_avg_ms"),
        ("EndToEndLatency p99 ms", "e2e_latency_p99_ms"),
        ("Metadata requests/s (gateway vs one broker)", "metadata_requests_s"),
    ]
    print("| workload | direct (median) | gateway (median) | gateway/direct | median of pair ratios |")
    print("|---|---|---|---|---|")
    for label, key in rows:
        if key not in results:  # a workload left out (--workload)
            continue
        r = results[key]
        extra = f" ({r['added_ms']:+} ms)" if "added_ms" in r else ""
        pairs = f"{r['pair_ratio_median']}"
        if "pair_added_ms_median" in r:
            pairs += f"; pair differences {r['pair_added_ms_median']:+} ms"
        if "aa_control" in r:
            pairs += f"; direct vs direct {r['aa_control']['min']}-{r['aa_control']['max']}"
        print(f"| {label} | {r['direct_median']} | {r['gateway_median']}{extra} | {r['ratio']} | {pairs} |")
    if "metadata_requests_per_gateway_cpu_s" in results:
        per_core = results["metadata_requests_per_gateway_cpu_s"]["median"]
        print(f"| Metadata requests per gateway CPU-second | | {per_core} | | |")
    print()
    print("| gateway CPU | CPU-s per GB relayed | mean Produce request |")
    print("|---|---|---|")
    for name, r in results["gateway_cpu"].items():
        size = f"{r['mean_produce_request_bytes']} B" if r["mean_produce_request_bytes"] else ""
        print(f"| {name} | {r['cpu_s_per_gb']} | {size} |")
    if "relay_cpu" in results:
        print()
        print("| reference relay (HAProxy in front of a gateway) | gateway MB/s | HAProxy + gateway MB/s "
              "| chain/gateway | median of pair ratios | HAProxy CPU-s/GB | gateway CPU-s/GB |")
        print("|---|---|---|---|---|---|---|")
        for name, cpu in results["relay_cpu"].items():
            key = "consume_mb_s" if name == "consume" else f"{name}_mb_s"
            r = results[key]
            chain = r["reference_relay"]
            print(f"| {name} | {r['gateway_median']} | {chain['median']} | {chain['over_gateway']} "
                  f"| {chain['pair_ratio_median']} | {cpu['cpu_s_per_gb']} | {results['gateway_cpu'][name]['cpu_s_per_gb']} |")
    latencies = [(label, key) for label, key in rows if "reference_relay" in results.get(key, {}) and "added_ms" in results[key]]
    if latencies:
        print()
        print("| reference relay, latency | gateway added (median) | HAProxy in front of the gateway adds | pair differences |")
        print("|---|---|---|---|")
        for label, key in latencies:
            r, chain = results[key], results[key]["reference_relay"]
            print(f"| {label} | {r['added_ms']:+} ms | {chain['added_ms']:+} ms | {chain['pair_added_ms_median']:+} ms |")
    if "reference_relay" in results.get("metadata_requests_s", {}):
        r, relay = results["metadata_requests_s"], results["metadata_requests_s"]["reference_relay"]
        print(f"\nMetadata requests/s: broker {r['direct_median']}, gateway {r['gateway_median']} ({r['ratio']}), "
              f"HAProxy in front of the broker {relay['median']} ({relay['over_direct']}; pair ratios "
              f"{relay['pair_ratio_median']}), {relay['requests_per_relay_cpu_s']} per HAProxy CPU-second")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3, help="A/B pairs per workload (default %(default)s)")
    parser.add_argument("--records", type=int, default=300_000, help="1 KiB records per throughput run")
    parser.add_argument("--latency-seconds", type=int, default=8, help="length of each fixed-rate latency run")
    parser.add_argument("--metadata-seconds", type=float, default=5.0)
    parser.add_argument("--event-loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--aa-control", action="store_true",
                        help="also pair direct against direct for every throughput workload: the noise floor")
    parser.add_argument("--reference-relay", action="store_true",
                        help="also run every throughput workload through HAProxy in front of a second gateway: "
                             "what a C relay hop costs here")
    parser.add_argument("--workload", action="append", choices=WORKLOADS,
                        help="run only this workload (repeatable; default: all of them)")
    parser.add_argument("--latency-rate", type=int,
                        help="records/s of the latency workload (default: half the direct default-batching median, "
                             "which needs the produce_default workload)")
    parser.add_argument("--e2e-records", type=int, default=2000,
                        help="records of each EndToEndLatency run (default %(default)s)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="after each workload's pairs, one more (unmeasured) run through the gateway under py-spy; "
                             "its flame graph goes to DIR/WORKLOAD.svg")
    parser.add_argument("--gateway-source", type=Path, default=REPO, metavar="CHECKOUT",
                        help="run the gateways from this checkout (e.g. a worktree of an older commit); "
                             "the result names its commit as gateway_commit")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results.json")
    args = parser.parse_args()
    if args.pairs < 3:
        parser.error("--pairs must be at least 3")
    args.workload = tuple(args.workload or WORKLOADS)
    args.gateway_source = args.gateway_source.resolve()
    if "latency" in args.workload and "produce_default" not in args.workload and not args.latency_rate:
        parser.error("the latency workload alone needs --latency-rate")
    results = run(LabState.load(), args)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nfull results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

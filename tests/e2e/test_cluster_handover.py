"""Connections follow the mapping (gateway_app/proxy/handover.py), end to end: gateway processes on the controller,
the lab's brokers, and real clients in the client namespace — Kafka's VerifiableProducer (idempotent) and a
two-member VerifiableConsumer group plus a librdkafka producer (lab/clients/load.py), a librdkafka latency
probe, kafka-python and aiokafka (tests/e2e/handover_clients.py) — counting every message.

Each test disturbs the cluster (a rolling restart, a kill -9 and return, a node joining), waits until the last node
is ready and listed by its peers, then requires within settle + spread + one metadata refresh (+ a margin for the
loaded machine): no node holds a foreign connection, every broker's connections are on the node of its rack (or the
mapped node, rackless), and at the end every acknowledged message consumed exactly once.

KGW_HANDOVER_BASELINE=1 runs the rolling restart with GATEWAY_HANDOVER_ENABLED=false and asserts the opposite (the
connections stay where they went): the "before" figures of docs/handover.md, and proof the test sees the problem.
KGW_HANDOVER_SOURCE=<a checkout> runs the nodes from that checkout (a figure before a change to the drain).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from gateway_app.cluster.mapping import BrokerRack, assign
from gateway_app.config import SPECS
from lab.clients import outcomes
from lab.clients.cluster_clients import verifiable_producer
from lab.clients.load import ClientLoad
from tests.e2e.cluster_support import (  # noqa: F401  (cluster_id is a fixture)
    PORT_START, ClusterNode, cluster_id, http_get, wait_until,
)

RACKS = ["rack-a", "rack-b", "rack-c"]
DEFAULTS = {spec.env: float(spec.default) for spec in SPECS if spec.env.startswith("GATEWAY_HANDOVER_") and spec.env != "GATEWAY_HANDOVER_ENABLED"}
SETTLE_S, SPREAD_S = DEFAULTS["GATEWAY_HANDOVER_SETTLE_S"], DEFAULTS["GATEWAY_HANDOVER_SPREAD_S"]
METADATA_REFRESH_S = 5.0  # the test clients' metadata.max.age.ms / topic.metadata.refresh.interval.ms
MARGIN_S = 15.0  # the 2-core machine under brokers, gateways, JVMs
CONVERGE_S = SETTLE_S + SPREAD_S + METADATA_REFRESH_S + MARGIN_S
READY_S = 300  # joining the gateway group takes seconds, or tens of them on a machine this busy
BASELINE = os.environ.get("KGW_HANDOVER_BASELINE") == "1"
SOURCE = Path(os.environ.get("KGW_HANDOVER_SOURCE", Path(__file__).resolve().parents[2]))
CLIENTS = Path(__file__).with_name("handover_clients.py")
SAMPLE = re.compile(r'^(gateway_client_connections_active|gateway_handover_foreign_connections|gateway_out_of_rack_bytes_total|'
                    r'gateway_handovers_total)\{([^}]*)\} ([0-9.e+]+)$')


def scrape(address: str) -> dict | None:
    """The handover figures of one node's /metrics: connections and foreign connections by broker, out-of-rack
    bytes, handovers by outcome."""
    status, body = http_get(address, "/metrics")
    if status != 200:
        return None
    figures: dict = defaultdict(Counter)
    for line in body.decode().splitlines():
        match = SAMPLE.match(line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
            key = labels.get("broker") or labels.get("outcome")
            figures[match.group(1)][key] += float(match.group(3))
    return figures


class Sampler:
    """Scrapes every node twice a second in a thread; keeps the series for the report."""

    def __init__(self, nodes: dict[str, ClusterNode]) -> None:
        self.nodes = nodes  # rack (or name) -> node; the test replaces restarted nodes in place
        self.samples: list[tuple[float, str, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for name, node in list(self.nodes.items()):
                figures = scrape(node.address)
                if figures is not None:
                    self.samples.append((time.time(), name, figures))

    def series(self, since: float, until: float, step: float = 5.0) -> list[dict]:
        """Per step: foreign connections (all nodes, at the step's end) and out-of-rack bytes relayed in the step."""
        last: dict[str, dict] = {}
        out_of_rack_before: dict[str, float] = {}
        rows, edge, bytes_in_step = [], since + step, 0.0
        for t, name, figures in self.samples:
            if t < since:
                last[name] = figures
                out_of_rack_before[name] = sum(figures["gateway_out_of_rack_bytes_total"].values())
                continue
            while t >= edge and edge <= until:
                rows.append(self._row(edge - since, last, bytes_in_step))
                edge, bytes_in_step = edge + step, 0.0
            if t > until:
                break
            total = sum(figures["gateway_out_of_rack_bytes_total"].values())
            previous = out_of_rack_before.get(name, 0.0)
            bytes_in_step += total - previous if total >= previous else total  # a restarted node counts from 0
            out_of_rack_before[name], last[name] = total, figures
        return rows

    def handovers(self) -> Counter:
        """Handovers by outcome (idle, deadline) over the whole run, all nodes, restarted ones included."""
        last: dict[tuple[str, str], float] = {}
        total: Counter = Counter()
        for _, name, figures in self.samples:
            for outcome, value in figures["gateway_handovers_total"].items():
                before = last.get((name, outcome), 0.0)
                total[outcome] += value - before if value >= before else value  # a restarted node counts from 0
                last[(name, outcome)] = value
        return total

    @staticmethod
    def _row(at: float, last: dict[str, dict], out_of_rack: float) -> dict:
        return {"t": round(at), "foreign": int(sum(sum(f["gateway_handover_foreign_connections"].values()) for f in last.values())),
                "out_of_rack_kB": round(out_of_rack / 1000, 1)}


def connections(nodes: dict[str, ClusterNode]) -> dict[str, Counter]:
    """Active client connections per broker port on each node (bootstrap left out)."""
    result = {}
    for name, node in nodes.items():
        figures = scrape(node.address) or {"gateway_client_connections_active": Counter(), "gateway_handover_foreign_connections": Counter()}
        result[name] = Counter({b: int(n) for b, n in figures["gateway_client_connections_active"].items() if b != "bootstrap" and n})
        result[name]["foreign"] = int(sum(figures["gateway_handover_foreign_connections"].values()))
    return result


def follows_mapping(nodes: dict[str, ClusterNode], owner: dict[int, str]) -> bool:
    """No foreign connection anywhere, and each broker's connections only on the node that owns it."""
    held = connections(nodes)
    return all(held[name]["foreign"] == 0 and all(owner[int(b)] == name for b in held[name] if b != "foreign")
               for name in nodes)


def out_of_rack_bytes(nodes: dict[str, ClusterNode]) -> float:
    return sum(sum((scrape(n.address) or {"gateway_out_of_rack_bytes_total": Counter()})["gateway_out_of_rack_bytes_total"].values())
               for n in nodes.values())


@pytest.fixture
def gateway(lab, cluster_id, tmp_path):
    """start(name, rack, address) -> a gateway node of this test's cluster (killed at the end)."""
    started: list[ClusterNode] = []

    def start(name: str, rack: str | None, address: str) -> ClusterNode:
        node = ClusterNode(lab, cluster_id, name, rack, address, tmp_path, source=SOURCE,
                           GATEWAY_HANDOVER_ENABLED="false" if BASELINE else "true")
        started.append(node)
        return node

    yield start
    for node in started:
        node.kill()


def start_cluster(gateway, names_racks: list[tuple[str, str | None]], addresses: list[str]) -> dict[str, ClusterNode]:
    nodes = {name: gateway(name, rack, address) for (name, rack), address in zip(names_racks, addresses)}
    for node in nodes.values():
        node.wait_ready(READY_S)
    return nodes


def listed_by_every_peer(nodes: dict[str, ClusterNode], node_id: str) -> bool:
    views = [http_get(n.address, "/cluster") for n in nodes.values()]
    return all(status == 200 and node_id in {m["node_id"] for m in json.loads(body)["members"]} for status, body in views)


def listed_by_no_peer(nodes: dict[str, ClusterNode], node_id: str) -> bool:
    views = [http_get(n.address, "/cluster") for n in nodes.values()]
    return all(status == 200 and node_id not in {m["node_id"] for m in json.loads(body)["members"]} for status, body in views)


def restart(gateway, nodes: dict[str, ClusterNode], name: str, rack: str | None) -> None:
    """What playbooks/rolling_restart.yml does for one node: stop it, start it, wait until it is ready and every
    peer's /cluster lists it."""
    node = nodes[name]
    node.proc.send_signal(signal.SIGTERM)  # not ready, leave, drain (GATEWAY_DRAIN_TIMEOUT_S=5), exit 0
    assert node.proc.wait(READY_S) == 0  # 20 s (ClusterNode.terminate) is too short on a loaded machine
    restart_dead(gateway, nodes, name, rack)


class Probe:
    """A producer of tests/e2e/handover_clients.py in the client namespace, until result() stops it."""

    def __init__(self, lab, tmp_path: Path, bootstrap: str, topic: str, family: str, seconds: float, rate: float) -> None:
        self.acked_file = tmp_path / f"acked-{family}"
        self.stop_file = tmp_path / f"stop-{family}"
        self.prefix = family
        self.proc = subprocess.Popen(lab.client_cmd([sys.executable, str(CLIENTS), family, bootstrap, topic, family,
                                                     str(seconds), str(rate), str(self.acked_file), str(self.stop_file)]),
                                     stdout=subprocess.PIPE, stderr=(tmp_path / f"{family}.stderr").open("w"), text=True)

    def running(self) -> bool:
        return self.proc.poll() is None

    def acked(self) -> int:
        """Messages acknowledged so far (the client writes each one to its file as it is told)."""
        return len(self.acked_file.read_text().split()) if self.acked_file.exists() else 0

    def stop(self) -> None:
        """Stop sending: it flushes and prints its result, which result() collects."""
        self.stop_file.touch()

    def result(self, timeout_s: float = 180) -> dict:
        self.stop()
        out, _ = self.proc.communicate(timeout=timeout_s)
        assert self.proc.returncode == 0, f"{self.prefix} exited {self.proc.returncode}"
        return json.loads(out.strip().splitlines()[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


class NoRetryProducer:
    """Kafka's VerifiableProducer at its own settings (retries=0, so not idempotent) on a topic of its own, in the client
    namespace: every request that does not come back is a send the application is told failed (docs/handover.md)."""

    def __init__(self, lab, tmp_path: Path, bootstrap: str, rate: float, seconds: float) -> None:
        self.lab, self.dir = lab, tmp_path / "no-retry"
        self.dir.mkdir()
        self.topic, self.sent_max = f"no-retry-{uuid.uuid4().hex[:8]}", int(rate * seconds)
        self.admin = AdminClient({"bootstrap.servers": lab.bootstrap_servers})
        new = NewTopic(self.topic, num_partitions=3, replication_factor=3, config={"min.insync.replicas": "2"})
        self.admin.create_topics([new], request_timeout=15)[self.topic].result()
        argv = verifiable_producer(lab, self.dir, bootstrap, self.topic, self.sent_max, rate, 2, tool_retries=True)
        self.proc = subprocess.Popen(lab.client_cmd(argv), stdout=(self.dir / "events").open("w"),
                                     stderr=(self.dir / "stderr").open("w"))

    def acked(self) -> int:
        """Sends acknowledged so far, from its events file."""
        lines = (self.dir / "events").read_text().splitlines()
        return len(outcomes.verifiable_producer("no-retry", 0, lines, 0).acked)

    def finish(self, restarts: list[tuple[str, float, float]]) -> dict:
        """Stop it (it closes its producer: every record it was handed gets an outcome) and say what it was told,
        each failed send placed in the restart (node, began, ready) it fell in."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        lines = (self.dir / "events").read_text().splitlines()
        log = outcomes.verifiable_producer("no-retry", 0, lines, 0, (self.dir / "stderr").read_text().splitlines())
        def restart_of(t: float) -> tuple[str, float, float] | None:
            # The latest to begin: a restart's window (to 5 s after it was ready) overlaps the next one's SIGTERM,
            # and a send failed after that SIGTERM is the next node's (a drain), not the node just back.
            found = [(node, began, ready) for node, began, ready in restarts if began <= t <= ready + 5]
            return max(found, key=lambda restart: restart[1], default=None)

        during = Counter((restart_of(t) or ("outside a restart",))[0] for _, _, t in log.failed)
        # When, after the node's SIGTERM, its failed sends were told (the node was ready again at "ready_s"): a drain's
        # close is within its first seconds, a handover's after the node is ready.
        when: dict[str, dict] = {}
        for _, _, t in log.failed:
            found = restart_of(t)
            if found:
                node, began, ready = found
                seen = when.setdefault(node, {"ready_s": round(ready - began, 1), "told_s": []})
                seen["told_s"].append(round(t - began, 2))
        self.admin.delete_topics([self.topic], request_timeout=10)[self.topic].exception()
        return {"acked": len(log.acked), "failed": len(log.failed),
                "errors": dict(Counter(name for _, name, _ in log.failed)), "failed_during": dict(during),
                "failed_after_sigterm": when}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(60)


def longest_latency_ms(latencies: list[list[float]], since: float, until: float) -> float:
    return max((ms for sent, ms in latencies if since <= sent < until), default=0.0)


@pytest.fixture
def topic(lab):
    """A 3-partition topic, one leader per broker (every broker's port carries traffic); deleted afterwards."""
    name = f"handover-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": lab.bootstrap_servers})
    admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=3, config={"min.insync.replicas": "2"})],
                        request_timeout=15)[name].result()
    yield name
    admin.delete_topics([name], request_timeout=10)[name].exception()


def consumed_values(lab, topic: str, partitions: int = 3) -> Counter:
    """Every value in the topic, read straight from the brokers (no group) up to the end offsets."""
    consumer = Consumer({"bootstrap.servers": lab.bootstrap_servers, "group.id": f"check-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False})
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values: Counter = Counter()
    done: set[int] = {p for p, end in ends.items() if end == 0}
    deadline = time.monotonic() + 60
    while len(done) < partitions and time.monotonic() < deadline:
        for message in consumer.consume(1000, 1.0):
            if message.error() is None:
                values[message.value().decode()] += 1
                if message.offset() + 1 >= ends[message.partition()]:
                    done.add(message.partition())
    consumer.close()
    return values


def rack_owner(lab) -> dict[int, str]:
    return {b.id: b.rack for b in lab.brokers}


def report(what: str, sampler: Sampler, ready_at: float, until: float, nodes, latencies, before_at: float) -> None:
    rows = sampler.series(ready_at - 30, until)
    longest_after = longest_latency_ms(latencies, ready_at, until)
    longest_before = longest_latency_ms(latencies, before_at - 20, before_at)
    print(f"\n{what} (handover {'off' if BASELINE else 'on'}; t relative to 30 s before the last node was ready):")
    print("  t(s)  foreign  out-of-rack kB in the 5 s before")
    for row in rows:
        print(f"  {row['t'] - 30:+5d}  {row['foreign']:7d}  {row['out_of_rack_kB']:10.1f}")
    print(f"  longest librdkafka produce latency: {longest_after:.0f} ms from the last node ready to the end, "
          f"{longest_before:.0f} ms in the 20 s before the disturbance")
    print(f"  handovers so far by outcome: {dict(sampler.handovers())}")


@pytest.mark.lab
@pytest.mark.timeout(900)
def test_rolling_restart_then_kill_9_connections_return_to_their_rack(lab, gateway, tmp_path, topic):
    """One cluster and one client load through both disturbances (a cluster and two JVMs cost a minute to start)."""
    nodes = start_cluster(gateway, [(f"gw-{r}", r) for r in RACKS], lab.gateway_addresses[:3])
    by_rack = {r: nodes[f"gw-{r}"] for r in RACKS}
    bootstrap = ",".join(f"{n.address}:{PORT_START}" for n in nodes.values())
    # at most 3 minutes of sending: stopped once both disturbances are checked (a minute or so on a quiet machine)
    load = ClientLoad(lab, tmp_path, bootstrap, count=18000, rate=100)
    load.group_settle_s = READY_S  # two JVMs starting on a machine this busy
    probe = no_retry = None
    try:
        with Sampler(by_rack) as sampler:
            # The probe and the no-retry JVM start while the group's two JVMs do: none of them waits for the others.
            probe = Probe(lab, tmp_path, bootstrap, topic, "librdkafka", seconds=400, rate=50)
            no_retry = NoRetryProducer(lab, tmp_path, bootstrap, rate=100, seconds=400)
            load.start()
            # Every client sending and told of its sends before the first node stops (the restarts happen under load).
            load.wait_flowing(READY_S)
            wait_until(lambda: probe.acked() >= 50 and no_retry.acked() >= 100, READY_S,
                       "the probe and the no-retry producer to have a second of sends acknowledged", 0.2)
            wait_until(lambda: follows_mapping(by_rack, rack_owner(lab)), 30, "the clients to settle on the rack-local nodes", 0.5)
            started = time.time()
            restarts = []
            for rack in RACKS:  # the playbook's order
                began = time.time()
                restart(gateway, nodes, f"gw-{rack}", rack)
                restarts.append((f"gw-{rack}", began, time.time()))
                by_rack[rack] = nodes[f"gw-{rack}"]
            ready_at = time.time()
            print(f"\nrolling restart of 3 nodes took {ready_at - started:.1f} s")
            if BASELINE:
                time.sleep(5)
                told = no_retry.finish(restarts)
                print(f"retries=0 VerifiableProducer through the rolling restart: {json.dumps(told)}")
                time.sleep(CONVERGE_S)
                assert not follows_mapping(by_rack, rack_owner(lab)), "without handover the connections should stay put"
                print(f"connections {CONVERGE_S:g} s after the last node was ready: {per_node(by_rack)}")
                report("rolling restart", sampler, ready_at, time.time(), by_rack, [], started)
                return
            took = wait_until(lambda: follows_mapping(by_rack, rack_owner(lab)), CONVERGE_S,
                              "no foreign connection and every broker's connections on its rack's node", 0.5)
            print(f"connections follow the mapping {took:.1f} s after the last node was ready "
                  f"(settle {SETTLE_S:g} + spread {SPREAD_S:g} + metadata refresh {METADATA_REFRESH_S:g} s): {per_node(by_rack)}")
            # Through the handovers too: the connections the restarts pushed to other nodes are handed back now.
            handing_back = ("handing back", ready_at + 5, time.time())
            # At least 3 s without a byte across racks, the no-retry producer's close among them.
            before, quiet_from = out_of_rack_bytes(by_rack), time.monotonic()
            told = no_retry.finish([*restarts, handing_back])
            print(f"retries=0 VerifiableProducer through the rolling restart and the handovers after it: {json.dumps(told)}")
            time.sleep(max(0.0, quiet_from + 3 - time.monotonic()))
            assert out_of_rack_bytes(by_rack) == before, "traffic still crosses racks"
            converged_at = time.time()

            assert not load.producers_done(), "the Java and librdkafka producers ran through the rolling restart"
            by_rack["rack-b"].kill()
            survivors = {r: by_rack[r] for r in ("rack-a", "rack-c")}
            wait_until(lambda: listed_by_no_peer(survivors, "gw-rack-b"), 30, "the killed node to leave the survivors' views", 0.5)
            wait_until(lambda: any(held["2"] for held in connections(survivors).values()), 30,
                       "the clients to move broker 2's traffic to a survivor", 0.5)
            print(f"while gw-rack-b is down after kill -9: {per_node(survivors)}")
            restart_dead(gateway, nodes, "gw-rack-b", "rack-b")
            by_rack["rack-b"] = nodes["gw-rack-b"]
            back_at = time.time()
            took = wait_until(lambda: follows_mapping(by_rack, rack_owner(lab)), CONVERGE_S,
                              "no foreign connection and every broker's connections on its rack's node", 0.5)
            print(f"kill -9 and return: connections follow the mapping {took:.1f} s after the node was ready again: "
                  f"{per_node(by_rack)}")
            load.stop_producers()
            result = probe.result()
            summary = load.finish_and_verify()
            report("rolling restart", sampler, ready_at, converged_at, by_rack, result["latencies"], started)
            report("kill -9 and return", sampler, back_at, time.time(), by_rack, result["latencies"], converged_at)
        assert result["failed"] == 0, result["errors"]
        values = consumed_values(lab, topic)
        assert not [v for v, n in values.items() if n > 1] and len(values) == result["acked"] == result["sent"], \
            (len(values), result["acked"], result["sent"])
        print(f"Java/librdkafka load: {summary}; librdkafka probe: sent {result['sent']}, acked {result['acked']}, "
              f"read back {len(values)} distinct")
    finally:
        if probe is not None:
            probe.kill()
        if no_retry is not None:
            no_retry.kill()
        load.stop()
        load.delete()


def per_node(nodes: dict[str, ClusterNode]) -> dict[str, dict]:
    """Client connections per broker on each node, for the report."""
    return {name: dict(held) for name, held in connections(nodes).items()}


def restart_dead(gateway, nodes: dict[str, ClusterNode], name: str, rack: str | None) -> None:
    """Start a node that is already dead again, and wait until it is ready and listed by every peer."""
    nodes[name] = gateway(name, rack, nodes[name].address)
    nodes[name].wait_ready(READY_S)
    wait_until(lambda: listed_by_every_peer(nodes, name), 30, f"every peer to list {name}", 0.2)


def joiner_that_takes_a_broker(names: list[str], brokers: list[int]) -> str:
    """A node id that the rackless mapping gives a broker to once it joins `names`."""
    rackless = [BrokerRack(b, None) for b in brokers]

    class Node:
        def __init__(self, node_id: str) -> None:
            self.node_id, self.rack = node_id, None

    return next(f"gw-join-{i}" for i in range(100)
                if any(m.node_id == f"gw-join-{i}" for m in assign([Node(n) for n in [*names, f"gw-join-{i}"]], rackless).values()))


@pytest.mark.lab
@pytest.mark.timeout(720)
def test_a_node_joining_a_rackless_cluster_takes_its_share_of_existing_connections(lab, gateway, tmp_path):
    names = ["gw-0", "gw-1", "gw-2"]
    nodes = start_cluster(gateway, [(n, None) for n in names], lab.gateway_addresses[:3])
    brokers = [b.id for b in lab.brokers]
    load = ClientLoad(lab, tmp_path, ",".join(f"{n.address}:{PORT_START}" for n in nodes.values()), count=6000, rate=100)
    load.group_settle_s = READY_S
    try:
        load.start()
        load.wait_flowing()
        joiner = joiner_that_takes_a_broker(names, brokers)
        nodes[joiner] = gateway(joiner, None, lab.gateway_addresses[3])
        nodes[joiner].wait_ready(READY_S)
        wait_until(lambda: listed_by_every_peer(nodes, joiner), 30, f"every peer to list {joiner}", 0.2)
        owner = {b: m for b, m in json.loads(http_get(nodes[joiner].address, "/cluster")[1])["mapping"].items()}
        owner = {int(b): entry["node_id"] for b, entry in owner.items()}
        assert joiner in owner.values(), owner
        took = wait_until(lambda: follows_mapping(nodes, owner) and sum(connections(nodes)[joiner].values()) > 0, CONVERGE_S,
                          f"{joiner} to hold the connections of its broker and no node a foreign one", 0.5)
        print(f"\n{joiner} joined a rackless cluster: connections follow the mapping {took:.1f} s after it was ready; "
              f"at the end {({n: dict(c) for n, c in connections(nodes).items()})}")
        load.stop_producers()
        load.finish_and_verify()
    finally:
        load.stop()
        load.delete()


@pytest.mark.lab
@pytest.mark.timeout(240)
def test_librdkafka_kafka_python_and_aiokafka_follow_a_handover(lab, gateway, tmp_path, topic):
    """Two racks' nodes first (broker 3 served out of its rack), then rack-c's node joins: each client family's
    connection for broker 3 is handed over to it, and every acknowledged message is in the topic exactly once."""
    nodes = start_cluster(gateway, [("gw-rack-a", "rack-a"), ("gw-rack-b", "rack-b")], lab.gateway_addresses[:2])
    by_rack = {"rack-a": nodes["gw-rack-a"], "rack-b": nodes["gw-rack-b"]}
    bootstrap = ",".join(f"{n.address}:{PORT_START}" for n in nodes.values())
    probes = [Probe(lab, tmp_path, bootstrap, topic, family, seconds=200, rate=20) for family in ("librdkafka", "kafka-python", "aiokafka")]
    try:
        wait_until(lambda: sum(c["3"] for c in connections(by_rack).values()) >= 3, 60,
                   "the three producers to connect for broker 3 (rack-c has no node yet)", 0.5)
        assert out_of_rack_bytes(by_rack) == 0, "with no live node in rack-c, serving broker 3 elsewhere is not out of rack"
        nodes["gw-rack-c"] = by_rack["rack-c"] = gateway("gw-rack-c", "rack-c", lab.gateway_addresses[2])
        nodes["gw-rack-c"].wait_ready(READY_S)
        wait_until(lambda: listed_by_every_peer(nodes, "gw-rack-c"), 30, "every peer to list gw-rack-c", 0.2)
        # Following the mapping alone also holds while a handed-over client has not reconnected yet.
        took = wait_until(lambda: follows_mapping(by_rack, rack_owner(lab)) and connections(by_rack)["rack-c"]["3"] >= 3,
                          CONVERGE_S, "every broker's connections on its rack's node, all three producers back", 0.5)
        held = connections(by_rack)
        print(f"\nrack-c's node joined: connections follow the mapping {took:.1f} s after it was ready; {({r: dict(c) for r, c in held.items()})}")
        assert all(probe.running() for probe in probes), "the producers ran through the handover"
        assert held["rack-c"]["3"] >= 3, "each of the three producers reconnected to rack-c's node"
        for probe in probes:  # all three flush at once
            probe.stop()
        results = {probe.prefix: probe.result() for probe in probes}
    finally:
        for probe in probes:
            probe.kill()
    values = consumed_values(lab, topic)
    for family, result in results.items():
        acked = set((tmp_path / f"acked-{family}").read_text().split())
        mine = {v: n for v, n in values.items() if v.startswith(family + "-")}
        print(f"{family}: sent {result['sent']}, acked {len(acked)}, failed {result['failed']}, in the topic {len(mine)} "
              f"distinct, {sum(mine.values())} in all")
        assert result["failed"] == 0, result["errors"]
        assert acked == set(mine) and len(acked) == result["sent"]
        assert all(n == 1 for n in mine.values()), "duplicates"

"""The gateway cluster end to end: gateway processes on the controller (one lab address and rack
each), the lab's real brokers, and real clients (librdkafka, Kafka's Java console producer, a
librdkafka consumer group) in the client namespace, which has no route to the brokers.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from gateway_app.cluster.mapping import score
from lab.clients import outcomes
from lab.clients.cluster_clients import verifiable_producer
from lab.clients.load import CLIENTS, JAVA_PREFIX, ClientLoad
from tests.e2e.cluster_support import (  # noqa: F401  (cluster_id is a fixture)
    PORT_START, ClusterNode, PortForwarder, cluster_id, elect_preferred_leaders, http_get, metadata_brokers, offsets_leaders,
    offsets_partition, wait_until,
)
from tests.e2e.dataplane_support import build_franz_go, run_client, run_franz_go, unique

RACKS = ["rack-a", "rack-b", "rack-c"]
MEMBERSHIP_BOUND_S = 10.0  # GATEWAY_CLUSTER_SESSION_TIMEOUT_S default


@pytest.fixture
def start_node(lab, cluster_id, tmp_path):
    started: list[ClusterNode] = []

    def start(node_id: str, rack: str | None, address: str, **options) -> ClusterNode:
        node = ClusterNode(lab, cluster_id, node_id, rack, address, tmp_path, **options)
        started.append(node)
        return node

    yield start
    for node in started:
        node.kill()


def three_racks(lab, start_node, **options) -> dict[str, ClusterNode]:
    nodes = {rack: start_node(f"gw-{rack}", rack, address, **options) for rack, address in zip(RACKS, lab.gateway_addresses)}
    for node in nodes.values():
        node.wait_ready()
    return nodes


def rack_local(lab, nodes: dict[str, ClusterNode]) -> dict[int, tuple[str, int, str]]:
    return {b.id: (nodes[b.rack].address, PORT_START + b.id, b.rack) for b in lab.brokers}


def answers(nodes) -> list[dict]:
    return [metadata_brokers(node.address) for node in nodes]


def wait_for_mapping(nodes, expected, timeout_s: float, what: str) -> float:
    return wait_until(lambda: all(a == expected for a in answers(nodes)), timeout_s, what, 0.1)


@pytest.mark.lab
@pytest.mark.timeout(120)
def test_metadata_from_every_node_is_rack_local_and_a_rack_emptied_moves_and_returns(lab, start_node, tmp_path):
    nodes = three_racks(lab, start_node)
    expected = rack_local(lab, nodes)
    wait_for_mapping(nodes.values(), expected, 15, "every node to answer the rack-local mapping")
    # A current client that opens with ApiVersions v5 (franz-go, KIP-1242), bootstrapped from all three nodes: its
    # partitions' leaders are on every broker, so it produces, consumes in a group and administers through every node.
    seen = run_franz_go(lab, build_franz_go(tmp_path), ",".join(f"{n.address}:{PORT_START}" for n in nodes.values()),
                        unique("franz-cluster"))
    assert set(seen["brokers"]) == {f"{host}:{port}" for host, port, _ in expected.values()}, seen
    assert (seen["acked"], seen["consumed"], seen["distinct"], seen["end_offsets"]) == (500, 500, 500, 500), seen
    views = [json.loads(http_get(n.address, "/cluster")[1]) for n in nodes.values()]
    assert len({v["mapping_digest"] for v in views}) == 1
    assert [m["rack"] for m in views[0]["members"]] == RACKS
    assert all(v["membership"]["joined"] and v["membership"]["kafka_reachable"] for v in views)

    survivors = [nodes["rack-a"], nodes["rack-b"]]
    nodes["rack-c"].proc.send_signal(signal.SIGTERM)
    took = wait_until(lambda: all(a[3][0] != nodes["rack-c"].address for a in answers(survivors)), 5, "broker 3 to leave rack-c")
    print(f"\nclean leave: out of every Metadata answer {took:.2f}s after SIGTERM")
    assert nodes["rack-c"].proc.wait(20) == 0
    moved = answers(survivors)
    assert moved[0] == moved[1]
    assert moved[0][3][0] in (nodes["rack-a"].address, nodes["rack-b"].address) and moved[0][3][1:] == (PORT_START + 3, "rack-c")
    assert {b: moved[0][b] for b in (1, 2)} == {b: expected[b] for b in (1, 2)}

    nodes["rack-c"] = start_node("gw-rack-c", "rack-c", lab.gateway_addresses[2])
    nodes["rack-c"].wait_ready()
    wait_for_mapping(nodes.values(), expected, 10, "broker 3 back on the rack-c node")


@pytest.fixture
def client_load(lab, tmp_path):
    loads: list[ClientLoad] = []

    # The tests end their producers with stop_producers once they have checked what they need, so the count is only
    # a ceiling: a minute at 100/s, longer than any test's waits on a loaded machine. A producer that reaches its
    # count sends nothing more, and a later wait_acked_more fails naming it.
    def make(bootstrap: str, count: int = 6000, rate: float = 100) -> ClientLoad:
        load = ClientLoad(lab, tmp_path, bootstrap, count, rate)
        loads.append(load)
        return load

    yield make
    for load in loads:
        load.stop()
        load.delete()


@pytest.mark.lab
@pytest.mark.timeout(150)
def test_every_producer_of_the_counted_load_reports_a_send_that_failed(lab, start_node, tmp_path):
    """The chaos tests' verdict rests on the clients' own reports: a record sent to a topic that cannot exist must
    come back as a failure, by name, from each producer the load runs — not be counted as acknowledged."""
    node = start_node("gw-rack-a", "rack-a", lab.gateway_addresses[0])
    node.wait_ready()
    bootstrap, topic = f"{node.address}:{PORT_START}", "no such topic!"
    lib = subprocess.Popen(lab.client_cmd([sys.executable, str(CLIENTS), "produce", bootstrap, topic, "lib", "3", "100",
                                           str(tmp_path / "lib.events")]), stdout=subprocess.DEVNULL)
    java = subprocess.run(lab.client_cmd(verifiable_producer(lab, tmp_path, bootstrap, topic, 3, 100, JAVA_PREFIX)),
                          capture_output=True, text=True, timeout=120)
    producers = [outcomes.librdkafka_producer("librdkafka-producer", 3, (tmp_path / "lib.events").read_text().splitlines(),
                                              lib.wait(60)),
                 outcomes.verifiable_producer("java-producer", 3, java.stdout.splitlines(), java.returncode)]
    result = outcomes.figures(producers, [])
    print(f"\n{outcomes.summary(result)}")
    # librdkafka reports the first records in their delivery reports (TOPIC_EXCEPTION); once it has learnt that the
    # topic cannot exist, produce() itself may refuse the next one (_UNKNOWN_TOPIC): either is a failed send
    lib_errors = result["producers"]["librdkafka-producer"]["errors"]
    assert sum(lib_errors.values()) == 3 and set(lib_errors) <= {"TOPIC_EXCEPTION", "_UNKNOWN_TOPIC"}, lib_errors
    assert result["producers"]["java-producer"]["errors"] == {"InvalidTopicException": 3}
    assert sorted(outcomes.problems(result)) == sorted(
        [f"{count}x librdkafka-producer: {name}" for name, count in lib_errors.items()]
        + ["3x java-producer: InvalidTopicException"])


@pytest.mark.lab
@pytest.mark.timeout(150)
def test_kill_9_of_a_node_under_load_clients_carry_on_exactly_once(lab, start_node, client_load):
    """The victim is the node serving the consumer group's coordinator broker: the hardest case."""
    nodes = three_racks(lab, start_node)
    load = client_load(",".join(f"{n.address}:{PORT_START}" for n in nodes.values()))
    load.start()
    load.wait_flowing()

    victim_rack = lab.broker(coordinator_of(lab, load.group)).rack
    victim = nodes[victim_rack]
    survivors = [node for rack, node in nodes.items() if rack != victim_rack]
    killed_at = time.monotonic()
    victim.kill()
    took = wait_until(lambda: all(victim.address not in {e[0] for e in a.values()} for a in answers(survivors)),
                      MEMBERSHIP_BOUND_S + 5, "the dead node to leave every Metadata answer", 0.1)
    print(f"\nkill -9 of {victim.node_id} (group coordinator's node): out of every Metadata answer after {took:.2f}s "
          f"(bound {MEMBERSHIP_BOUND_S}s)")
    assert time.monotonic() - killed_at <= MEMBERSHIP_BOUND_S
    # the clients carry on: two seconds of records acknowledged after the node left every answer, then every one
    # of them (and all before) consumed exactly once
    load.wait_acked_more(2)
    load.stop_producers()
    load.finish_and_verify()


def read_if_there(path) -> str:
    return path.read_text() if path.exists() else ""


def refused_lookups(nodes) -> int:
    """FindCoordinator answers these nodes turned into COORDINATOR_NOT_AVAILABLE (cluster/topology.py)."""
    return sum(int(float(line.split()[-1])) for node in nodes
               for line in http_get(node.address, "/metrics")[1].decode().splitlines()
               if line.startswith("gateway_cluster_coordinator_lookups_refused_total"))


def coordinator_of(lab, group: str, patience_s: float = 10.0) -> int:
    """The broker coordinating `group`. Asked again for up to patience_s while the answer is an error: right after
    a leader election the brokers take a moment to agree who coordinates (NOT_COORDINATOR meanwhile)."""
    deadline = time.monotonic() + patience_s
    while True:
        admin = AdminClient({"bootstrap.servers": lab.bootstrap_servers})  # new each time: no stale cached coordinator
        try:
            return admin.describe_consumer_groups([group], request_timeout=10)[group].result().coordinator.id
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.lab
@pytest.mark.timeout(150)
def test_librdkafka_consumer_group_survives_the_death_of_its_coordinators_node(lab, start_node, client_load, tmp_path):
    """librdkafka keeps a coordinator's address for as long as FindCoordinator names the same id;
    the survivors refuse the first lookup of that coordinator on each client connection after the node
    left, which makes it look the coordinator up afresh (cluster/topology.py). Every acknowledged message is consumed exactly once."""
    nodes = three_racks(lab, start_node)
    bootstrap = ",".join(f"{n.address}:{PORT_START}" for n in nodes.values())
    load = client_load(bootstrap)
    consumer_log = tmp_path / "consumer.stderr"
    consumer = load.spawn(lab.client_cmd([
        sys.executable, str(CLIENTS), "consume", bootstrap, load.topic, load.group, str(tmp_path / "consumed"),
        str(tmp_path / "ready"), str(tmp_path / "stop"), "90"]), stderr=consumer_log.open("w"))
    wait_until(lambda: (tmp_path / "ready").exists(), 30, "the librdkafka consumer to get partitions", 0.2)
    producer = load.spawn(lab.client_cmd([sys.executable, str(CLIENTS), "produce", bootstrap, load.topic, "lib", "1500", "100",
                                           str(tmp_path / "sent")]), stdout=subprocess.PIPE, text=True)
    wait_until(lambda: '"error": null' in read_if_there(tmp_path / "sent") and read_if_there(tmp_path / "consumed").strip(),
               30, "a record acknowledged and one consumed before the kill", 0.2)
    victim = nodes[lab.broker(coordinator_of(lab, load.group)).rack]
    survivors = [node for node in nodes.values() if node is not victim]
    killed_at = time.time()
    victim.kill()
    summary = json.loads(producer.communicate(timeout=120)[0])
    (tmp_path / "stop").touch()
    assert consumer.wait(100) == 0
    sent = outcomes.librdkafka_producer("librdkafka-producer", 1500, (tmp_path / "sent").read_text().splitlines(),
                                        producer.returncode)
    assert outcomes.errors([sent], []) == [], summary
    acked = list(sent.acked)
    consumed = Counter((tmp_path / "consumed").read_text().split())
    missing = set(acked) - set(consumed)
    duplicated = {v: n for v, n in consumed.items() if n > 1}
    log = consumer_log.read_text()
    recovered = [float(t) for t in re.findall(r"commit ok again at ([\d.]+)", log)]
    refused = refused_lookups(survivors)
    stalls = [(float(took), float(done)) for took, done in re.findall(r"commit took ([\d.]+) s, done at ([\d.]+)", log)]
    back = f"ok again {recovered[0] - killed_at:.1f}s after the kill" if recovered else "never failed"
    if stalls:
        took, done = max(stalls)
        back += f"; longest commit {took:.1f}s, done {done - killed_at:.1f}s after the kill"
    print(f"\nlibrdkafka consumer group, coordinator's node {victim.node_id} killed: acked {len(acked)}, consumed "
          f"{sum(consumed.values())} ({len(consumed)} distinct), missing {len(missing)}, duplicated {len(duplicated)}; "
          f"commits failed {log.count('commit failed')}x, {back}; lookups refused by the survivors: {refused}")
    assert len(acked) == 1500
    assert not missing, sorted(missing)[:10]
    assert not duplicated, list(duplicated.items())[:10]
    assert "SESSTMOUT" not in log and "session timed out" not in log, "the consumer lost its group session"
    # A failed synchronous commit is an error the application is told; librdkafka holds the commit while it
    # looks for the coordinator instead (the "longest commit" above), so none may fail.
    assert "commit failed" not in log, re.findall(r"commit failed: .*", log)


GROUP_OF = {"aiokafka": "aio-{}", "kafka-python": "kp-{}", "group": "group-{}"}  # tests/e2e/dataplane_clients.py


@pytest.mark.lab
@pytest.mark.timeout(240)
def test_every_client_family_joins_a_group_while_its_coordinator_lookups_are_refused(lab, start_node):
    """After a node leaves, the first single-key FindCoordinator answer for the brokers it served on
    each client connection is COORDINATOR_NOT_AVAILABLE (for librdkafka's sake); aiokafka, kafka-python
    and librdkafka just look again. Each group here is coordinated by the dead node's broker."""
    nodes = three_racks(lab, start_node)
    victim, survivors = nodes["rack-c"], [nodes["rack-a"], nodes["rack-b"]]
    victim.kill()
    wait_until(lambda: all(victim.address not in {e[0] for e in a.values()} for a in answers(survivors)),
               MEMBERSHIP_BOUND_S + 5, "the dead node to leave every Metadata answer", 0.1)
    bootstrap = ",".join(f"{n.address}:{PORT_START}" for n in survivors)
    broker = next(b.id for b in lab.brokers if b.rack == "rack-c")
    leaders = offsets_leaders(lab)
    if broker not in leaders.values():  # restarted by an earlier test, before Kafka's 5-minute leader rebalance
        elect_preferred_leaders(lab)
        leaders = offsets_leaders(lab)
    topics = {}
    for scenario, group in GROUP_OF.items():
        topic = next((t for t in (unique(scenario) for _ in range(5000))
                      if leaders[offsets_partition(group.format(t), len(leaders))] == broker), None)
        assert topic is not None and coordinator_of(lab, group.format(topic)) == broker, (broker, leaders)
        topics[scenario] = topic
    # the three families side by side, each on its own connections: mostly waits (group joins), not CPU
    with ThreadPoolExecutor(len(topics)) as pool:
        results = dict(zip(topics, pool.map(
            lambda scenario: run_client(lab, scenario, "--bootstrap", bootstrap, "--topic", topics[scenario],
                                        "--count", "200"), topics)))
    for scenario, result in results.items():
        consumed = result.get("consumed", result.get("first"))
        print(f"\n{scenario} (group coordinated by broker {broker}): {result}")
        assert consumed == 200 and result.get("distinct", consumed) == 200, result
    refused = refused_lookups(survivors)
    print(f"coordinator lookups refused by the survivors: {refused}")
    assert refused > 0
    admin = AdminClient({"bootstrap.servers": lab.bootstrap_servers})
    for future in admin.delete_topics(list(topics.values()), request_timeout=10).values():
        future.exception()


def name_that_wins(broker_id: int, against: str) -> str:
    """A node id whose rendezvous score for broker_id beats `against`, so joining moves exactly that broker."""
    return next(f"gw-rack-a-{i}" for i in range(100) if score(f"gw-rack-a-{i}", broker_id) > score(against, broker_id))


@pytest.mark.lab
@pytest.mark.timeout(150)
def test_a_fourth_node_joins_takes_one_broker_then_leaves_cleanly_under_load(lab, start_node, client_load):
    nodes = three_racks(lab, start_node)
    before = rack_local(lab, nodes)
    load = client_load(",".join(f"{n.address}:{PORT_START}" for n in nodes.values()))
    load.start()
    load.wait_flowing()

    fourth = start_node(name_that_wins(1, "gw-rack-a"), "rack-a", lab.gateway_addresses[3])
    fourth.wait_ready()
    expected = {**before, 1: (fourth.address, PORT_START + 1, "rack-a")}
    wait_for_mapping([*nodes.values(), fourth], expected, 5, "broker 1 (and only it) to move to the fourth node")
    wait_until(lambda: b'gateway_client_connections_total{broker="1",port="6970"}' in http_get(fourth.address, "/metrics")[1],
               20, "clients to follow broker 1 to the fourth node", 0.5)
    load.wait_acked_more(1)  # traffic while the fourth node serves broker 1, before it leaves

    assert fourth.terminate() == 0
    wait_for_mapping(nodes.values(), before, 3, "broker 1 back on gw-rack-a after the clean leave")
    load.wait_acked_more(1)  # and after it left
    load.stop_producers()
    load.finish_and_verify()


@pytest.mark.lab
@pytest.mark.timeout(120)
def test_external_load_balancing_advertises_the_load_balancer_and_any_node_serves_any_port(lab, start_node, client_load):
    lb_address = lab.gateway_addresses[4]
    nodes = three_racks(lab, start_node, internal_load_balancing=False, advertised_host=lb_address)
    for answer in answers(nodes.values()):
        assert answer == {b.id: (lb_address, PORT_START + b.id, b.rack) for b in lab.brokers}
    ports = range(PORT_START, PORT_START + 1 + len(lab.brokers))
    with PortForwarder(lb_address, ports, [n.address for n in nodes.values()]):
        load = client_load(f"{lb_address}:{PORT_START}")
        load.start()
        # the clients' connections are all open once both producers are acknowledged and the group commits on every
        # partition; a second more of records through them, then every acknowledged record consumed once, as before
        load.wait_flowing()
        load.wait_acked_more(1)
        load.stop_producers()
        load.finish_and_verify()
    for node in nodes.values():
        metrics = http_get(node.address, "/metrics")[1].decode()
        served = [line for line in metrics.splitlines()
                  if line.startswith("gateway_client_connections_total{") and 'broker="bootstrap"' not in line]
        assert served, f"{node.node_id} served no broker port"

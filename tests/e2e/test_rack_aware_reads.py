"""Rack-aware reads through the gateway (issue 29, KIP-392): consumers of every client family in each rack's client
namespace, none of them setting client.rack, read each partition from the replica in their own rack, through the
gateway node in their own rack.

A gateway cluster of three nodes, one per rack, on the controller's gateway addresses, given the lab's client
networks (GATEWAY_CLIENT_RACK_NETWORKS, the inventory's gateway_client_networks); the lab's brokers run the
rack-aware replica selector. One counted data set, on a topic with replication factor 3 and two leaders in every rack,
is read by every consumer. Two counts of where the bytes came from: each node's Fetch response bytes by (client rack,
broker rack), and librdkafka's received bytes per broker, which the gateway does not count. A consumer outside every
client network (the lab's client namespace) has no rack: it reads from the leaders, and from any rack's point of
view two-thirds of its bytes cross racks — what every check here would see if the gateway did nothing.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from lab.clients.cluster_clients import LOG4J2
from lab.gateway_process import forget_cluster, metric_sum
from lab.kafka import LEAN_JVM
from tests.e2e.cluster_support import PORT_START, ClusterNode, elect_preferred_leaders, metadata_brokers, wait_until
from tests.e2e.dataplane_support import PYTHON, REPO, unique
from tests.e2e.rack_clients import ID_WIDTH, record_id
from tests.e2e.rack_timeline import PipeLines, reading_from, samples, window
from tests.e2e.rack_timeline import share as stats_share

pytestmark = pytest.mark.lab

RACKS = ("rack-a", "rack-b", "rack-c")
NO_RACK = "none"  # the gateway's rack label for a client (or broker) it knows no rack of
FETCH_BYTES = "gateway_fetch_response_bytes_total"
RACK_ASSIGNED = "gateway_fetch_rack_assigned_total"
RACK_WITHHELD = "gateway_fetch_rack_withheld_total"
RECORDS, RECORD_BYTES = 3000, 1000
DATA_BYTES = RECORDS * RECORD_BYTES
IN_RACK = 0.99  # of a consumer's fetched bytes, from its own rack's broker through its own rack's node
# Each partition's replicas, leader first: two partitions led in every rack, every rack holding every partition.
REPLICAS = [[1, 2, 3], [2, 3, 1], [3, 1, 2], [1, 3, 2], [2, 1, 3], [3, 2, 1]]
CONSUMER_DEADLINE_S = 20
JAVA_IDLE_S = 8  # the restart test's console consumer ends once no record came for this long (if not stopped before)
JVM_SIGTERM_EXIT = 128 + signal.SIGTERM  # a JVM ended by SIGTERM exits with this once its shutdown hooks ran
# The restart test's bounds: its producer and consumers stop by then at the latest (a broker's start took 34 s on a
# loaded 2-core machine), and reads must be back in the rack within BACK_IN_RACK_S of the broker's start.
RESTART_TEST_MAX_S = 240
BACK_IN_RACK_S = 60
FAMILIES = ("librdkafka", "java", "kafka-python", "aiokafka")
# The families whose software (KIP-511 client_software_name) GATEWAY_CLIENT_RACK_SOFTWARE names by default: they
# follow a preferred read replica they did not ask for. aiokafka 0.14 follows one only when it set client_rack itself.
FOLLOWING = ("librdkafka", "java", "kafka-python")


# --- the gateway cluster and the data -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def nodes(lab, tmp_path_factory):
    """One node per rack, each given the lab's client networks; ready and answering the rack-local mapping."""
    cluster_id = unique("rack-reads")
    networks = ",".join(f"{rack}={net}" for rack, nets in lab.client_networks.items() for net in nets)
    log_dir = tmp_path_factory.mktemp("rack-nodes")
    started = {rack: ClusterNode(lab, cluster_id, f"gw-{rack}", rack, address, log_dir,
                                 GATEWAY_CLIENT_RACK_NETWORKS=networks)
               for rack, address in zip(RACKS, lab.gateway_addresses)}
    try:
        for node in started.values():
            node.wait_ready()
        rack_local = {b.id: (started[b.rack].address, PORT_START + b.id, b.rack) for b in lab.brokers}
        wait_until(lambda: all(metadata_brokers(n.address) == rack_local for n in started.values()), 20,
                   "every node to answer the rack-local mapping", 0.2)
        yield started
    finally:
        for node in started.values():
            if node.alive():
                node.proc.send_signal(signal.SIGTERM)
        codes = {}
        for rack, node in started.items():
            try:
                codes[rack] = node.proc.wait(30)
            except subprocess.TimeoutExpired:
                node.kill()
                codes[rack] = "hung"
        forget_cluster(lab.bootstrap_servers, cluster_id)
    assert codes == {rack: 0 for rack in RACKS}, codes
    assert not [p for node in started.values() for p in node.log_problems()]


def spread_topic(lab, prefix: str) -> str:
    """A topic with REPLICAS' assignment, once every partition's leader is its first replica."""
    topic = unique(prefix)
    admin = AdminClient({"bootstrap.servers": lab.bootstrap_servers})
    # confluent-kafka wants the partition count beside an assignment (its -1 default reads as "the broker's")
    new = NewTopic(topic, len(REPLICAS), replica_assignment=REPLICAS, config={"min.insync.replicas": "2"})
    admin.create_topics([new], request_timeout=30)[topic].result(40)

    def leaders_in_place() -> bool:
        partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: m.leader for p, m in partitions.items()} == {p: r[0] for p, r in enumerate(REPLICAS)}

    wait_until(leaders_in_place, 20, f"{topic}'s leaders", 0.2)
    return topic


def record(number: int) -> bytes:
    return f"{number:0{ID_WIDTH}d}:".encode().ljust(RECORD_BYTES, b"x")


@pytest.fixture(scope="module")
def data(lab) -> str:
    """RECORDS records on a spread topic, every one acknowledged by all in-sync replicas (straight to the brokers)."""
    topic = spread_topic(lab, "rack-reads")
    acked: list[int] = []
    producer = Producer({"bootstrap.servers": lab.bootstrap_servers, "acks": "all", "linger.ms": 20})
    for number in range(RECORDS):
        producer.produce(topic, record(number), partition=number % len(REPLICAS),
                         on_delivery=lambda error, message: acked.append(1) if error is None else None)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert len(acked) == RECORDS
    return topic


@pytest.fixture(scope="module")
def log4j(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("log4j") / "log4j2.properties"
    path.write_text(LOG4J2)  # the tools log to stderr: stdout carries the records only
    return str(path)


# --- the counts ---------------------------------------------------------------------------------------------------

@dataclass
class Scrape:
    """Every node's /metrics at one moment, by the node's rack (parsed only when counted: a gateway without the
    counters fails at the first check that needs them, after the clients' own counts)."""

    texts: dict[str, str]
    at: float

    @classmethod
    def of(cls, nodes: dict[str, ClusterNode]) -> "Scrape":
        texts = {}
        for rack, node in nodes.items():
            status, texts[rack] = node.http("/metrics")
            assert status == 200, f"/metrics of {node.node_id} answered {status}"
        return cls(texts, time.time())


@dataclass
class Counters:
    """What the gateway cluster's rack counters counted between two scrapes: Fetch response bytes by (node's rack,
    client rack, broker rack), and Fetch requests relayed with a rack the gateway gave them, by rack."""

    bytes: Counter
    assigned: Counter
    withheld: Counter

    @staticmethod
    def _parse(scrape: Scrape) -> tuple[Counter, Counter, Counter]:
        bytes_, assigned, withheld = Counter(), Counter(), Counter()
        for node_rack, text in scrape.texts.items():
            for client in (*RACKS, NO_RACK):
                for broker in (*RACKS, NO_RACK):
                    bytes_[(node_rack, client, broker)] = metric_sum(
                        text, FETCH_BYTES, {"client_rack": client, "broker_rack": broker})
            for rack in RACKS:
                assigned[rack] += metric_sum(text, RACK_ASSIGNED, {"rack": rack})
                withheld[rack] += metric_sum(text, RACK_WITHHELD, {"rack": rack})
        return bytes_, assigned, withheld

    @classmethod
    def between(cls, earlier: Scrape, later: Scrape) -> "Counters":
        return cls(*(Counter({k: v - old[k] for k, v in new.items()})
                     for old, new in zip(cls._parse(earlier), cls._parse(later))))

    def fetched(self, client_rack: str) -> float:
        return sum(v for (_, client, _), v in self.bytes.items() if client == client_rack)

    def local(self, rack: str) -> float:
        """Bytes a client of `rack` got from `rack`'s broker through `rack`'s node."""
        return self.bytes[(rack, rack, rack)]

    def in_rack_share(self, client_rack: str, rack: str | None = None) -> float:
        """Share of a client rack's bytes that came from `rack`'s broker (default: its own) through `rack`'s node."""
        rack = rack or client_rack
        total = self.fetched(client_rack)
        return self.bytes[(rack, client_rack, rack)] / total if total else 0.0


def broker_in(lab, rack: str) -> int:
    return next(b.id for b in lab.brokers if b.rack == rack)


# --- the consumers ------------------------------------------------------------------------------------------------

def bootstrap(nodes, rack: str) -> str:
    return f"{nodes[rack].address}:{PORT_START}"


def consumer_cmd(lab, family: str, bootstrap_servers: str, topic: str, netns_rack: str | None, log4j: str,
                 *options: str) -> list[str]:
    """A consumer of `family` in `netns_rack`'s client namespace (None: the lab's client namespace, in no rack);
    Kafka's console consumer (in a group of its own) takes its own options (--max-messages, --timeout-ms)."""
    if family == "java":
        argv = ["java", *LEAN_JVM, f"-Dlog4j2.configurationFile={log4j}",
                "-cp", lab.java_classpath, "org.apache.kafka.tools.consumer.ConsoleConsumer",
                "--bootstrap-server", bootstrap_servers, "--topic", topic, "--from-beginning",
                "--group", f"java-{netns_rack}-{topic}", *options]
    else:
        argv = [PYTHON, "-m", "tests.e2e.rack_clients", family, "--bootstrap", bootstrap_servers, "--topic", topic,
                "--partitions", str(len(REPLICAS)), "--max-s", str(CONSUMER_DEADLINE_S), *options]
    return lab.client_cmd(argv, rack=netns_rack)


def java_result(stdout: str) -> dict:
    ids = Counter(record_id(line.encode()) for line in stdout.splitlines() if line[:ID_WIDTH].isdigit())
    return {"consumed": sum(ids.values()), "distinct": len(ids),
            "duplicates": sum(n - 1 for n in ids.values() if n > 1), "ids": sorted(int(i) for i in ids)}


def counted_options(family: str) -> tuple[str, ...]:
    if family == "java":
        return "--max-messages", str(RECORDS), "--timeout-ms", str(CONSUMER_DEADLINE_S * 1000)
    return "--count", str(RECORDS)


def consumer_result(family: str, stdout: str) -> dict:
    return java_result(stdout) if family == "java" else last_json(stdout)


def run_together(commands: dict[str, list[str]], timeout_s: float = CONSUMER_DEADLINE_S + 30) -> dict[str, str]:
    """Start every command at once; each one's stdout once all have exited 0."""
    procs = {name: subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, argv in commands.items()}
    deadline = time.monotonic() + timeout_s
    outputs, failures = {}, {}
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            outputs[name] = out
            if proc.returncode != 0:
                failures[name] = f"exit {proc.returncode}: {err[-2000:]}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert not failures, failures
    return outputs


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def exactly_once(result: dict, expected: set[int]) -> bool:
    return result["duplicates"] == 0 and set(result["ids"]) == expected and result["consumed"] == len(expected)


def brief(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "ids"}


# --- the tests ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", FOLLOWING)
def test_consumers_in_every_rack_read_from_their_own_rack_through_their_own_rack_node(lab, nodes, data, log4j, family):
    before = Scrape.of(nodes)
    outputs = run_together({rack: consumer_cmd(lab, family, bootstrap(nodes, rack), data, rack, log4j,
                                               *counted_options(family)) for rack in RACKS})
    after = Scrape.of(nodes)
    results = {rack: consumer_result(family, out) for rack, out in outputs.items()}
    for rack in RACKS:
        assert exactly_once(results[rack], set(range(RECORDS))), (rack, brief(results[rack]))
    if family == "librdkafka":
        own = {rack: round(stats_share(results[rack]["rxbytes"], broker_in(lab, rack)), 5) for rack in RACKS}
        print(f"\nlibrdkafka's own count: share of its bytes from the broker in its rack {own}, "
              f"rxbytes { {r: results[r]['rxbytes'] for r in RACKS} }")
        assert all(share >= IN_RACK for share in own.values()), own
    delta = Counters.between(before, after)
    shares = {rack: round(1 - delta.in_rack_share(rack), 5) for rack in RACKS}
    print(f"\n{family}: cross-rack share by the gateway's counters {shares}, fetched "
          f"{ {r: int(delta.fetched(r)) for r in RACKS} }, racks assigned {dict(delta.assigned)}")
    for rack in RACKS:
        assert delta.fetched(rack) >= DATA_BYTES, (rack, delta.fetched(rack))  # this consumer's bytes were counted
        assert delta.in_rack_share(rack) >= IN_RACK, (rack, shares)
        assert delta.assigned[rack] > 0, dict(delta.assigned)
    if family == "librdkafka":  # both counts saw the same reads: Fetch responses are most of what librdkafka received
        for rack in RACKS:
            received = sum(results[rack]["rxbytes"].values())
            assert 0.9 <= delta.fetched(rack) / received <= 1.0, (rack, delta.fetched(rack), received)


def test_a_client_that_ignores_preferred_replicas_is_given_no_rack_and_reads_everything(lab, nodes, data, log4j):
    """aiokafka 0.14 follows a preferred read replica only when it set client_rack itself: given a rack, it would fetch
    other racks' partitions from their leaders forever and get no records (it read 1000 of 3000 that way). Its
    software is not in GATEWAY_CLIENT_RACK_SOFTWARE, so the gateway withholds the rack (counted) and it reads every
    record from the leaders, two-thirds of them across racks."""
    before = Scrape.of(nodes)
    outputs = run_together({rack: consumer_cmd(lab, "aiokafka", bootstrap(nodes, rack), data, rack, log4j,
                                               *counted_options("aiokafka")) for rack in RACKS})
    after = Scrape.of(nodes)
    for rack, output in outputs.items():
        result = last_json(output)
        assert exactly_once(result, set(range(RECORDS))), (rack, brief(result))
    delta = Counters.between(before, after)
    cross = {rack: round(1 - delta.in_rack_share(rack), 4) for rack in RACKS}
    print(f"\naiokafka in racks: withheld {dict(delta.withheld)}, assigned {dict(delta.assigned)}, cross-rack {cross}")
    assert sum(delta.assigned.values()) == 0, dict(delta.assigned)
    assert all(delta.withheld[rack] > 0 for rack in RACKS), dict(delta.withheld)
    assert all(0.55 <= share <= 0.78 for share in cross.values()), cross


@pytest.mark.parametrize("family", FAMILIES)
def test_a_consumer_in_no_rack_reads_two_thirds_across_racks(lab, nodes, data, log4j, family):
    """The checks above can fail: a consumer outside every client network (the lab's client namespace) gets no rack,
    reads each partition from its leader, and two-thirds of its bytes come from other racks' brokers, whichever rack
    it is looked at from."""
    before = Scrape.of(nodes)
    output = run_together({"no-rack": consumer_cmd(lab, family, bootstrap(nodes, "rack-a"), data, None, log4j,
                                                   *counted_options(family))})["no-rack"]
    after = Scrape.of(nodes)
    result = consumer_result(family, output)
    assert exactly_once(result, set(range(RECORDS))), brief(result)
    if family == "librdkafka":
        own = {rack: round(1 - stats_share(result["rxbytes"], broker_in(lab, rack)), 4) for rack in RACKS}
        print(f"\nno rack, librdkafka's own count: cross-rack share seen from each rack {own}")
        assert all(0.55 <= share <= 0.78 for share in own.values()), own
    delta = Counters.between(before, after)
    cross = {rack: round(1 - delta.in_rack_share(NO_RACK, rack), 4) for rack in RACKS}
    print(f"\n{family} in no rack: cross-rack share seen from each rack, the gateway's count {cross}; "
          f"racks assigned {dict(delta.assigned)}")
    assert delta.fetched(NO_RACK) >= DATA_BYTES
    assert all(0.55 <= share <= 0.78 for share in cross.values()), cross
    assert sum(delta.assigned.values()) == 0, dict(delta.assigned)


def test_a_client_rack_of_the_consumers_own_is_kept(lab, nodes, data, log4j):
    """librdkafka in rack-a's namespace with client.rack=rack-b reads from rack-b's broker: the gateway gives it
    nothing."""
    before = Scrape.of(nodes)
    output = run_together({"own-rack": consumer_cmd(lab, "librdkafka", bootstrap(nodes, "rack-a"), data, "rack-a", log4j,
                                                    "--count", str(RECORDS), "--client-rack", "rack-b")})["own-rack"]
    after = Scrape.of(nodes)
    result = last_json(output)
    kept = stats_share(result["rxbytes"], broker_in(lab, "rack-b"))
    print(f"\nclient.rack=rack-b from rack-a: {kept:.5f} of its bytes from rack-b's broker")
    assert exactly_once(result, set(range(RECORDS))), brief(result)
    assert kept >= IN_RACK, result["rxbytes"]
    delta = Counters.between(before, after)
    assert sum(delta.assigned.values()) == 0, dict(delta.assigned)
    assert sum(v for (node, _, broker), v in delta.bytes.items() if node == broker == "rack-b") >= DATA_BYTES


class PacedProducer:
    """Records at a steady rate straight to the brokers (acks=all, idempotent) until stopped, at most max_s: which
    numbers were acknowledged."""

    def __init__(self, lab, topic: str, per_second: int = 250, max_s: float = 90.0) -> None:
        self.topic, self.per_second, self.max_s = topic, per_second, max_s
        self.acked: set[int] = set()
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self.producer = Producer({"bootstrap.servers": lab.bootstrap_servers, "acks": "all", "enable.idempotence": True,
                                  "linger.ms": 10})
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _delivered(self, error, message) -> None:
        if error is None:
            self.acked.add(int(record_id(message.value())))
        else:
            self.errors.append(str(error))

    def _run(self) -> None:
        start, number = time.monotonic(), 0
        while not self.stopping.is_set() and time.monotonic() - start < self.max_s:
            due = int((time.monotonic() - start) * self.per_second)
            while number < due:
                self.producer.produce(self.topic, record(number), partition=number % len(REPLICAS),
                                      on_delivery=self._delivered)
                number += 1
            self.producer.poll(0.02)
        self.producer.flush(60)
        self.sent = number
        self.ran_out = not self.stopping.is_set()  # stopped by max_s, not by the test

    def __enter__(self) -> "PacedProducer":
        self.thread.start()
        return self

    def stop(self) -> set[int]:
        self.stopping.set()
        self.thread.join(90)
        return self.acked

    def __exit__(self, *exc) -> None:
        self.stop()


def lab_broker(action: str, broker_id: int) -> float:
    """`lab broker stop|start ID` (start returns once the broker is in Metadata again): the seconds it took."""
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "lab", "broker", action, str(broker_id)], cwd=REPO,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return time.monotonic() - began


def scrapes_over(nodes, seconds: float) -> tuple[Scrape, Scrape]:
    first = Scrape.of(nodes)
    time.sleep(seconds)
    return first, Scrape.of(nodes)


def consumed_at(timeline: list[dict], moment: float) -> int:
    earlier = [s for s in timeline if s["t"] <= moment]
    return earlier[-1]["consumed"] if earlier else 0


def wait_in_rack(nodes, rack: str, what: str, timeout_s: float = 30,
                 librdkafka: PipeLines | None = None, broker: int | None = None) -> float | str:
    """Until, over one second, the rack's clients read (enough to tell) and IN_RACK of it from their own rack, and
    (given its output) librdkafka's own count says the same of its latest second: it alone can tell that it reads
    again, beside a console consumer that carries the gateway's count. The seconds it took; on timeout, what timed
    out, the last second's bytes by (node, client rack, broker rack) and librdkafka's latest sample."""
    last: list[Counters] = []

    def in_rack() -> bool:
        first = Scrape.of(nodes)
        time.sleep(1)
        last[:] = [Counters.between(first, Scrape.of(nodes))]
        gateway = last[0].fetched(rack) > 100_000 and last[0].in_rack_share(rack) >= IN_RACK
        return gateway and (librdkafka is None or
                            reading_from(samples(librdkafka.snapshot()), broker, IN_RACK, 100_000))

    try:
        return wait_until(in_rack, timeout_s, what, 0)
    except AssertionError as timed_out:
        seen = {k: v for k, v in last[0].bytes.items() if v and k[1] == rack} if last else {}
        own = samples(librdkafka.snapshot())[-2:] if librdkafka else None
        return f"{timed_out}; {rack}'s clients' bytes over the last second: {seen}; librdkafka's latest samples {own}"


def test_the_in_rack_broker_stops_consumers_read_from_the_leaders_and_come_back(lab, nodes, log4j, tmp_path):
    rack = "rack-c"
    broker = broker_in(lab, rack)
    topic = spread_topic(lab, "rack-restart")
    count_file = tmp_path / "count"
    # librdkafka stops at the producer's count (written once it is done); Kafka's console consumer, which cannot read
    # that count, is stopped once its output holds every acknowledged record (or ends itself once no record came for
    # JAVA_IDLE_S). kafka-python 3.0.12 and aiokafka 0.14 are left out here: with a client.rack of their own,
    # straight to the brokers, both stop making progress once the broker they fetched from comes back (their own
    # failover, not the gateway's).
    options = {"librdkafka": ("--count-file", str(count_file), "--max-s", str(RESTART_TEST_MAX_S), "--timeline"),
               "java": ("--timeout-ms", str(JAVA_IDLE_S * 1000))}
    stopped = java_stopped = False
    with PacedProducer(lab, topic, max_s=RESTART_TEST_MAX_S) as producer:
        consumers = {family: subprocess.Popen(
            consumer_cmd(lab, family, bootstrap(nodes, rack), topic, rack, log4j, *family_options),
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for family, family_options in options.items()}
        # read as they write: a full pipe would stall a consumer in its own print
        pipes = {family: (PipeLines(proc.stdout), PipeLines(proc.stderr)) for family, proc in consumers.items()}
        own_count = {"librdkafka": pipes["librdkafka"][0], "broker": broker}
        try:
            reading = wait_in_rack(nodes, rack, f"{rack}'s consumers reading in their rack", BACK_IN_RACK_S, **own_count)
            assert isinstance(reading, float), reading
            before_scrapes = scrapes_over(nodes, 3)
            stopped = True
            stop_s = lab_broker("stop", broker)
            outage_scrapes = scrapes_over(nodes, 4)
            start_s = lab_broker("start", broker)
            stopped = False
            print(f"\nbroker {broker} stopped in {stop_s:.1f}s, started (in Metadata again) in {start_s:.1f}s")
            # Measured to the end either way: a consumer that stays away is named by its own count below.
            took = wait_in_rack(nodes, rack, f"{rack}'s consumers back on broker {broker}", BACK_IN_RACK_S, **own_count)
            after_start = Scrape.of(nodes)
            time.sleep(3)
            acked = producer.stop()
            count_file.write_text(str(producer.sent))
            java_out = pipes["java"][0]
            try:
                wait_until(lambda: set(java_result("\n".join(java_out.snapshot()))["ids"]) >= acked
                           or consumers["java"].poll() is not None, 60 + JAVA_IDLE_S,
                           "the console consumer to have printed every acknowledged record", 0.2)
            except AssertionError:
                pass  # what it did not read is named by the exactly-once check below
            if consumers["java"].poll() is None:
                java_stopped = True
                consumers["java"].send_signal(signal.SIGTERM)
            for proc in consumers.values():
                proc.wait(timeout=60 + JAVA_IDLE_S)
            outputs = {family: (out.text(), err.text()) for family, (out, err) in pipes.items()}
            after_end = Scrape.of(nodes)
        finally:
            for proc in consumers.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            if stopped:
                lab_broker("start", broker)
            elect_preferred_leaders(lab)
    for family, (out, err) in outputs.items():
        ended_as_asked = family == "java" and java_stopped and consumers[family].returncode == JVM_SIGTERM_EXIT
        assert consumers[family].returncode == 0 or ended_as_asked, (family, err[-2000:])
    timeline = samples(outputs["librdkafka"][0].splitlines())
    results = {"librdkafka": last_json(outputs["librdkafka"][0]), "java": java_result(outputs["java"][0])}
    windows = {"before": before_scrapes, "outage": outage_scrapes, "after": (after_start, after_end)}
    before, outage, after = (Counters.between(*windows[name]) for name in ("before", "outage", "after"))
    own = {name: window(timeline, first.at, last.at) for name, (first, last) in windows.items()}
    print(f"\nbroker {broker} stopped: {rack} in-rack share before {before.in_rack_share(rack):.5f}, during the outage "
          f"{outage.in_rack_share(rack):.5f}, after {after.in_rack_share(rack):.5f} (back: {took}); "
          f"librdkafka's bytes per broker {own}, its partitions' (fetched from, leader) at the end "
          f"{timeline[-1]['fetching'] if timeline else None}; acked {len(acked)} of {producer.sent}, errors "
          f"{producer.errors[:3]}; { {f: brief(r) for f, r in results.items()} }; the console consumer "
          f"{'stopped once it had printed every acknowledged record' if java_stopped else 'ended itself'}")
    # Bounds reached before the test was done leave the last window without records: a loaded run once ended both
    # the producer (then 90 s) and librdkafka (then 100 s) before it began.
    assert not producer.ran_out and not results["librdkafka"]["deadline_reached"], \
        (producer.sent, brief(results["librdkafka"]))
    assert len(acked) == producer.sent and not producer.errors
    for family, result in results.items():
        assert exactly_once(result, acked), (family, brief(result))
    assert before.in_rack_share(rack) >= IN_RACK and stats_share(own["before"], broker) >= IN_RACK
    # During the outage the consumers read on, from the partitions' leaders in the other racks.
    assert outage.local(rack) == 0 and outage.fetched(rack) > 0
    assert consumed_at(timeline, outage_scrapes[1].at) > consumed_at(timeline, outage_scrapes[0].at)
    assert sum(v for b, v in own["outage"].items() if b != str(broker)) > 0
    assert stats_share(own["after"], broker) >= IN_RACK, own["after"]
    assert isinstance(took, float) and after.in_rack_share(rack) >= IN_RACK, took

"""Client-side checks the molecule scenarios run from the lab's client namespace (no route to the brokers).

    metadata   every broker is advertised where the scenario expects: a gateway in the broker's rack
               (internal load balancing) or the load balancer (external), on that broker's gateway port
    roundtrip  produce N messages with acks=all through the gateway and consume every one back
    soak       a producer and a consumer group run until a stop file appears (bounded by --max-seconds);
               every message sent must be acknowledged, every acknowledged one consumed (with --exactly-once:
               once), and no delivery, commit or consume may fail; client-level errors (librdkafka's error_cb,
               a consumer's non-fatal errors) are reported by name beside them, and a fatal one is a problem
    handshake  a TLS handshake with the gateway (--ca, optional --cert/--key): prints the certificate it presents,
               and fails unless it is --expect-cert (or, with --expect-refused, unless the gateway refuses)

--config KEY=VALUE adds a librdkafka property (TLS, SASL) to every client a check makes.

Each check prints one JSON line with its findings and exits non-zero when a promise is broken.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import ssl
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT_S = 30
# The consumer group's session: librdkafka's (and Kafka's) default, what an application gets. The soak's consumer
# must keep its group membership through every gateway restart; a session of 10 s was lost during a rollback on a
# loaded 2-core machine (load 9-14: each node's restart cuts the coordinator connection, and the client, the gateways
# and the brokers all wait for CPU), and the group re-read the records after its last commit. A gateway that keeps the
# coordinator away longer than this, or hands a record out twice, still fails.
SESSION_TIMEOUT_MS = 45000
CLIENT_CONFIG: dict[str, str] = {}  # --config: extra properties of every client this run makes


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000, **CLIENT_CONFIG})


def describe_cluster(bootstrap: str) -> list[dict[str, Any]]:
    client = admin(bootstrap)  # kept referenced: a collected client cancels its futures
    nodes = client.describe_cluster(request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S).nodes
    return [{"id": n.id, "host": n.host, "port": n.port, "rack": n.rack} for n in nodes]


def check_metadata(args: argparse.Namespace) -> list[str]:
    """Problems with the advertised addresses; `--gateways` maps advertised host -> rack."""
    gateways: dict[str, str] = json.loads(args.gateways)
    problems = []
    nodes = describe_cluster(args.bootstrap)
    if len(nodes) != args.brokers:
        problems.append(f"expected {args.brokers} brokers, Metadata lists {len(nodes)}")
    for node in nodes:
        expected_port = args.port_start + 1 + node["id"] - args.min_broker_id
        if node["port"] != expected_port:
            problems.append(f"broker {node['id']} advertised on port {node['port']}, expected {expected_port}")
        if args.lb_host:
            if node["host"] != args.lb_host:
                problems.append(f"broker {node['id']} advertised at {node['host']}, expected the load balancer {args.lb_host}")
        elif node["host"] not in gateways:
            problems.append(f"broker {node['id']} advertised at {node['host']}, which is no gateway: {sorted(gateways)}")
        elif gateways[node["host"]] != node["rack"]:
            problems.append(
                f"broker {node['id']} (rack {node['rack']}) mapped to gateway {node['host']} in rack {gateways[node['host']]}"
            )
    print(json.dumps({"check": "metadata", "nodes": nodes, "problems": problems}))
    return problems


def ensure_topic(bootstrap: str, topic: str, partitions: int) -> None:
    client = admin(bootstrap)
    futures = client.create_topics([NewTopic(topic, partitions, 3)], request_timeout=TIMEOUT_S)
    for future in futures.values():
        try:
            future.result(timeout=TIMEOUT_S)
        except Exception as err:  # an existing topic is fine
            if "TOPIC_ALREADY_EXISTS" not in str(err):
                raise


def delete_topic(bootstrap: str, topic: str) -> None:
    """Leave the shared lab cluster as it was found."""
    client = admin(bootstrap)
    for future in client.delete_topics([topic], request_timeout=TIMEOUT_S).values():
        future.result(timeout=TIMEOUT_S)


ErrorCallback = Callable[[KafkaError], None]


def producer(bootstrap: str, on_error: ErrorCallback | None = None) -> Producer:
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                              **CLIENT_CONFIG}
    if on_error is not None:
        config["error_cb"] = on_error
    return Producer(config)


def consumer(bootstrap: str, group: str, on_commit: Callable[[KafkaError | None, list], None] | None = None,
             on_error: ErrorCallback | None = None) -> Consumer:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        **CLIENT_CONFIG,
    }
    if on_commit is not None:
        config["on_commit"] = on_commit
    if on_error is not None:
        config["error_cb"] = on_error
    return Consumer(config)


def check_roundtrip(args: argparse.Namespace) -> list[str]:
    topic = args.topic
    ensure_topic(args.bootstrap, topic, 3)
    sent = {f"m{i}" for i in range(args.count)}
    failed: list[str] = []
    prod = producer(args.bootstrap)
    for value in sorted(sent):
        prod.produce(topic, value.encode(), on_delivery=lambda err, msg: err and failed.append(str(err)))
    remaining = prod.flush(TIMEOUT_S)
    cons = consumer(args.bootstrap, f"{topic}-group")
    cons.subscribe([topic])
    received: set[str] = set()
    deadline = time.monotonic() + TIMEOUT_S
    consume_errors: Counter[str] = Counter()
    while received != sent and time.monotonic() < deadline:
        msg = cons.poll(1.0)
        if msg is not None and msg.error():
            consume_errors[msg.error().name()] += 1
        elif msg is not None:
            received.add(msg.value().decode())
    cons.close()
    problems = [f"delivery failed: {e}" for e in failed[:5]]
    problems += [f"consume error: {count}x {name}" for name, count in consume_errors.items()]
    if remaining:
        problems.append(f"{remaining} messages never acknowledged")
    if received != sent:
        problems.append(f"consumed {len(received)} of {len(sent)} messages")
    print(json.dumps({"check": "roundtrip", "bootstrap": args.bootstrap, "sent": len(sent), "received": len(received),
                      "problems": problems}))
    return problems


class Soak:
    """Producer and consumer group running side by side; what was acknowledged and what was consumed."""

    def __init__(self, bootstrap: str, topic: str, rate: int, on_flowing: Callable[[], None] = lambda: None) -> None:
        self.bootstrap, self.topic, self.rate = bootstrap, topic, rate
        self.on_flowing = on_flowing  # called once, at the first record consumed: the clients run end to end
        self.sent = 0
        self.acked: set[str] = set()
        self.failed: list[str] = []
        self.unanswered = 0  # still queued or in flight when the final flush gave up
        self.client_errors: Counter[str] = Counter()  # error_cb and non-fatal consume errors, by client and name
        self.fatal_errors: list[str] = []
        self.consumed: set[str] = set()
        self.deliveries: Counter[str] = Counter()  # how often the group consumed each value
        self.positions: dict[str, set[tuple[int, int]]] = {}  # where in the log (partition, offset) each value was
        self.partitions_lost = 0  # partitions the consumer was told it lost (its session expired): re-reads follow
        self.consumer_errors: list[str] = []
        self.commit_errors: list[str] = []
        self.commits_ok = 0
        self.producing = threading.Event()
        self.consuming = threading.Event()

    def client_error(self, client: str) -> ErrorCallback:
        """librdkafka's error_cb: errors of the client itself (a connection, all brokers down), not of a message."""
        def told(error: KafkaError) -> None:
            self.client_errors[f"{client}: {error.name()}"] += 1
            if error.fatal():
                self.fatal_errors.append(f"{client}: {error}")
        return told

    def produce(self, stop_file: Path, max_seconds: float) -> None:
        prod = producer(self.bootstrap, on_error=self.client_error("producer"))

        def delivered(err: KafkaError | None, msg: Any) -> None:
            if err:
                self.failed.append(str(err))
            else:
                self.acked.add(msg.value().decode())

        deadline = time.monotonic() + max_seconds
        seq = 0
        while not stop_file.exists() and time.monotonic() < deadline:
            prod.produce(self.topic, f"s{seq}".encode(), on_delivery=delivered)
            seq += 1
            prod.poll(1.0 / self.rate)
        self.unanswered = prod.flush(TIMEOUT_S)
        self.sent = seq
        self.producing.clear()

    def committed(self, err: KafkaError | None, partitions: list) -> None:
        """The auto-commit's outcome, as an application's on_commit callback is told it."""
        errors = [err] if err is not None else [p.error for p in partitions if p.error is not None]
        # _NO_OFFSET: an auto-commit with nothing new to commit, not a failure.
        failures = [e.name() for e in errors if e.code() != KafkaError._NO_OFFSET]
        self.commit_errors += failures
        self.commits_ok += not failures and err is None

    def delivered(self, value: str, partition: int, offset: int) -> None:
        if not self.consumed:
            self.on_flowing()
        self.consumed.add(value)
        self.deliveries[value] += 1
        self.positions.setdefault(value, set()).add((partition, offset))

    def lost(self, _consumer: Consumer, partitions: list) -> None:
        """librdkafka's on_lost: the group took the partitions away (the session expired), uncommitted reads repeat."""
        self.partitions_lost += len(partitions)

    def duplicates(self) -> tuple[list[str], list[str]]:
        """Values consumed more than once: (read again at the same offset, a consumer-side repeat such as a re-read after
        a lost session; stored at more than one offset, a record the log holds twice)."""
        again = sorted(v for v, n in self.deliveries.items() if n > len(self.positions.get(v, ())))
        twice_stored = sorted(v for v, where in self.positions.items() if len(where) > 1)
        return again, twice_stored

    def problems(self, exactly_once: bool) -> list[str]:
        """What breaks the soak's promise."""
        lost = self.acked - self.consumed
        no_outcome = self.sent - len(self.acked) - len(self.failed)
        problems = [f"delivery failed: {e}" for e in self.failed[:5]]
        if no_outcome or self.unanswered:
            problems.append(f"{no_outcome} of {self.sent} messages sent were never acknowledged nor failed "
                            f"({self.unanswered} still queued when the final flush gave up)")
        problems += [f"fatal consumer error: {e}" for e in self.consumer_errors[:5]]
        problems += [f"fatal client error: {e}" for e in self.fatal_errors[:5]]
        problems += [f"commit failed: {e}" for e in self.commit_errors[:5]]
        if not self.commits_ok:  # the callback never reported a commit: the check above would see nothing
            problems.append("no commit was reported to on_commit")
        if lost:
            problems.append(f"{len(lost)} acknowledged messages never consumed, e.g. {sorted(lost)[:5]}")
        again, twice_stored = self.duplicates()
        if again and exactly_once:
            problems.append(f"{len(again)} messages consumed more than once at the same offset (the consumer was told "
                            f"{self.partitions_lost} partitions were lost), e.g. {again[:5]}")
        if twice_stored and exactly_once:
            problems.append(f"{len(twice_stored)} messages stored at more than one offset, e.g. {twice_stored[:5]}")
        if len(self.acked) < self.rate:  # less than a second's worth: the soak did not really run
            problems.append(f"only {len(self.acked)} messages acknowledged")
        return problems

    def consume(self) -> None:
        cons = consumer(self.bootstrap, f"{self.topic}-group", on_commit=self.committed,
                        on_error=self.client_error("consumer"))
        cons.subscribe([self.topic], on_lost=self.lost)
        quiet_since = None
        while True:
            msg = cons.poll(0.5)
            if msg is not None:
                if msg.error():
                    if msg.error().fatal():
                        self.consumer_errors.append(str(msg.error()))
                    else:  # told to the application all the same: reported by name
                        self.client_errors[f"consumer poll: {msg.error().name()}"] += 1
                else:
                    self.delivered(msg.value().decode(), msg.partition(), msg.offset())
            done_producing = not self.producing.is_set()
            if done_producing and self.acked <= self.consumed:
                break
            if done_producing:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > TIMEOUT_S:
                    break
        cons.close()


def check_soak(args: argparse.Namespace) -> list[str]:
    topic = args.topic
    ensure_topic(args.bootstrap, topic, 6)
    soak = Soak(args.bootstrap, topic, args.rate, on_flowing=Path(args.ready_file).touch)
    soak.producing.set()
    consumer_thread = threading.Thread(target=soak.consume, daemon=True)
    consumer_thread.start()
    soak.produce(Path(args.stop_file), args.max_seconds)
    consumer_thread.join(TIMEOUT_S + 10)
    problems = soak.problems(args.exactly_once)
    again, twice_stored = soak.duplicates()
    print(json.dumps({"check": "soak", "sent": soak.sent, "acked": len(soak.acked), "consumed": len(soak.consumed),
                      "consumed_again": len(again), "stored_twice": len(twice_stored),
                      "partitions_lost": soak.partitions_lost,
                      "no_outcome": soak.sent - len(soak.acked) - len(soak.failed),
                      "delivery_failures": len(soak.failed), "commits_ok": soak.commits_ok,
                      "commit_failures": len(soak.commit_errors), "client_errors": dict(soak.client_errors),
                      "problems": problems}))
    return problems


def check_handshake(args: argparse.Namespace) -> list[str]:
    host, _, port = args.bootstrap.split(",")[0].rpartition(":")
    context = ssl.create_default_context(cafile=args.ca)
    if args.cert:
        context.load_cert_chain(args.cert, args.key)
    presented, problems = None, []
    try:
        with socket.create_connection((host, int(port)), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            presented = tls.getpeercert(binary_form=True)
            tls.sendall(b"\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x01\xff\xff")  # ApiVersions v0
            if not tls.recv(4):  # TLS 1.3 reports a refused client certificate at the first read
                raise ConnectionError("closed by the gateway")
        refused = None
    except (ssl.SSLError, ConnectionError) as error:
        refused = str(error)
    fingerprint = hashlib.sha256(presented).hexdigest() if presented else None
    if args.expect_refused:
        if refused is None:
            problems.append("the gateway accepted the client")
    elif refused is not None:
        problems.append(f"handshake failed: {refused}")
    elif args.expect_cert:
        expected = hashlib.sha256(ssl.PEM_cert_to_DER_cert(Path(args.expect_cert).read_text())).hexdigest()
        if fingerprint != expected:
            problems.append(f"the gateway presents certificate {fingerprint}, expected {expected} ({args.expect_cert})")
    print(json.dumps({"check": "handshake", "bootstrap": args.bootstrap, "presented_sha256": fingerprint,
                      "refused": refused, "problems": problems}))
    return problems


def with_topic_cleanup(check):
    """Run a check that creates a topic named in its JSON line's `topic`, then delete that topic."""

    def run(args: argparse.Namespace) -> list[str]:
        args.topic = f"molecule-{args.check}-{uuid.uuid4().hex[:8]}"
        try:
            return check(args)
        finally:
            delete_topic(args.bootstrap, args.topic)

    return run


CHECKS = {"metadata": check_metadata, "handshake": check_handshake, "roundtrip": with_topic_cleanup(check_roundtrip), "soak": with_topic_cleanup(check_soak)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("check", choices=sorted(CHECKS))
    parser.add_argument("--bootstrap", required=True, help="gateway or load balancer host:port")
    parser.add_argument("--gateways", default="{}", help='metadata: JSON {"advertised host": "rack"}')
    parser.add_argument("--lb-host", default="", help="metadata: every broker must be advertised at this host")
    parser.add_argument("--brokers", type=int, default=3)
    parser.add_argument("--port-start", type=int, default=6969)
    parser.add_argument("--min-broker-id", type=int, default=1)
    parser.add_argument("--count", type=int, default=200, help="roundtrip: messages")
    parser.add_argument("--rate", type=int, default=100, help="soak: messages per second")
    parser.add_argument("--stop-file", default="/tmp/kgw-soak.stop")
    parser.add_argument("--ready-file", default="/tmp/kgw-soak.ready",
                        help="soak: touched once the first record produced has been consumed (the clients run)")
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument("--exactly-once", action="store_true", help="soak: a message consumed twice is a problem too")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="librdkafka property")
    parser.add_argument("--ca", help="handshake: CA bundle the gateway's certificate must chain to")
    parser.add_argument("--cert", help="handshake: client certificate (mTLS)")
    parser.add_argument("--key", help="handshake: key of --cert")
    parser.add_argument("--expect-cert", help="handshake: the certificate the gateway must present")
    parser.add_argument("--expect-refused", action="store_true", help="handshake: the gateway must refuse the client")
    args = parser.parse_args(argv)
    CLIENT_CONFIG.update(item.split("=", 1) for item in args.config)
    problems = CHECKS[args.check](args)
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

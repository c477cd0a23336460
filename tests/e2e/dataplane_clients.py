"""Client scenarios run inside the lab's client netns (no route to brokers), against a gateway.

`python -m tests.e2e.dataplane_clients SCENARIO --bootstrap HOST:PORT ...` prints one JSON line
with what was counted; the test process asserts on it. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Any, Callable

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicCollection,
                            TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

from tests.e2e.rack_clients import record_id

TIMEOUT_S = 60.0
SECURITY: dict[str, str] = {}  # --config k=v: extra librdkafka properties (TLS) for every client


def config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, **SECURITY, **extra}


def create_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    admin = AdminClient(config(bootstrap))
    admin.create_topics([NewTopic(topic, partitions, 3)], request_timeout=30)[topic].result(40)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until every partition has a leader the client can see
        topics = admin.list_topics(topic, timeout=10).topics
        if topic in topics and len(topics[topic].partitions) == partitions and \
                all(p.leader >= 0 for p in topics[topic].partitions.values()):
            return
        time.sleep(0.2)
    raise TimeoutError(f"topic {topic} has no leaders")


def consume_values(bootstrap: str, topic: str, expected: int, group: str | None = None, commit: bool = False,
                   isolation: str = "read_uncommitted", timeout_s: float = TIMEOUT_S) -> list[str]:
    consumer = Consumer(config(
        bootstrap, **{"group.id": group or f"reader-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest",
                      "enable.auto.commit": False, "isolation.level": isolation}))
    consumer.subscribe([topic])
    values: list[str] = []
    deadline = time.monotonic() + timeout_s
    idle_until = None
    while time.monotonic() < deadline:
        batch = consumer.consume(500, 0.5)
        for message in batch:
            if message.error() is None:
                values.append(message.value().decode())
        if batch and commit:
            consumer.commit(asynchronous=False)
        if len(values) >= expected:
            idle_until = idle_until or time.monotonic() + 2  # linger briefly to catch duplicates
            if time.monotonic() > idle_until:
                break
    consumer.close()
    return values


def produce(bootstrap: str, topic: str, count: int, **settings: Any) -> list[str]:
    producer = Producer(config(bootstrap, **{"linger.ms": 5, **settings}))
    acked: list[str] = []

    def delivered(error: Any, message: Any) -> None:
        if error is None:
            acked.append(message.value().decode())

    for i in range(count):
        producer.produce(topic, f"m-{i}".encode(), on_delivery=delivered)
        producer.poll(0)
    producer.flush(TIMEOUT_S)
    return acked


def scenario_idempotent(args: argparse.Namespace) -> dict[str, Any]:
    create_topic(args.bootstrap, args.topic)
    acked = produce(args.bootstrap, args.topic, args.count, **{"enable.idempotence": True, "acks": "all"})
    consumed = consume_values(args.bootstrap, args.topic, len(acked))
    return {"acked": len(acked), "consumed": len(consumed), "distinct": len(set(consumed)),
            "missing": len(set(acked) - set(consumed))}


def scenario_transactional(args: argparse.Namespace) -> dict[str, Any]:
    create_topic(args.bootstrap, args.topic)
    producer = Producer(config(args.bootstrap, **{"transactional.id": f"tx-{args.topic}"}))
    producer.init_transactions(TIMEOUT_S)
    producer.begin_transaction()
    for i in range(args.count):
        producer.produce(args.topic, f"committed-{i}".encode())
    producer.commit_transaction(TIMEOUT_S)
    producer.begin_transaction()
    for i in range(args.count // 2):
        producer.produce(args.topic, f"aborted-{i}".encode())
    producer.flush(TIMEOUT_S)
    producer.abort_transaction(TIMEOUT_S)
    consumed = consume_values(args.bootstrap, args.topic, args.count, isolation="read_committed")
    return {"committed": sum(v.startswith("committed-") for v in consumed),
            "aborted_seen": sum(v.startswith("aborted-") for v in consumed), "distinct": len(set(consumed))}


def scenario_group(args: argparse.Namespace) -> dict[str, Any]:
    create_topic(args.bootstrap, args.topic)
    acked = produce(args.bootstrap, args.topic, args.count, acks="all")
    group = f"group-{args.topic}"
    first = consume_values(args.bootstrap, args.topic, len(acked), group=group, commit=True)
    again = consume_values(args.bootstrap, args.topic, 1, group=group, commit=True, timeout_s=6)
    consumer = Consumer(config(args.bootstrap, **{"group.id": group}))
    committed = consumer.committed([TopicPartition(args.topic, p) for p in range(3)], timeout=20)
    consumer.close()
    return {"acked": len(acked), "first": len(set(first)), "after_commit": len(again),
            "committed_total": sum(tp.offset for tp in committed if tp.offset >= 0)}


def scenario_admin(args: argparse.Namespace) -> dict[str, Any]:
    admin = AdminClient(config(args.bootstrap))
    create_topic(args.bootstrap, args.topic, partitions=4)
    described = admin.describe_topics(TopicCollection([args.topic]))[args.topic].result(30)
    cluster = admin.describe_cluster(request_timeout=30).result(40)
    metadata = admin.list_topics(timeout=20)
    return {
        "partitions": len(described.partitions),
        "leaders": sorted({f"{p.leader.host}:{p.leader.port}" for p in described.partitions}),
        "replica_hosts": sorted({f"{r.host}:{r.port}" for p in described.partitions for r in p.replicas}),
        "cluster_nodes": sorted(f"{n.id}@{n.host}:{n.port}/{n.rack}" for n in cluster.nodes),
        "controller": f"{cluster.controller.host}:{cluster.controller.port}" if cluster.controller else None,
        "metadata_brokers": sorted(f"{b.id}@{b.host}:{b.port}" for b in metadata.brokers.values()),
    }


def scenario_kafka_python(args: argparse.Namespace) -> dict[str, Any]:
    from kafka import KafkaConsumer, KafkaProducer

    create_topic(args.bootstrap, args.topic)
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
    futures = [producer.send(args.topic, f"kp-{i}".encode()) for i in range(args.count)]
    producer.flush(TIMEOUT_S)
    acked = sum(1 for f in futures if f.succeeded())
    producer.close()
    consumer = KafkaConsumer(args.topic, bootstrap_servers=args.bootstrap, group_id=f"kp-{args.topic}",
                             auto_offset_reset="earliest", consumer_timeout_ms=8000)
    values = [m.value.decode() for _, m in zip(range(args.count), consumer)]
    # The producer is closed, so a duplicate is already in the log: past the count, the iteration ends after 2 s
    # without a record (consume_values lingers as long), not after the 8 s that are there for the group join.
    consumer.config["consumer_timeout_ms"] = 2000  # read at each step of the iteration
    values += [m.value.decode() for _, m in zip(range(args.count), consumer)]
    consumer.close()
    return {"acked": acked, "consumed": len(values), "distinct": len(set(values))}


def scenario_aiokafka(args: argparse.Namespace) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    create_topic(args.bootstrap, args.topic)

    async def run() -> dict[str, Any]:
        producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            results = await asyncio.gather(*[await producer.send(args.topic, f"aio-{i}".encode())
                                             for i in range(args.count)])
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(args.topic, bootstrap_servers=args.bootstrap, group_id=f"aio-{args.topic}",
                                    auto_offset_reset="earliest")
        await consumer.start()
        values: list[str] = []
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while len(values) < args.count and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=1000)
                values += [m.value.decode() for batch in batches.values() for m in batch]
            await consumer.commit()
        finally:
            await consumer.stop()
        return {"acked": len(results), "consumed": len(values), "distinct": len(set(values))}

    return asyncio.run(run())


def scenario_produce_for(args: argparse.Namespace) -> dict[str, Any]:
    """Produce steadily for --seconds (idempotent, acks=all), or until SIGTERM, then read everything back."""
    stopped = threading.Event()  # SIGTERM: stop sending, every record sent still gets its outcome and is read back
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    producer = Producer(config(args.bootstrap, **{"enable.idempotence": True, "acks": "all", "linger.ms": 5,
                                          "delivery.timeout.ms": 120000, "topic.metadata.refresh.interval.ms": 5000}))
    acked: list[str] = []
    errors: list[str] = []

    def delivered(error: Any, message: Any) -> None:
        if error is None:
            acked.append(message.value().decode())
        else:
            errors.append(str(error))

    deadline = time.monotonic() + args.seconds
    sent = 0
    while time.monotonic() < deadline and sent < args.count and not stopped.is_set():
        producer.produce(args.topic, f"p-{sent}".encode(), on_delivery=delivered)
        sent += 1
        producer.poll(0.002)
    unanswered = producer.flush(120)
    consumed = consume_values(args.bootstrap, args.topic, len(acked), timeout_s=90)
    return {"sent": sent, "acked": len(acked), "errors": errors[:5], "error_count": len(errors),
            "no_outcome": sent - len(acked) - len(errors), "unanswered": unanswered,
            "consumed_distinct": len(set(consumed)), "missing": len(set(acked) - set(consumed))}


def scenario_acks0(args: argparse.Namespace) -> dict[str, Any]:
    """acks=0 produce requests get no response: the gateway must not wait for one (the next
    response on the connection would not match). Metadata refreshes keep flowing on the same
    connections meanwhile; then the topic is read back."""
    create_topic(args.bootstrap, args.topic, partitions=1)
    # One record acknowledged by the leader first: a broker closes the connection on an acks=0 Produce it must
    # refuse (a leader not yet serving a new partition, say), and every record sent on it is lost, as acks=0 allows.
    warm = Producer(config(args.bootstrap, acks="all"))
    warm.produce(args.topic, b"warm")
    if warm.flush(TIMEOUT_S):
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "the leader took no acknowledged record"))
    acked = produce(args.bootstrap, args.topic, args.count, **{"acks": 0, "topic.metadata.refresh.interval.ms": 200})
    consumed = [value for value in consume_values(args.bootstrap, args.topic, args.count + 1) if value != "warm"]
    return {"acked": len(acked), "consumed": len(set(consumed))}


def scenario_large(args: argparse.Namespace) -> dict[str, Any]:
    """Records near the broker's 1 MiB limit: frames that span many TCP reads both ways."""
    create_topic(args.bootstrap, args.topic, partitions=1)
    payloads = [hashlib.sha256(str(i).encode()).digest() * (900_000 // 32) for i in range(args.count)]
    producer = Producer(config(args.bootstrap, **{"acks": "all", "message.max.bytes": 1_000_000}))
    for payload in payloads:
        producer.produce(args.topic, payload)
    left = producer.flush(TIMEOUT_S)
    consumer = Consumer(config(args.bootstrap, **{"group.id": f"large-{args.topic}", "auto.offset.reset": "earliest",
                                                  "fetch.max.bytes": 4_000_000}))
    consumer.subscribe([args.topic])
    received: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(received) < len(payloads) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            received.append(message.value())
    consumer.close()
    return {"unflushed": left, "received": len(received), "identical": received == payloads}


def scenario_client_errors(args: argparse.Namespace) -> dict[str, Any]:
    """The client-level errors (error_cb) a client reports while it tries to fetch metadata for --seconds."""
    errors: list[str] = []
    client = AdminClient(config(args.bootstrap, error_cb=lambda error: errors.append(error.name())))
    deadline = time.monotonic() + args.seconds
    while not errors and time.monotonic() < deadline:
        try:
            client.list_topics(timeout=1)
        except KafkaException:
            pass
        client.poll(0.5)  # serves error_cb
    return {"errors": sorted(set(errors))}


class Problems(logging.Handler):
    """What librdkafka logged at WARNING or above (a protocol parse failure is logged at ERROR, "PROTOERR"), and
    what it reported to error_cb."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(f"{record.levelname}: {record.getMessage()}")

    def error_cb(self, error: Any) -> None:
        self.seen.append(f"error_cb: {error}")


FETCH_WAIT_MS = 50  # a caught-up consumer's Fetch waits this long at the broker: what a pause waits out, six times


def scenario_read_in_steps(args: argparse.Namespace) -> dict[str, Any]:
    """Read every partition of --topic from its start (assigned, no group) in steps the test drives on stdin, for a
    test that moves partition leaders between them: each line `N` resumes the partitions, reads until N distinct
    records in all (or --seconds), pauses them again and prints {"paused": distinct records, "problems": ...} once no
    Fetch can be under way (paused partitions are not fetched). End of input: a last second of reading, for duplicates.
    Records are `NNNNNNN:` (the record's number, as rack_clients.py reads it) and padding."""
    problems = Problems()
    logger = logging.getLogger("librdkafka")
    logger.addHandler(problems)
    logger.propagate = False
    consumer = Consumer(config(args.bootstrap, **{
        "group.id": f"steps-{args.topic}", "enable.auto.commit": False, "fetch.wait.max.ms": FETCH_WAIT_MS,
        # a response to a consumer that is behind holds several of the producer's batches, not the whole backlog
        "max.partition.fetch.bytes": 64 * 1024, "error_cb": problems.error_cb}), logger=logger)
    partitions = consumer.list_topics(args.topic, timeout=10).topics[args.topic].partitions
    assert partitions, f"no partitions of {args.topic}"
    assigned = [TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in sorted(partitions)]
    consumer.assign(assigned)
    ids: Counter[str] = Counter()

    def take(timeout_s: float) -> None:
        for message in consumer.consume(500, timeout_s):
            if message.error() is None:
                ids[record_id(message.value())] += 1
            else:
                problems.seen.append(f"message error: {message.error()}")

    def read(until: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while len(ids) < until and time.monotonic() < deadline:
            take(0.2)

    for line in sys.stdin:
        # In partition order: should the fetcher wake before all are resumed, its first Fetch holds partition 0 alone
        consumer.resume(assigned)
        read(int(line), args.seconds)
        consumer.pause(assigned)
        # The Fetch under way, if any, answered before the test moves a leader: librdkafka would follow a leader that
        # such an answer names (KIP-951) even for a paused partition, and the next Fetch would find nothing moved
        take(6 * FETCH_WAIT_MS / 1000)
        print(json.dumps({"paused": len(ids), "problems": problems.seen[:20]}), flush=True)
    consumer.resume(assigned)
    read(len(ids) + 1, 1.0)
    consumer.close()
    return {"ids": sorted(int(i) for i in ids), "duplicates": sum(n - 1 for n in ids.values()),
            "problems": problems.seen[:20]}


SCENARIOS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "idempotent": scenario_idempotent,
    "transactional": scenario_transactional,
    "group": scenario_group,
    "admin": scenario_admin,
    "kafka-python": scenario_kafka_python,
    "aiokafka": scenario_aiokafka,
    "produce-for": scenario_produce_for,
    "large": scenario_large,
    "acks0": scenario_acks0,
    "client-errors": scenario_client_errors,
    "read-in-steps": scenario_read_in_steps,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    SECURITY.update(item.split("=", 1) for item in args.config)
    try:
        result = SCENARIOS[args.scenario](args)
    except KafkaException as error:
        result = {"kafka_error": str(error)}
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()

"""Kafka client programs (real librdkafka via confluent-kafka) that the cluster e2e tests run in the
lab's client namespace, plus the Java console producer command line.

    python cluster_clients.py produce BOOTSTRAP TOPIC PREFIX COUNT RATE ACKED_FILE
    python cluster_clients.py consume BOOTSTRAP TOPIC GROUP OUT_FILE READY_FILE STOP_FILE MAX_S

produce: COUNT unique values PREFIX-i at RATE/s, idempotent, acks=all; every acknowledged value is
written to ACKED_FILE; a JSON summary goes to stdout. Bounded by the count plus a 90 s flush.
consume: one member of GROUP; writes each value to OUT_FILE, commits synchronously after each batch,
touches READY_FILE once it has partitions, and stops when STOP_FILE exists and nothing arrived for
5 s, or after MAX_S seconds. On stderr: assignments, failed commits, "commit ok again at T"
(T = time.time()) on the first good commit after failed ones, and "commit took S s, done at T" for
a commit that blocked over a second (librdkafka holds a synchronous commit while it has no coordinator).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer

IDLE_STOP_S = 5.0
CONSUMER_IDLE_EXIT_MS = 120000  # a backstop: the tests stop the console consumers once the group committed everything
METADATA_REFRESH_MS = 5000  # default 5 min; short so a joining gateway node gets traffic within the test


def java_console_producer(lab, bootstrap: str, topic: str) -> list[str]:
    return lab.client_cmd([
        "java", "-Xmx256m", "-cp", lab.java_classpath, "org.apache.kafka.tools.ConsoleProducer",
        "--bootstrap-server", bootstrap, "--topic", topic,
        "--producer-property", "acks=all", "--producer-property", "enable.idempotence=true",
        "--producer-property", "linger.ms=5", "--producer-property", f"metadata.max.age.ms={METADATA_REFRESH_MS}",
    ])


def java_console_consumer(lab, bootstrap: str, topic: str, group: str) -> list[str]:
    """One group member printing each value; exits 0 once nothing arrived for CONSUMER_IDLE_EXIT_MS, 143 on SIGTERM."""
    return lab.client_cmd([
        "java", "-Xmx256m", "-cp", lab.java_classpath, "org.apache.kafka.tools.consumer.ConsoleConsumer",
        "--bootstrap-server", bootstrap, "--topic", topic, "--group", group, "--from-beginning",
        "--timeout-ms", str(CONSUMER_IDLE_EXIT_MS), "--consumer-property", f"metadata.max.age.ms={METADATA_REFRESH_MS}",
    ])


def produce(bootstrap: str, topic: str, prefix: str, count: str, rate: str, acked_file: str) -> None:
    producer = Producer({
        "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
        "message.timeout.ms": 90000, "linger.ms": 5, "topic.metadata.refresh.interval.ms": METADATA_REFRESH_MS,
    })
    failures: list[str] = []
    with open(acked_file, "w") as acked:
        def delivered(error, message) -> None:
            if error is None:
                acked.write(message.value().decode() + "\n")
            else:
                failures.append(str(error))

        start = time.monotonic()
        for i in range(int(count)):
            pause = start + i / float(rate) - time.monotonic()
            if pause > 0:
                producer.poll(pause)
            producer.produce(topic, f"{prefix}-{i}".encode(), on_delivery=delivered)
            producer.poll(0)
        unflushed = producer.flush(90)
    print(json.dumps({"failed": len(failures), "unflushed": unflushed, "errors": failures[:5]}), flush=True)


def consume(bootstrap: str, topic: str, group: str, out_file: str, ready_file: str, stop_file: str, max_s: str) -> None:
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "topic.metadata.refresh.interval.ms": METADATA_REFRESH_MS,
    })
    def assigned(_, partitions) -> None:
        print(f"{time.strftime('%H:%M:%S')} {group}: assigned {[p.partition for p in partitions]}", file=sys.stderr, flush=True)
        if partitions:
            Path(ready_file).touch()

    consumer.subscribe([topic], on_assign=assigned)
    deadline = time.monotonic() + float(max_s)
    last_message = time.monotonic()
    failing = False
    with open(out_file, "w") as out:
        while time.monotonic() < deadline:
            messages = consumer.consume(500, 0.5)
            values = [m.value().decode() for m in messages if m.error() is None]
            if values:
                out.write("".join(v + "\n" for v in values))
                out.flush()
                try:
                    began = time.monotonic()
                    consumer.commit(asynchronous=False)
                    if time.monotonic() - began > 1.0:
                        print(f"{time.strftime('%H:%M:%S')} {group}: commit took {time.monotonic() - began:.1f} s, "
                              f"done at {time.time():.3f}", file=sys.stderr, flush=True)
                    if failing:
                        print(f"{time.strftime('%H:%M:%S')} {group}: commit ok again at {time.time():.3f}", file=sys.stderr, flush=True)
                        failing = False
                except KafkaException as error:  # what an application does: log, carry on (at-least-once)
                    print(f"{time.strftime('%H:%M:%S')} {group}: commit failed: {error}", file=sys.stderr, flush=True)
                    failing = True
                last_message = time.monotonic()
            elif Path(stop_file).exists() and time.monotonic() - last_message > IDLE_STOP_S:
                break
    consumer.close()


if __name__ == "__main__":
    {"produce": produce, "consume": consume}[sys.argv[1]](*sys.argv[2:])

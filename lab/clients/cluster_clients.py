"""Kafka client programs (real librdkafka via confluent-kafka) that the cluster e2e tests run in the
lab's client namespace, plus the command lines of Kafka's VerifiableProducer / VerifiableConsumer.

    python cluster_clients.py produce BOOTSTRAP TOPIC PREFIX COUNT RATE EVENTS_FILE
    python cluster_clients.py consume BOOTSTRAP TOPIC GROUP OUT_FILE READY_FILE STOP_FILE MAX_S

produce: COUNT unique values PREFIX-i at RATE/s with librdkafka's defaults for an idempotent producer
(acks=all); every delivery callback writes one JSON line to EVENTS_FILE, {"value", "error": null or the
error's name, "t": time.time()} (lab/clients/outcomes.py reads them); a JSON summary goes to stdout, with
"sent", the values handed to the client. Bounded by the count plus a FLUSH_S flush; SIGTERM ends it sooner, the
same way: it sends no more, flushes, and reports.
consume: one member of GROUP; writes each value to OUT_FILE, commits synchronously after each batch,
touches READY_FILE once it has partitions, and stops when STOP_FILE exists and nothing arrived for
5 s, or after MAX_S seconds. On stderr: assignments, failed commits, "commit ok again at T"
(T = time.time()) on the first good commit after failed ones, and "commit took S s, done at T" for
a commit that blocked over a second (librdkafka holds a synchronous commit while it has no coordinator).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer

IDLE_STOP_S = 5.0
METADATA_REFRESH_MS = 5000  # default 5 min; short so a joining gateway node gets traffic within the test
JAVA_DEFAULT_RETRIES = 2147483647  # the Java producer's default: retry until delivery.timeout.ms
FLUSH_S = 150  # beyond librdkafka's and Java's default delivery timeouts (120 s), so every record gets an outcome
# The Java tools log through log4j2; without a configuration its default goes to stdout, which carries their events.
LOG4J2 = """status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = err
"""


def _java(lab, workdir: Path, main_class: str, bootstrap: str, topic: str, *args: str, tool_retries: bool = False) -> list[str]:
    log4j = workdir / "log4j2.properties"
    log4j.write_text(LOG4J2)
    producer = main_class.endswith("Producer")
    # Kafka's defaults but for how soon a client sees a new mapping. VerifiableProducer sets retries=0 before it
    # reads this file, which also turns idempotence off (Kafka's tool, 4.1.1 to 4.4.0); the file puts the client's default
    # back, unless `tool_retries` asks for the tool's own retries=0 (what a producer that never retries is told).
    config = workdir / ("producer.properties" if producer else "consumer.properties")
    retries = f"retries={JAVA_DEFAULT_RETRIES}\n" if producer and not tool_retries else ""
    config.write_text(f"metadata.max.age.ms={METADATA_REFRESH_MS}\n" + retries)
    config_flag = "--producer.config" if producer else "--consumer.config"
    return ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", f"-Dlog4j2.configurationFile={log4j}", "-cp",
            lab.java_classpath, main_class, "--bootstrap-server", bootstrap, "--topic", topic, config_flag, str(config), *args]


def verifiable_producer(lab, workdir: Path, bootstrap: str, topic: str, count: int, rate: float, prefix: int,
                        tool_retries: bool = False) -> list[str]:
    """Kafka's VerifiableProducer with the Java client's defaults (idempotent, acks=all, delivery.timeout.ms 120 s),
    or with the tool's own retries=0 (`tool_retries`: not idempotent, every failed request is a failed send):
    values PREFIX.i; a producer_send_success or producer_send_error JSON event per record on stdout."""
    return _java(lab, workdir, "org.apache.kafka.tools.VerifiableProducer", bootstrap, topic, "--max-messages", str(count),
                 "--throughput", str(int(rate)), "--value-prefix", str(prefix), tool_retries=tool_retries)


def verifiable_consumer(lab, workdir: Path, bootstrap: str, topic: str, group: str, *options: str) -> list[str]:
    """One member of GROUP (Kafka's VerifiableConsumer, synchronous commit after every poll): a record_data event
    per record and an offsets_committed event (success or the error) per commit on stdout; runs until SIGTERM.
    `options`: more of the tool's own flags (e.g. --assignment-strategy)."""
    return _java(lab, workdir, "org.apache.kafka.tools.VerifiableConsumer", bootstrap, topic, "--group-id", group,
                 "--verbose", "--reset-policy", "earliest", *options)


def produce(bootstrap: str, topic: str, prefix: str, count: str, rate: str, events_file: str) -> None:
    failures: list[str] = []
    with open(events_file, "w") as events:
        def told(error) -> None:  # error_cb: the client's own troubles (a connection, all brokers down), not a record's
            events.write(json.dumps({"client_error": error.name(), "fatal": error.fatal(), "t": time.time()}) + "\n")

        producer = Producer({
            "bootstrap.servers": bootstrap, "enable.idempotence": True,
            "topic.metadata.refresh.interval.ms": METADATA_REFRESH_MS, "error_cb": told,
        })

        def delivered(error, message) -> None:
            name = None if error is None else error.name()
            events.write(json.dumps({"value": message.value().decode(), "error": name, "t": time.time()}) + "\n")
            if error is not None:
                failures.append(str(error))

        # SIGTERM: stop sending, but still flush, so every value handed to the client gets its outcome
        stopping: list[int] = []
        signal.signal(signal.SIGTERM, lambda signum, _: stopping.append(signum))
        start, sent = time.monotonic(), 0
        for i in range(int(count)):
            if stopping:
                break
            pause = start + i / float(rate) - time.monotonic()
            if pause > 0:
                producer.poll(pause)
            value = f"{prefix}-{i}"
            try:
                producer.produce(topic, value.encode(), on_delivery=delivered)
            except KafkaException as error:  # refused by produce() itself (e.g. _UNKNOWN_TOPIC once the topic is
                # known not to exist): a send that failed, as an application sees it
                name = error.args[0].name()
                events.write(json.dumps({"value": value, "error": name, "t": time.time()}) + "\n")
                failures.append(str(error))
            sent = i + 1
            producer.poll(0)
        unflushed = producer.flush(FLUSH_S)
    print(json.dumps({"sent": sent, "failed": len(failures), "unflushed": unflushed, "errors": failures[:5]}), flush=True)


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
            for failed in (m for m in messages if m.error() is not None):  # told to the application: not dropped
                print(f"{time.strftime('%H:%M:%S')} {group}: consume error {failed.error().name()} at {time.time():.3f}",
                      file=sys.stderr, flush=True)
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

"""Producers the handover tests run in the lab's client namespace, one per client family that keeps a
connection per broker: librdkafka (with every message's latency), kafka-python and aiokafka.

    python handover_clients.py FAMILY BOOTSTRAP TOPIC PREFIX SECONDS RATE ACKED_FILE STOP_FILE

Produces PREFIX-i at RATE/s for SECONDS or until STOP_FILE exists (acks=all), writes each acknowledged value to ACKED_FILE and
prints one JSON line: {"sent", "acked", "failed", "errors", "latencies": [[send wall time, ms], ...]}
(latencies for librdkafka only). Bounded by SECONDS plus a 60 s flush.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

METADATA_REFRESH_MS = 5000  # as lab/clients/cluster_clients.py: the tests wait "one metadata refresh"
FLUSH_S = 60
STOP_FILE = ""


def producing(start: float, seconds: float) -> bool:
    return time.monotonic() - start < seconds and not os.path.exists(STOP_FILE)


def librdkafka(bootstrap: str, topic: str, prefix: str, seconds: float, rate: float, acked) -> dict:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                         "message.timeout.ms": 90000, "topic.metadata.refresh.interval.ms": METADATA_REFRESH_MS})
    sent_at: dict[str, float] = {}
    latencies: list[list[float]] = []
    errors: list[str] = []

    def delivered(error, message) -> None:
        value = message.value().decode()
        if error is None:
            acked.write(value + "\n")
            latencies.append([round(sent_at[value], 3), round(1000 * (time.time() - sent_at[value]), 1)])
        else:
            errors.append(str(error))

    start, i = time.monotonic(), 0
    while producing(start, seconds):
        pause = start + i / rate - time.monotonic()
        if pause > 0:
            producer.poll(pause)
        value = f"{prefix}-{i}"
        sent_at[value] = time.time()
        producer.produce(topic, value.encode(), on_delivery=delivered)
        producer.poll(0)
        i += 1
    unflushed = producer.flush(FLUSH_S)
    return {"sent": i, "acked": len(latencies), "failed": len(errors) + unflushed, "errors": errors[:5],
            "latencies": latencies}


def kafka_python(bootstrap: str, topic: str, prefix: str, seconds: float, rate: float, acked) -> dict:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", retries=10, linger_ms=5,
                             max_in_flight_requests_per_connection=1, metadata_max_age_ms=METADATA_REFRESH_MS)
    futures = []
    start, i = time.monotonic(), 0
    while producing(start, seconds):
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        futures.append((f"{prefix}-{i}", producer.send(topic, f"{prefix}-{i}".encode())))
        i += 1
    producer.flush(FLUSH_S)
    errors = []
    for value, future in futures:
        try:
            future.get(timeout=1)
            acked.write(value + "\n")
        except Exception as error:  # what the application would see
            errors.append(repr(error))
    producer.close(10)
    return {"sent": i, "acked": i - len(errors), "failed": len(errors), "errors": errors[:5]}


def aiokafka(bootstrap: str, topic: str, prefix: str, seconds: float, rate: float, acked) -> dict:
    from aiokafka import AIOKafkaProducer

    async def run() -> dict:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                                    metadata_max_age_ms=METADATA_REFRESH_MS, request_timeout_ms=30000)
        await producer.start()
        futures = []
        start, i = time.monotonic(), 0
        try:
            while producing(start, seconds):
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                futures.append((f"{prefix}-{i}", await producer.send(topic, f"{prefix}-{i}".encode())))
                i += 1
            errors = []
            for value, future in futures:
                try:
                    await asyncio.wait_for(future, FLUSH_S)
                    acked.write(value + "\n")
                except Exception as error:
                    errors.append(repr(error))
        finally:
            await producer.stop()
        return {"sent": i, "acked": i - len(errors), "failed": len(errors), "errors": errors[:5]}

    return asyncio.run(run())


FAMILIES = {"librdkafka": librdkafka, "kafka-python": kafka_python, "aiokafka": aiokafka}

if __name__ == "__main__":
    family, bootstrap, topic, prefix, seconds, rate, acked_file, STOP_FILE = sys.argv[1:9]
    with open(acked_file, "w", buffering=1) as out:  # line by line: the tests read it while the client runs
        result = FAMILIES[family](bootstrap, topic, prefix, float(seconds), float(rate), out)
    print(json.dumps(result), flush=True)

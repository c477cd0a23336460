"""``python -m bench.latency BOOTSTRAP TOPIC RATE SECONDS [MESSAGE_TIMEOUT_MS]``: steady-state produce latency.

ProducerPerformance times every record from the start, and at a fixed rate the records sent while the
producer is still fetching metadata, connecting and warming its JIT pile up behind that: a few
thousand of them, so its p99 over a short run is mostly the start-up (100-1100 ms here, whatever the
path). This probe leaves a warm-up out: librdkafka (confluent-kafka), acks=all, 1 KiB records, the
library's default batching, one record every 1/RATE s, each timed from produce() to its delivery
report. It runs as its own process so that the benchmark's Python does not share its interpreter.
Prints JSON: records timed, delivery errors, the rate reached, p50/p99/p99.9 in ms. A record not delivered
within MESSAGE_TIMEOUT_MS (librdkafka's message.timeout.ms, default 30 s) is an error, and the benchmark
rejects a run with any error or undelivered record (`accepted`): its percentiles leave those records out.
"""

from __future__ import annotations

import json
import os
import sys
import time

from confluent_kafka import Producer

from .perf_tools import RejectedRun

WARMUP_S = 3.0
RECORD = os.urandom(1024)
MESSAGE_TIMEOUT_MS = 30_000


def accepted(result: dict) -> dict:
    """The run's figures, if every record was delivered; else RejectedRun (bench.perf_tools)."""
    if result["errors"] or result["undelivered"]:
        raise RejectedRun(f"bench.latency: {result['errors']} delivery errors, {result['undelivered']} undelivered "
                          f"of {result['records_timed'] + result['errors'] + result['undelivered']}+ records")
    return result


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(bootstrap: str, topic: str, rate: int, seconds: float, message_timeout_ms: int = MESSAGE_TIMEOUT_MS) -> dict:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
                         "message.timeout.ms": message_timeout_ms})
    latencies: list[float] = []
    errors = 0

    def timed(sent: float, counted: bool):
        def report(error, _message) -> None:
            nonlocal errors
            if error is not None:
                errors += 1
            elif counted:
                latencies.append(time.perf_counter() - sent)
        return report

    start = time.perf_counter()
    measured_from, end = start + WARMUP_S, start + WARMUP_S + seconds
    sent = 0
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        due = start + sent / rate
        if now < due:
            producer.poll(min(due - now, 0.001))  # serve delivery reports while waiting for the next slot
            continue
        while True:
            try:
                producer.produce(topic, RECORD, on_delivery=timed(now, now >= measured_from))
                break
            except BufferError:  # the local queue is full: the path is slower than the rate
                producer.poll(0.001)
        sent += 1
        producer.poll(0)
    left = producer.flush(60)
    ordered = sorted(latencies)
    if not ordered:
        raise SystemExit(f"no record was delivered ({errors} errors, {left} undelivered)")
    return {
        "records_timed": len(ordered), "errors": errors, "undelivered": left,
        "rate_reached": round(sent / (end - start)),
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 2),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
        "p999_ms": round(percentile(ordered, 0.999) * 1000, 2),
    }


if __name__ == "__main__":
    bootstrap, topic, rate, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    timeout_ms = int(sys.argv[5]) if len(sys.argv) > 5 else MESSAGE_TIMEOUT_MS
    print(json.dumps(measure(bootstrap, topic, rate, seconds, timeout_ms)))

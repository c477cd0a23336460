"""The consumers of test_rack_aware_reads.py, run inside a lab client namespace: each reads all `--partitions`
partitions of a topic from the beginning (assigned, no group: no coordinator's traffic in the counts), sets no client.rack unless told,
stops at a known record count or a deadline, and prints one JSON line of what it counted.

Records are `NNNNNNN:` (the record's number) and padding, so a consumer counts distinct records by that prefix.
librdkafka's consumer also reports the bytes it received from each broker (statistics, `rxbytes`): a count the gateway
does not make. With --timeline it prints every statistics sample as it comes, for a test that splits them by time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

ID_WIDTH = 7


def record_id(value: bytes) -> str:
    return value[:ID_WIDTH].decode()


class Count:
    """Records seen and the count to stop at: given, or read from a file the test writes when its producer is done."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.ids: Counter[str] = Counter()
        self.expected = args.count
        self.count_file = Path(args.count_file) if args.count_file else None
        self.deadline = time.monotonic() + args.max_s

    def add(self, value: bytes) -> None:
        self.ids[record_id(value)] += 1

    def reached(self) -> bool:
        return self.expected is not None and len(self.ids) >= self.expected

    def done(self) -> bool:
        if self.expected is None and self.count_file is not None and self.count_file.exists():
            self.expected = int(self.count_file.read_text())
        return self.reached() or time.monotonic() >= self.deadline

    def result(self) -> dict[str, Any]:
        return {"consumed": sum(self.ids.values()), "distinct": len(self.ids), "deadline_reached": not self.reached(),
                "duplicates": sum(n - 1 for n in self.ids.values() if n > 1), "ids": sorted(int(i) for i in self.ids)}


def librdkafka(args: argparse.Namespace) -> dict[str, Any]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    count = Count(args)
    received: dict[str, int] = {}
    sampled_at = [0]  # when librdkafka took the latest statistics sample served: its "ts", CLOCK_MONOTONIC in µs

    def statistics(text: str) -> None:
        stats = json.loads(text)
        sampled_at[0] = stats["ts"]
        received.clear()
        received.update({str(b["nodeid"]): b["rxbytes"] for b in stats["brokers"].values() if b["nodeid"] >= 0})
        if args.timeline:  # with the broker each partition is fetched from, and its leader
            partitions = stats["topics"].get(args.topic, {}).get("partitions", {})
            fetching = {p: (v["broker"], v["leader"]) for p, v in partitions.items() if int(p) >= 0}
            print(json.dumps({"t": time.time(), "rxbytes": received, "consumed": sum(count.ids.values()),
                              "fetching": fetching}), flush=True)

    config = {"bootstrap.servers": args.bootstrap, "group.id": f"rack-{args.topic}", "enable.auto.commit": False,
              "statistics.interval.ms": args.stats_ms, "stats_cb": statistics}
    if args.client_rack:
        config["client.rack"] = args.client_rack
    consumer = Consumer(config)
    try:
        consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in range(args.partitions)])
        while not count.done():
            for message in consumer.consume(num_messages=1000, timeout=0.2):
                if message.error() is None:
                    count.add(message.value())
        # One more statistics sample, taken after the last record came: the last bytes are in it. Bounded: a starved
        # client serves samples late, and one taken before may still be queued.
        done_us, final = time.monotonic() * 1e6, time.monotonic() + 20 * args.stats_ms / 1000
        while sampled_at[0] <= done_us and time.monotonic() < final:
            consumer.poll(0.1)
    finally:
        consumer.close()
    return {**count.result(), "rxbytes": dict(received)}


def kafka_python(args: argparse.Namespace) -> dict[str, Any]:
    from kafka import KafkaConsumer, TopicPartition

    count = Count(args)
    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", client_rack=args.client_rack)
    try:
        partitions = [TopicPartition(args.topic, p) for p in range(args.partitions)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        while not count.done():
            for records in consumer.poll(timeout_ms=200, max_records=1000).values():
                for record in records:
                    count.add(record.value)
    finally:
        consumer.close()
    return count.result()


def aiokafka(args: argparse.Namespace) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    count = Count(args)

    async def run() -> dict[str, Any]:
        consumer = AIOKafkaConsumer(bootstrap_servers=args.bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", client_rack=args.client_rack or None)
        await consumer.start()
        try:
            partitions = [TopicPartition(args.topic, p) for p in range(args.partitions)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning()
            while not count.done():
                for records in (await consumer.getmany(timeout_ms=200, max_records=1000)).values():
                    for record in records:
                        count.add(record.value)
        finally:
            await consumer.stop()
            return count.result()

    return asyncio.run(run())


FAMILIES = {"librdkafka": librdkafka, "kafka-python": kafka_python, "aiokafka": aiokafka}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("family", choices=sorted(FAMILIES))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--count", type=int)
    parser.add_argument("--count-file")
    parser.add_argument("--max-s", type=float, default=40.0)
    parser.add_argument("--client-rack", default="")
    parser.add_argument("--stats-ms", type=int, default=500)
    parser.add_argument("--timeline", action="store_true")
    args = parser.parse_args()
    if args.count is None and args.count_file is None:
        parser.error("--count or --count-file")
    print(json.dumps(FAMILIES[args.family](args)), flush=True)


if __name__ == "__main__":
    main()

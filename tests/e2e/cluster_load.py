"""A counted client load for gateway-cluster tests and the soak: two producers and a consumer group, all in the
lab's client namespace, and the exactly-once check at the end."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from confluent_kafka import Consumer, ConsumerGroupState, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from tests.e2e.cluster_clients import java_console_consumer, java_console_producer
from tests.e2e.cluster_support import wait_until

CLIENTS = Path(__file__).with_name("cluster_clients.py")
VALUE = re.compile(r"(lib|java)-\d+")


class ClientLoad:
    """Two producers (librdkafka, Kafka's Java console producer) and a two-member consumer group
    (Kafka's Java console consumer) on a fresh topic, all in the client namespace."""

    group_settle_s = 25.0  # how long start() waits for the two consumers to form the group

    def __init__(self, lab, workdir: Path, bootstrap: str, count: int, rate: float) -> None:
        self.lab, self.workdir, self.bootstrap, self.count, self.rate = lab, workdir, bootstrap, count, rate
        self.topic = f"cluster-load-{uuid.uuid4().hex[:8]}"
        self.group = f"{self.topic}-group"
        self.procs: list[subprocess.Popen] = []
        self.admin = AdminClient({"bootstrap.servers": lab.bootstrap_servers})  # for calls that go to partition leaders
        topic = NewTopic(self.topic, num_partitions=6, replication_factor=3, config={"min.insync.replicas": "2"})
        self.admin.create_topics([topic], request_timeout=15)[self.topic].result()
        # The group's committed offsets, read by a consumer that never joins it. Not the admin API: librdkafka's
        # ListConsumerGroupOffsets dereferences a consumer group the admin client does not have when the coordinator
        # it cached has moved, and the process dies of SIGSEGV (librdkafka#5040, still in 2.16; reproduced here with
        # a preferred-leader election of the group's __consumer_offsets partition). A consumer follows the move.
        self.commits = Consumer({"bootstrap.servers": lab.bootstrap_servers, "group.id": self.group, "enable.auto.commit": False})

    def _coordinator_admin(self) -> AdminClient:
        """A new admin client for a call to the group's coordinator: a long-lived one keeps asking the coordinator
        it cached after the coordinator has moved (gateway_app/cluster/group_members.py)."""
        return AdminClient({"bootstrap.servers": self.lab.bootstrap_servers})

    def spawn(self, argv: list[str], **popen) -> subprocess.Popen:
        proc = subprocess.Popen(argv, **popen)
        self.procs.append(proc)
        return proc

    def _group_stable(self) -> bool:
        admin = self._coordinator_admin()  # held until the answer is in: a dropped client fails its requests
        try:
            group = admin.describe_consumer_groups([self.group], request_timeout=5)[self.group].result()
        except KafkaException:  # the coordinator is moving: ask again at the next poll
            return False
        return len(group.members) == 2 and all(m.assignment.topic_partitions for m in group.members) and \
            group.state == ConsumerGroupState.STABLE

    def start(self) -> None:
        self.consumers = [
            self.spawn(java_console_consumer(self.lab, self.bootstrap, self.topic, self.group),
                        stdout=(self.workdir / f"consumed-{i}").open("w"), stderr=(self.workdir / f"consumer-{i}.stderr").open("w"))
            for i in range(2)
        ]
        wait_until(self._group_stable, self.group_settle_s, "the consumer group to settle with two members", 0.5)
        self.librdkafka = self.spawn(
            self.lab.client_cmd([sys.executable, str(CLIENTS), "produce", self.bootstrap, self.topic, "lib",
                                 str(self.count), str(self.rate), str(self.workdir / "acked-lib")]),
            stdout=subprocess.PIPE, text=True)
        self.java = self.spawn(java_console_producer(self.lab, self.bootstrap, self.topic), stdin=subprocess.PIPE,
                                stderr=(self.workdir / "producer.stderr").open("w"), text=True)
        self.feeder = threading.Thread(target=self._feed_java, daemon=True)
        self.feeder.start()

    def _feed_java(self) -> None:
        start = time.monotonic()
        for i in range(self.count):
            time.sleep(max(0.0, start + i / self.rate - time.monotonic()))
            self.java.stdin.write(f"java-{i}\n")
            self.java.stdin.flush()
        self.java.stdin.close()

    def _lag(self) -> int | None:
        """Messages of the topic the group has not committed yet (None while it has no commits or they cannot be read)."""
        partitions = [TopicPartition(self.topic, p) for p in range(6)]
        ends = self.admin.list_offsets({tp: OffsetSpec.latest() for tp in partitions}, request_timeout=5)
        try:
            done = {tp.partition: tp.offset for tp in self.commits.committed(partitions, timeout=5)}
        except KafkaException:  # NOT_COORDINATOR once or twice after a move, then the consumer has found the new one
            return None
        if any(offset < 0 for offset in done.values()):
            return None
        return sum(ends[tp].result().offset - done[tp.partition] for tp in partitions)

    def producers_done(self) -> bool:
        return self.librdkafka.poll() is not None and self.java.poll() is not None

    def finish_and_verify(self) -> dict[str, int]:
        """Wait for both producers and the group; assert every acknowledged message was consumed exactly once."""
        summary = json.loads(self.librdkafka.communicate(timeout=120)[0])
        self.feeder.join(60)
        java_rc = self.java.wait(120)
        # The group is done when it has committed every message (the console consumer auto-commits
        # every 5 s); then stop both members. Idle exits raced: the first member to exit made the
        # other rebalance in the middle of its idle poll, which could then take a second idle period.
        wait_until(lambda: self._lag() == 0, 60, "the consumer group to commit every message", 0.5)
        for consumer in self.consumers:
            if consumer.poll() is None:
                consumer.send_signal(signal.SIGTERM)
        consumer_rcs = [consumer.wait(30) for consumer in self.consumers]
        java_errors = [line for line in (self.workdir / "producer.stderr").read_text().splitlines() if "Error when sending" in line]
        acked = set((self.workdir / "acked-lib").read_text().split())
        assert summary["failed"] == 0 and summary["unflushed"] == 0, summary
        assert java_rc == 0 and not java_errors, java_errors[:3]
        assert all(rc in (0, 128 + signal.SIGTERM) for rc in consumer_rcs), consumer_rcs  # 143: stopped by us
        acked |= {f"java-{i}" for i in range(self.count)}  # console producer: exit 0, no send error = all acked
        consumed = Counter(line for i in range(2) for line in (self.workdir / f"consumed-{i}").read_text().splitlines()
                           if VALUE.fullmatch(line))  # the console consumer logs to stdout too
        missing = acked - set(consumed)
        duplicated = {v: n for v, n in consumed.items() if n > 1}
        print(f"acked {len(acked)} (librdkafka {len(acked) - self.count}, java {self.count}); consumed {sum(consumed.values())} "
              f"({len(consumed)} distinct); missing {len(missing)}; duplicated {len(duplicated)}")
        assert len(acked) == 2 * self.count
        assert not missing, sorted(missing)[:10]
        assert not duplicated, list(duplicated.items())[:10]
        return {"acked": len(acked), "consumed": sum(consumed.values()), "distinct": len(consumed),
                "missing": len(missing), "duplicated": len(duplicated)}

    def stop(self) -> None:
        self.commits.close()
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)

    def delete(self) -> None:
        """Remove the topic and the group from the backing cluster (best effort)."""
        self.admin.delete_topics([self.topic], request_timeout=10)[self.topic].exception()
        admin = self._coordinator_admin()
        admin.delete_consumer_groups([self.group], request_timeout=10)[self.group].exception()

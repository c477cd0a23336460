"""A counted client load for gateway-cluster tests and the soak: two producers and a consumer group on a fresh
topic, in the lab's client namespace (or, for the soak's direct leg, beside the brokers), and the check at the end:
every acknowledged message consumed exactly once, and no client told of any error (lab/clients/outcomes.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from confluent_kafka import Consumer, ConsumerGroupState, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from lab.clients import outcomes
from lab.clients.cluster_clients import FLUSH_S, verifiable_consumer, verifiable_producer
from lab.polling import wait_until

CLIENTS = Path(__file__).with_name("cluster_clients.py")
JAVA_PREFIX = 1  # VerifiableProducer's values are "1.i", librdkafka's "lib-i"
CONSUMERS = 2


class ClientLoad:
    """Two producers (librdkafka, Kafka's VerifiableProducer) and a two-member consumer group (Kafka's
    VerifiableConsumer) on a fresh topic, in the client namespace — or on the controller, beside the brokers, when
    `direct` (the soak's control leg; the bootstrap is then the brokers')."""

    group_settle_s = 60.0  # how long start() waits for the two consumers to form the group (two JVMs starting)

    def __init__(self, lab, workdir: Path, bootstrap: str, count: int, rate: float, direct: bool = False) -> None:
        self.lab, self.bootstrap, self.count, self.rate, self.direct = lab, bootstrap, count, rate, direct
        self.topic = f"cluster-load-{uuid.uuid4().hex[:8]}"
        self.group = f"{self.topic}-group"
        self.workdir = workdir / self.topic
        self.workdir.mkdir(parents=True)
        self.procs: list[subprocess.Popen] = []
        self.terminated: set[int] = set()  # pids we ended with SIGTERM: how the consumers finish, not a failure
        self.admin = AdminClient({"bootstrap.servers": lab.bootstrap_servers})  # for calls that go to partition leaders
        new = NewTopic(self.topic, num_partitions=6, replication_factor=3, config={"min.insync.replicas": "2"})
        self.admin.create_topics([new], request_timeout=15)[self.topic].result()
        # The group's committed offsets, read by a consumer that never joins it. Not the admin API: librdkafka's
        # ListConsumerGroupOffsets dereferences a consumer group the admin client does not have when the coordinator
        # it cached has moved, and the process dies of SIGSEGV (librdkafka#5040, still in 2.16; reproduced here with
        # a preferred-leader election of the group's __consumer_offsets partition). A consumer follows the move.
        self.commits = Consumer({"bootstrap.servers": lab.bootstrap_servers, "group.id": self.group, "enable.auto.commit": False})

    def _coordinator_admin(self) -> AdminClient:
        """A new admin client for a call to the group's coordinator: a long-lived one keeps asking the coordinator
        it cached after the coordinator has moved (gateway_app/cluster/group_members.py)."""
        return AdminClient({"bootstrap.servers": self.lab.bootstrap_servers})

    def _cmd(self, argv: list[str]) -> list[str]:
        return argv if self.direct else self.lab.client_cmd(argv)

    def spawn(self, argv: list[str], **popen) -> subprocess.Popen:
        proc = subprocess.Popen(argv, **popen)
        self.procs.append(proc)
        return proc

    def _out(self, name: str):
        return (self.workdir / name).open("w")

    def _group_stable(self) -> bool:
        admin = self._coordinator_admin()  # held until the answer is in: a dropped client fails its requests
        try:
            group = admin.describe_consumer_groups([self.group], request_timeout=5)[self.group].result()
        except KafkaException:  # the coordinator is moving: ask again at the next poll
            return False
        return len(group.members) == CONSUMERS and all(m.assignment.topic_partitions for m in group.members) and \
            group.state == ConsumerGroupState.STABLE

    def start(self) -> None:
        self.start_group()
        self.wait_group(self.group_settle_s)
        self.start_producers()

    def start_group(self) -> None:
        self.consumers = [
            self.spawn(self._cmd(verifiable_consumer(self.lab, self.workdir, self.bootstrap, self.topic, self.group)),
                       stdout=self._out(f"consumer-{i}.events"), stderr=self._out(f"consumer-{i}.stderr"))
            for i in range(CONSUMERS)
        ]

    def wait_group(self, settle_s: float) -> None:
        wait_until(self._group_stable, settle_s, "the consumer group to settle with two members", 0.5)

    def start_producers(self) -> None:
        self.librdkafka = self.spawn(
            self._cmd([sys.executable, str(CLIENTS), "produce", self.bootstrap, self.topic, "lib",
                       str(self.count), str(self.rate), str(self.workdir / "librdkafka-producer.events")]),
            stdout=self._out("librdkafka-producer.summary"), stderr=self._out("librdkafka-producer.stderr"))
        self.java = self.spawn(
            self._cmd(verifiable_producer(self.lab, self.workdir, self.bootstrap, self.topic, self.count, self.rate, JAVA_PREFIX)),
            stdout=self._out("java-producer.events"), stderr=self._out("java-producer.stderr"))

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

    def acked(self) -> tuple[int, int]:
        """Records acknowledged so far to (the librdkafka producer, the Java producer), from their event files."""
        librdkafka = outcomes.librdkafka_producer("librdkafka-producer", 0, self._lines_so_far("librdkafka-producer.events"), 0)
        java = outcomes.verifiable_producer("java-producer", 0, self._lines_so_far("java-producer.events"), 0)
        return len(librdkafka.acked), len(java.acked)

    def wait_flowing(self, timeout_s: float = 60.0, records: int = 50) -> None:
        """Until each producer has had `records` acknowledged (half a second at the tests' 100/s) and the group has
        committed on every partition: the load runs end to end, so what a test does next happens under it."""
        took = wait_until(lambda: min(self.acked()) >= records and self._lag() is not None, timeout_s,
                          "both producers acknowledged and the group committing on every partition", 0.2)
        print(f"{self.topic}: flowing {took:.1f} s after the wait began, acknowledged {self.acked()} of {self.count} each")

    def wait_acked_more(self, seconds: float = 1.0, timeout_s: float = 20.0) -> None:
        """Until both producers have had `seconds` more of records acknowledged than now: traffic that flowed after
        what a test just did (a kill, a join, a leave), before it stops the producers."""
        then = self.acked()

        def more_acked() -> bool:
            now = self.acked()
            if all(n >= before + self.rate * seconds for n, before in zip(now, then)):
                return True
            # A producer that has ended sends nothing more: say so now, not after the timeout. It ends at its count
            # (count / rate seconds after start_producers) or of a failure, and then the load is too short for the test.
            ended = [f"{name} exited ({proc.poll()}) with {acked} of {self.count} acknowledged"
                     for name, proc, acked in (("librdkafka", self.librdkafka, now[0]), ("java", self.java, now[1]))
                     if proc.poll() is not None]
            if ended:
                raise AssertionError(f"waiting for {seconds:g} s more acknowledged: {'; '.join(ended)}")
            return False

        wait_until(more_acked, timeout_s, f"both producers to have {seconds:g} s more acknowledged", 0.2)

    def producers_done(self) -> bool:
        return self.librdkafka.poll() is not None and self.java.poll() is not None

    def stop_producers(self) -> None:
        """End both producers before their count, once a test has checked what it needed under load: each stops
        sending, closes its client (every record it was handed gets an outcome) and reports how many it handed over,
        which finish() then counts instead of the count."""
        for proc in (self.librdkafka, self.java):
            if proc.poll() is None:
                self.terminated.add(proc.pid)
                proc.send_signal(signal.SIGTERM)

    def _sent(self, proc: subprocess.Popen, reported: int | None) -> int:
        """What a producer must account for: its count, unless we stopped it, then what it reported handing over
        (the count still when it reported nothing, so its records show as having no outcome)."""
        return reported if proc.pid in self.terminated and reported is not None else self.count

    def _java_sent(self) -> int | None:
        """VerifiableProducer's own tally of records handed to its client, from its closing tool_data event."""
        return next((event["sent"] for event in outcomes.events(self._lines("java-producer.events"))
                     if event.get("name") == "tool_data"), None)

    def _librdkafka_sent(self) -> int | None:
        lines = self._lines("librdkafka-producer.summary")
        return json.loads(lines[-1]).get("sent") if lines else None

    def _exit_code(self, proc: subprocess.Popen, rc: int | None) -> int | None:
        """A client we ended with SIGTERM and that exited of it (the JVM's 143) ended as asked, not failed."""
        return 0 if proc.pid in self.terminated and rc == 128 + signal.SIGTERM else rc

    def finish(self) -> dict:
        """Wait for both producers and the group, stop the group, and return every client's figures
        (client_outcomes.figures) plus the raw errors with their times under "_errors"."""
        budget = self.count / self.rate + FLUSH_S + 30
        rcs = {"librdkafka": self.librdkafka.wait(budget), "java": self.java.wait(budget)}
        # The group is done when it has committed every message; then stop both members. Idle exits raced: the
        # first member to exit made the other rebalance in the middle of its idle poll.
        try:
            wait_until(lambda: self._lag() == 0, 60, "the consumer group to commit every message", 0.5)
        except AssertionError:
            pass  # counted below: what the group has not consumed is missing
        for consumer in self.consumers:
            if consumer.poll() is None:
                self.terminated.add(consumer.pid)
                consumer.send_signal(signal.SIGTERM)
        # A member that is gone before we stop it crashed, even with exit code 0 (outcomes.java_crash): the other
        # member takes its partitions over and the lag still reaches 0, so only its end shows it.
        consumer_rcs = [consumer.wait(30) for consumer in self.consumers]
        producers = [
            outcomes.librdkafka_producer("librdkafka-producer", self._sent(self.librdkafka, self._librdkafka_sent()),
                                         self._lines("librdkafka-producer.events"),
                                         self._exit_code(self.librdkafka, rcs["librdkafka"])),
            outcomes.verifiable_producer("java-producer", self._sent(self.java, self._java_sent()),
                                         self._lines("java-producer.events"), self._exit_code(self.java, rcs["java"]),
                                         self._lines("java-producer.stderr")),
        ]
        consumers = [
            outcomes.verifiable_consumer(f"java-consumer-{i}", self._lines(f"consumer-{i}.events"),
                                         self._exit_code(self.consumers[i], rc),
                                         self._lines(f"consumer-{i}.stderr"), self.consumers[i].pid in self.terminated)
            for i, rc in enumerate(consumer_rcs)
        ]
        result = outcomes.figures(producers, consumers)
        result["_errors"] = outcomes.errors(producers, consumers)
        result["_client_errors"] = outcomes.client_errors(producers, consumers)
        return result

    def _lines(self, name: str) -> list[str]:
        return (self.workdir / name).read_text().splitlines()

    def _lines_so_far(self, name: str) -> list[str]:
        """A running client's lines: none yet while it has not opened its file."""
        path = self.workdir / name
        return path.read_text().splitlines() if path.exists() else []

    def finish_and_verify(self) -> dict:
        """finish(), print the figures, and assert: every acknowledged message consumed exactly once, and no
        application told of an error."""
        result = self.finish()
        print(f"\nclients on {self.topic}:\n{outcomes.summary(result)}")
        result.pop("_errors")
        result.pop("_client_errors")
        problems = outcomes.problems(result)
        assert not problems, f"{problems}; {json.dumps(result)}"
        return result

    def stop(self) -> None:
        self.commits.close()
        running = [proc for proc in self.procs if proc.poll() is None]
        for proc in running:
            proc.kill()
        for proc in running:
            proc.wait(60)  # SIGKILL cannot be refused, but a busy machine may take a while to reap a JVM

    def delete(self) -> None:
        """Remove the topic and the group from the backing cluster (best effort)."""
        self.admin.delete_topics([self.topic], request_timeout=10)[self.topic].exception()
        admin = self._coordinator_admin()
        admin.delete_consumer_groups([self.group], request_timeout=10)[self.group].exception()

"""Benchmark topics: made fresh before every run and deleted afterwards.

Every run writes its records three times over (replication factor 3), and a `--pairs 5 --aa-control`
benchmark without cleanup left ~45 GB on the lab's brokers, enough to fill this machine's disk. Each
run now starts on an empty, pre-created topic (three partitions, the lab's defaults, so no run pays
for auto-creation), and everything the benchmark created is gone when it ends.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 3
REPLICATION = 3
TIMEOUT_S = 60.0


class BenchTopics:
    def __init__(self, bootstrap: str) -> None:
        self._admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        self._made: set[str] = set()

    def fresh(self, name: str) -> str:
        """An empty topic `name`: the old one (if any) deleted and a new one created."""
        self.delete(name)
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            try:
                self._admin.create_topics([NewTopic(name, PARTITIONS, REPLICATION)], request_timeout=15)[name].result()
                break
            except KafkaException as error:  # the deletion may still be under way
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cannot create benchmark topic {name}: {error}") from None
                time.sleep(0.5)
        self._made.add(name)
        self._wait(name, present=True)
        return name

    def delete(self, name: str) -> None:
        if name in self._admin.list_topics(timeout=15).topics:
            error = self._admin.delete_topics([name], request_timeout=15)[name].exception()
            if error is not None and "UNKNOWN_TOPIC" not in str(error):
                raise RuntimeError(f"cannot delete benchmark topic {name}: {error}")
            self._wait(name, present=False)
        self._made.discard(name)

    def delete_all(self) -> None:
        for name in sorted(self._made):
            self.delete(name)

    def _wait(self, name: str, present: bool) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while (name in self._admin.list_topics(timeout=15).topics) != present:
            if time.monotonic() > deadline:
                raise RuntimeError(f"benchmark topic {name} still {'missing' if present else 'there'}")
            time.sleep(0.2)

"""Gateway cluster membership through the backing Kafka cluster alone (confluent-kafka).

Design
------
Two facts make a node a member, and both live in Kafka:

* **Who is alive** is decided by one consumer group, `_gateway_<cluster id>`, whose consumers use
  the node id as `client.id` and subscribe to the members topic. The group coordinator removes a
  consumer that stops heartbeating after `session.timeout.ms`, and at once when the consumer
  closes (LeaveGroup). Every node asks the coordinator for the group's members
  (`AdminClient.describe_consumer_groups`, through `group_members.GroupMembers`, which follows the
  coordinator when it moves) every `refresh_interval_s`, so all nodes read the same list from the
  same place. The classic group protocol is used on purpose: with KIP-848 the
  session timeout is a broker setting with a 45 s floor, with the classic protocol it is the
  client's `session.timeout.ms` (broker floor `group.min.session.timeout.ms`, 6 s by default).
* **What a node is** (advertised host, rack, ports) is a record keyed by node id on the compacted
  topic `_gateway_<cluster id>_members`, written when the node starts and deleted with a tombstone
  when it stops cleanly. Every node reads the whole topic with a group-less reader (manual
  assignment from the beginning, every partition in case the topic was made by hand), so it knows
  every node's record. A node waits until the topic exists (creating it, with retries) before it
  writes or joins, and writes its record again if it goes missing. Records of nodes that died stay
  in the topic; they are harmless, because only live group members count.

The live view is the set of records whose node id is a live group consumer, sorted by node id:
the same on every node that has read the same records and the same group. A node that dies drops
out once the coordinator expires it plus at most one refresh. The coordinator counts the session from
the last time it heard from the member, and a rebalance in progress (a node joining) can push that
moment up to a couple of seconds past the death, so `session.timeout.ms` is the configured bound
minus REBALANCE_MARGIN_S (never below the broker's 6 s floor): the default bound of 10 s gives a 6 s
session; measured by tests/e2e/test_cluster_membership.py, a node killed right after joining is out
of every view 6-8 s later. A node that stops cleanly leaves the group and
writes its tombstone, which the others see within one reader poll.

Rejected alternative: encoding the whole record in `client.id` and skipping the topic. It works,
but puts JSON into a field brokers log and quota by, and still needs the group; the compacted topic
is readable with any Kafka tool.

The confluent-kafka clients run in one daemon thread (their calls block); view changes reach the
asyncio loop through `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from .group_members import GroupMembers
from .member import Member

log = logging.getLogger(__name__)

BROKER_MIN_SESSION_TIMEOUT_S = 6.0  # Kafka's default group.min.session.timeout.ms
REBALANCE_MARGIN_S = 4.0  # a rebalance + one refresh, between a death and the coordinator's verdict
MAX_POLL_INTERVAL_MS = 30000  # also the classic rebalance timeout: bounds a rebalance waiting on a dead joiner
POLL_S = 0.1
REPUBLISH_AFTER_S = 5.0  # own record still unread this long after writing it: write it again
TOPIC_RETRY_MAX_S = 10.0  # backoff cap while Kafka cannot be reached or the topic cannot be made
PROPAGATION_POLL_S = 0.25  # the topic exists but the broker asked does not list it yet: ask again soon
PROPAGATION_WARN_S = 5.0  # metadata normally catches up in well under a second; say so if it does not


def group_name(cluster_id: str) -> str:
    return f"_gateway_{cluster_id}"


def topic_name(cluster_id: str) -> str:
    """Topic names allow [a-zA-Z0-9._-]; any other character of the cluster id becomes '_'."""
    return f"_gateway_{re.sub(r'[^a-zA-Z0-9._-]', '_', cluster_id)}_members"


@dataclass(frozen=True, slots=True)
class MembershipStatus:
    joined: bool
    kafka_reachable: bool
    detail: str


View = tuple[Member, ...]


class Membership:
    """Join the gateway cluster and keep a live view of its members.

    `on_change(view)` runs on the asyncio loop whenever the live view changes.
    """

    def __init__(
        self,
        me: Member,
        cluster_id: str,
        kafka_config: Mapping[str, str],
        session_timeout_s: float,
        on_change: Callable[[View], None],
        loop: asyncio.AbstractEventLoop,
        refresh_interval_s: float = 0.5,
    ) -> None:
        self.me = me
        self.group = group_name(cluster_id)
        self.topic = topic_name(cluster_id)
        self.kafka_config = dict(kafka_config)
        self.refresh_interval_s = refresh_interval_s
        self.group_session_timeout_ms = int(1000 * max(BROKER_MIN_SESSION_TIMEOUT_S, session_timeout_s - REBALANCE_MARGIN_S))
        if session_timeout_s - REBALANCE_MARGIN_S < BROKER_MIN_SESSION_TIMEOUT_S:
            log.warning("a cluster session timeout of %.1fs is below what the brokers allow by default; a dead node "
                        "drops out after about %.0fs", session_timeout_s, BROKER_MIN_SESSION_TIMEOUT_S + REBALANCE_MARGIN_S)
        self._on_change = on_change
        self._loop = loop
        self._records: dict[str, Member] = {}
        self._live_ids: frozenset[str] = frozenset()
        self._view: View = ()
        self._last_refresh_ok = 0.0
        self._last_error = "not started"
        self._next_republish = 0.0
        self._producer: Producer | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run_logged, name="gateway-membership", daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Leave the group and delete our record; blocking (run it in an executor from asyncio)."""
        self._stopping.set()
        self._thread.join(timeout_s)

    @property
    def view(self) -> View:
        return self._view

    def status(self) -> MembershipStatus:
        reachable = time.monotonic() - self._last_refresh_ok < max(3.0, 4 * self.refresh_interval_s)
        joined = any(member.node_id == self.me.node_id for member in self._view)
        if reachable:
            detail = f"{len(self._view)} live members"
        elif not self._last_refresh_ok:  # never asked the group yet: say which step it is on
            detail = f"starting: {self._last_error}"
        else:
            detail = f"cannot reach the backing Kafka: {self._last_error}"
        if reachable and not joined:
            detail = f"not (yet) a member of group {self.group}"
        return MembershipStatus(joined and reachable, reachable, detail)

    # --- the control thread -----------------------------------------------------------------

    def _run_logged(self) -> None:
        try:
            self._run()
        except Exception:  # readiness turns false once refreshes stop; the log says why
            self._last_error = "membership thread crashed"
            log.exception("gateway cluster membership stopped")

    def _run(self) -> None:
        partitions = self._wait_for_topic(AdminClient(self.kafka_config))
        if not partitions:
            return
        self._producer = Producer({**self.kafka_config, "acks": "all", "linger.ms": 0})
        reader = Consumer({
            **self.kafka_config,
            "group.id": f"{self.group}_reader",  # required by librdkafka; never joined: manual assignment
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
            "auto.offset.reset": "earliest",
        })
        reader.assign([TopicPartition(self.topic, p, -2) for p in partitions])  # -2: from the beginning
        self._publish_record(self.me.encode())
        group = Consumer({
            **self.kafka_config,
            "group.id": self.group,
            "group.protocol": "classic",
            "client.id": self.me.node_id,
            "session.timeout.ms": self.group_session_timeout_ms,
            "heartbeat.interval.ms": min(1000, self.group_session_timeout_ms // 3),
            "max.poll.interval.ms": max(MAX_POLL_INTERVAL_MS, self.group_session_timeout_ms),
            "enable.auto.commit": False,
            "auto.offset.reset": "latest",
        })
        group.subscribe([self.topic])
        group_members = GroupMembers(self.kafka_config, self.group)
        next_refresh = 0.0
        try:
            while not self._stopping.is_set():
                message = group.poll(0)  # drives the group protocol; the records it may get are irrelevant
                if message is not None and message.error():
                    self._last_error = str(message.error())
                    log.warning("gateway group %s: %s", self.group, message.error())
                self._read_records(reader)
                if time.monotonic() >= next_refresh:
                    next_refresh = time.monotonic() + self.refresh_interval_s
                    self._refresh_live(group_members)
        finally:
            self._publish_record(None)  # the tombstone first: the others drop us on reading it
            group.close()  # LeaveGroup: the coordinator drops us at once
            reader.close()
            self._live_ids = self._live_ids - {self.me.node_id}
            self._records.pop(self.me.node_id, None)
            self._update_view()

    def _wait_for_topic(self, admin: AdminClient) -> list[int]:
        """Create the members topic (or find it) and return its partitions once the broker we ask
        lists them; [] if asked to stop first.

        Two different waits: while Kafka cannot be reached or the topic cannot be made, retry with a
        backoff growing to TOPIC_RETRY_MAX_S; once the topic exists (made here or by another node),
        only its metadata is missing — a just-created topic reaches the brokers' metadata within
        milliseconds to a second — so ask again every PROPAGATION_POLL_S without creating it again.
        (One backoff for both turned a second of metadata lag into 10-20 s of waiting, enough for
        a node to miss a 30 s readiness wait.)"""
        backoff = 0.2
        exists_since: float | None = None
        warned = False
        while not self._stopping.is_set():
            try:
                if exists_since is None:
                    self._ensure_topic(admin)
                    exists_since = time.monotonic()
                metadata = admin.list_topics(self.topic, timeout=10).topics.get(self.topic)
                partitions = sorted(metadata.partitions) if metadata is not None else []
                if partitions:
                    if len(partitions) != 1:  # made by hand or auto-created: read every partition
                        log.warning("members topic %s has %d partitions; reading them all", self.topic, len(partitions))
                    self._last_error = "members topic found; joining the group"
                    return partitions
                waited = time.monotonic() - exists_since
                self._last_error = (f"members topic {self.topic} exists but is not in the metadata yet "
                                    f"({waited:.1f}s: {metadata.error if metadata is not None else 'not listed'})")
                if waited >= PROPAGATION_WARN_S and not warned:
                    log.warning("%s", self._last_error)
                    warned = True
                self._stopping.wait(PROPAGATION_POLL_S)
                continue
            except Exception as error:
                self._last_error = f"cannot create or find members topic {self.topic}: {error}"
                log.error("%s; retrying in %.1fs", self._last_error, backoff)
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, TOPIC_RETRY_MAX_S)
        return []

    def _ensure_topic(self, admin: AdminClient) -> None:
        """Compacted, one partition, replicated on up to 3 of the brokers that are up right now."""
        brokers = len(admin.describe_cluster(request_timeout=10).result().nodes)
        topic = NewTopic(self.topic, num_partitions=1, replication_factor=min(3, brokers), config={"cleanup.policy": "compact"})
        try:
            admin.create_topics([topic], request_timeout=10)[self.topic].result()
            log.info("created members topic %s", self.topic)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise

    def _publish_record(self, value: bytes | None) -> None:
        self._next_republish = time.monotonic() + REPUBLISH_AFTER_S
        self._producer.produce(self.topic, key=self.me.node_id.encode(), value=value)
        if self._producer.flush(10) != 0:
            log.error("could not write this node's record to %s", self.topic)

    def _read_records(self, reader: Consumer) -> None:
        changed = False
        for message in reader.consume(num_messages=500, timeout=POLL_S):
            if message.error():
                if message.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("members topic: %s", message.error())
                continue
            if message.key() is None:
                continue
            node_id = message.key().decode(errors="replace")
            if message.value() is None:
                changed |= self._records.pop(node_id, None) is not None
                continue
            try:
                member = Member.decode(message.value())
            except (ValueError, KeyError, TypeError) as error:
                log.warning("ignoring malformed member record for %r: %s", node_id, error)
                continue
            changed |= self._records.get(node_id) != member
            self._records[node_id] = member
        if changed:
            self._update_view()

    def _refresh_live(self, group_members: GroupMembers) -> None:
        try:
            live_ids = group_members.client_ids()
        except Exception as error:
            self._last_error = str(error)
            log.debug("describe group %s failed: %s", self.group, error)
            return
        self._last_refresh_ok = time.monotonic()
        if self.me.node_id in live_ids and self.me.node_id not in self._records and time.monotonic() > self._next_republish:
            log.warning("this node's record is missing from %s; writing it again", self.topic)
            self._publish_record(self.me.encode())
        if live_ids != self._live_ids:
            self._live_ids = live_ids
            self._update_view()

    def _update_view(self) -> None:
        view = tuple(self._records[node_id] for node_id in sorted(self._live_ids) if node_id in self._records)
        if view == self._view:
            return
        self._view = view
        log.info("cluster members: %s", ", ".join(f"{m.node_id}@{m.advertised_host}({m.rack or '-'})" for m in view) or "none")
        try:
            self._loop.call_soon_threadsafe(self._on_change, view)
        except RuntimeError:  # the loop is already closed at shutdown
            pass

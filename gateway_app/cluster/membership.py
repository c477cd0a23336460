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
of every view 6-8 s later. A node that stops cleanly writes its tombstone and leaves the group; the
others drop it at their next refresh of the group (tombstones are unauthenticated, so they count only
for nodes that are not live, see below).

Member records are authenticated
--------------------------------
The members topic is an ordinary Kafka topic: anyone who can write to the backing cluster (or, before
the data plane's guard, to the gateway) can write a record. So every record carries an HMAC-SHA256
of its value, keyed from `GATEWAY_CLUSTER_SECRET` and the cluster id (format and reasons in
records.py). A record that fails verification, or whose fields are out of range, or whose key is not
its node id, is ignored, logged once per (key, reason) and counted in
`gateway_cluster_member_records_rejected{reason}`; whatever one record raises is contained the same
way (reason `error`) and the reader carries on. Tombstones cannot carry a MAC (they must stay null
for compaction), so a tombstone for a node that is live in the group is held back until the node
leaves the group: a forged one removes nothing. A node that reads a record under its own id that is
not its own — a forgery by a holder of the secret, a replay of its own older record, a tombstone, a
second node configured with the same id — writes its own again at once (at most once per
roster.OWN_RECORD_REWRITE_MIN_S, so two nodes with one id cannot spin), counted in
`gateway_cluster_own_record_rewrites`. The thread is supervised: if its loop raises or returns
unasked, it is restarted with a backoff (RESTART_FIRST_S doubling to RESTART_MAX_S), counted in
`gateway_cluster_membership_restarts`, and the readiness detail says how often and why. The secret,
its rotation (GATEWAY_CLUSTER_SECRET_PREVIOUS) and what an attacker can still do:
docs/cluster-membership.md.

Rejected alternative: encoding the whole record in `client.id` and skipping the topic. It works,
but puts JSON into a field brokers log and quota by, and still needs the group; the compacted topic
is readable with any Kafka tool.

Two parts: the roster (roster.py) is the bookkeeping — records and live ids in, the view and what
to write out — with no Kafka and no thread, so it is tested alone; `Membership` here is the driver:
it owns the confluent-kafka clients, the daemon thread they run in (their calls block) and its
restarts (`Supervisor`), feeds the roster and carries its actions out. View changes reach the asyncio
loop through `loop.call_soon_threadsafe`. Every wait of the thread on Kafka goes through
stop_aware.answer, so a stop (SIGTERM) never waits out a request to an unreachable Kafka; the clean
leave after it is bounded (LEAVE_TOMBSTONE_S, then the clients' close, which sends the LeaveGroup).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from prometheus_client import CollectorRegistry

from .group_members import GroupMembers
from ..cluster_names import group_name, topic_name
from ..member import Member
from .metrics import ClusterMetrics
from .records import RecordCodec
from .roster import Record, Roster, View
from .stop_aware import Stopping, StopRequested, answer, in_membership_background

log = logging.getLogger(__name__)

BROKER_MIN_SESSION_TIMEOUT_S = 6.0  # Kafka's default group.min.session.timeout.ms
REBALANCE_MARGIN_S = 4.0  # a rebalance + one refresh, between a death and the coordinator's verdict
MAX_POLL_INTERVAL_MS = 30000  # also the classic rebalance timeout: bounds a rebalance waiting on a dead joiner
POLL_S = 0.1
TOPIC_REQUEST_TIMEOUT_S = 10.0  # each admin request finding or making the members topic (a stop cuts it short)
TOPIC_RETRY_MAX_S = 10.0  # backoff cap while Kafka cannot be reached or the topic cannot be made
PROPAGATION_POLL_S = 0.25  # the topic exists but the broker asked does not list it yet: ask again soon
PROPAGATION_WARN_S = 5.0  # metadata normally catches up in well under a second; say so if it does not
RESTART_FIRST_S = 0.5  # the supervisor's backoff after the loop died ...
RESTART_MAX_S = 30.0  # ... doubling up to this
STABLE_RUN_S = 60.0  # a loop that ran this long before dying starts the backoff afresh
RECORD_FLUSH_S = 10.0  # for this node's record to be acknowledged (a stop cuts the wait short)
# A clean stop's tombstone is written after the stop was asked for, so its wait is bounded instead of cut short. A
# reachable cluster acknowledges well within it (on the lab a tombstone took 0.01 s, a node's first record 0.1-0.8 s
# with the producer's connections to make); a tombstone that misses the bound costs only a record left in the topic,
# which no node counts once this one is out of the group. A longer wait would delay the LeaveGroup after it (what
# makes the others drop this node at once), and a stop while Kafka is down.
LEAVE_TOMBSTONE_S = 2.0
STOP_JOIN_S = 10.0  # Membership.stop's wait for the thread; the leave needs LEAVE_TOMBSTONE_S and the clients' close


@dataclass(frozen=True, slots=True)
class MembershipStatus:
    joined: bool
    kafka_reachable: bool
    detail: str


class Supervisor:
    """Runs a loop until asked to stop; whatever ends it otherwise restarts it after a backoff
    (RESTART_FIRST_S doubling to RESTART_MAX_S, afresh after a run of STABLE_RUN_S), counted in `restarts`."""

    def __init__(self, run: Callable[[], None], stopping: Stopping, metrics: ClusterMetrics,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._run = run
        self._stopping = stopping
        self._metrics = metrics
        self._clock = clock
        self.restarts = 0
        self.last_crash = ""

    def detail(self) -> str:
        """What the readiness detail says of the restarts: nothing until there was one."""
        return f"membership restarted {self.restarts} times, last error: {self.last_crash}" if self.restarts else ""

    def supervise(self) -> None:
        backoff = RESTART_FIRST_S
        while not self._stopping.is_set():
            started = self._clock()
            try:
                self._run()
                if self._stopping.is_set():
                    return
                error = "the membership loop returned unasked"
                log.error("%s", error)
            except Exception as crash:
                error = f"{type(crash).__name__}: {crash}"
                log.exception("gateway cluster membership failed")
            if self._clock() - started >= STABLE_RUN_S:
                backoff = RESTART_FIRST_S
            self.restarts += 1
            self.last_crash = " ".join(error.split())[:200]
            self._metrics.membership_restarts.inc()
            log.error("restarting gateway cluster membership in %.1fs (restart %d)", backoff, self.restarts)
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, RESTART_MAX_S)


class Membership:
    """Join the gateway cluster and keep a live view of its members (the roster's).

    `on_change(view)` runs on the asyncio loop whenever the live view changes. `stopping` is the thread's
    stop signal and its only sleep (a new threading.Event unless given).
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
        *,
        secret: str,
        previous_secret: str | None = None,
        metrics: ClusterMetrics | None = None,
        on_reserved_topic_ids: Callable[[list[bytes]], None] | None = None,
        stopping: Stopping | None = None,
    ) -> None:
        self.me = me
        self._on_reserved_topic_ids = on_reserved_topic_ids
        self._metrics = metrics or ClusterMetrics(CollectorRegistry())
        self.group = group_name(cluster_id)
        self.topic = topic_name(cluster_id)
        self._codec = RecordCodec(cluster_id, secret, previous_secret)
        self.roster = Roster(me, self._codec, self.topic, self._metrics)
        self.kafka_config = dict(kafka_config)
        self.refresh_interval_s = refresh_interval_s
        self.group_session_timeout_ms = int(1000 * max(BROKER_MIN_SESSION_TIMEOUT_S, session_timeout_s - REBALANCE_MARGIN_S))
        if session_timeout_s - REBALANCE_MARGIN_S < BROKER_MIN_SESSION_TIMEOUT_S:
            log.warning("a cluster session timeout of %.1fs is below what the brokers allow by default; a dead node "
                        "drops out after about %.0fs", session_timeout_s, BROKER_MIN_SESSION_TIMEOUT_S + REBALANCE_MARGIN_S)
        self._on_change = on_change
        self._loop = loop
        self._last_refresh_ok = 0.0
        self._last_error = "not started"
        self._producer: Producer | None = None
        self._stopping: Stopping = stopping if stopping is not None else threading.Event()
        self.supervisor = Supervisor(self._run, self._stopping, self._metrics)
        self._thread = threading.Thread(target=self.supervisor.supervise, name="gateway-membership", daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = STOP_JOIN_S) -> None:
        """Leave the group and delete our record; blocking (run it in an executor from asyncio). The thread's waits
        on Kafka give up at once (stop_aware.py); the leave itself is bounded (LEAVE_TOMBSTONE_S, then the clients'
        close), and a thread still busy after `timeout_s` is left behind: a daemon, it ends with the process."""
        self._stopping.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._metrics.stop_waits_abandoned.labels("thread").inc()
            log.warning("gateway cluster membership still busy with the backing Kafka after %.0fs; stopping without "
                        "it (the group drops this node when its session expires)", timeout_s)

    @property
    def running(self) -> bool:
        """The membership thread is alive (between start and the end of stop)."""
        return self._thread.is_alive()

    @property
    def restarts(self) -> int:
        return self.supervisor.restarts

    @property
    def view(self) -> View:
        return self.roster.view

    def status(self) -> MembershipStatus:
        view = self.roster.view
        reachable = time.monotonic() - self._last_refresh_ok < max(3.0, 4 * self.refresh_interval_s)
        joined = any(member.node_id == self.me.node_id for member in view)
        if reachable:
            detail = f"{len(view)} live members"
        elif not self._last_refresh_ok:  # never asked the group yet: say which step it is on
            detail = f"starting: {self._last_error}"
        else:
            detail = f"cannot reach the backing Kafka: {self._last_error}"
        if reachable and not joined:
            detail = f"not (yet) a member of group {self.group}"
        if self.supervisor.restarts:
            detail += f"; {self.supervisor.detail()}"
        return MembershipStatus(joined and reachable, reachable, detail)

    # --- the control thread -----------------------------------------------------------------

    def _run(self) -> None:
        partitions = self.wait_for_topic(AdminClient(self.kafka_config))
        if not partitions:
            return
        self.roster.reading_again()
        self._producer = Producer({**self.kafka_config, "acks": "all", "linger.ms": 0})
        clients: list[Consumer] = []  # closed however the loop ends: a crash too, the supervisor makes new ones
        try:
            reader = Consumer({
                **self.kafka_config,
                "group.id": f"{self.group}_reader",  # required by librdkafka; never joined: manual assignment
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 100,
                "auto.offset.reset": "earliest",
            })
            clients.append(reader)
            reader.assign([TopicPartition(self.topic, p, -2) for p in partitions])  # -2: from the beginning
            self._publish_own_record()
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
            clients.insert(0, group)  # closed first: LeaveGroup, the coordinator drops us at once
            group.subscribe([self.topic])
            group_members = GroupMembers(self.kafka_config, self.group, self._stopping)
            next_refresh = 0.0
            while not self._stopping.is_set():
                message = group.poll(0)  # drives the group protocol; the records it may get are irrelevant
                if message is not None and message.error():
                    self._last_error = str(message.error())
                    log.warning("gateway group %s: %s", self.group, message.error())
                self._view_changed(self.roster.read(self._records(reader)))
                self._write_what_is_due()
                if time.monotonic() >= next_refresh:
                    next_refresh = time.monotonic() + self.refresh_interval_s
                    self._refresh_live(group_members)
            self._write_tombstone()  # a clean stop: the tombstone, then LeaveGroup (closing the group consumer)
        finally:
            for client in clients:
                try:
                    client.close()
                except Exception as error:
                    log.warning("closing a membership client: %s", error)
            self._view_changed(self.roster.left())

    def wait_for_topic(self, admin: AdminClient) -> list[int]:
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
                metadata = self._list_topics(admin, self.topic).topics.get(self.topic)
                partitions = sorted(metadata.partitions) if metadata is not None else []
                if partitions:
                    if len(partitions) != 1:  # made by hand or auto-created: read every partition
                        log.warning("members topic %s has %d partitions; reading them all", self.topic, len(partitions))
                    self._learn_reserved_topic_ids(admin)
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
            except StopRequested:
                self._stopped_mid_request("finding the members topic")
                return []
            except Exception as error:
                self._last_error = f"cannot create or find members topic {self.topic}: {error}"
                log.error("%s; retrying in %.1fs", self._last_error, backoff)
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, TOPIC_RETRY_MAX_S)
        return []

    def _learn_reserved_topic_ids(self, admin: AdminClient) -> None:
        """Tell the request guard the ids of every reserved topic (the members topic and any other named
        with the group's prefix) before this node serves a client: Fetch and Produce name topics by id
        only, and a node must not depend on having seen the id in a Metadata answer first."""
        if self._on_reserved_topic_ids is None:
            return
        prefix = f"{self.group}_"
        # The members topic by name, whatever the listing says: the broker that answers the listing may not have the
        # just-created topic in its metadata yet, and an id left out here would pass the guard. describe_topics
        # raises until a broker knows it, and wait_for_topic asks again.
        names = sorted({self.topic, *(name for name in self._list_topics(admin).topics if name.startswith(prefix))})
        ids = []
        for future in admin.describe_topics(TopicCollection(names), request_timeout=TOPIC_REQUEST_TIMEOUT_S).values():
            topic_id = answer(future, self._stopping, TOPIC_REQUEST_TIMEOUT_S).topic_id
            ids.append(((topic_id.get_most_significant_bits() & (2**64 - 1)) << 64
                        | (topic_id.get_least_significant_bits() & (2**64 - 1))).to_bytes(16, "big"))
        self._on_reserved_topic_ids(ids)
        log.info("reserved topics known by id: %s", ", ".join(sorted(names)))

    def _list_topics(self, admin: AdminClient, topic: str | None = None) -> ClusterMetadata:
        """AdminClient.list_topics, which has no future: run aside so that a stop need not wait for it."""
        listing = in_membership_background(lambda: admin.list_topics(topic, timeout=TOPIC_REQUEST_TIMEOUT_S))
        return answer(listing, self._stopping, TOPIC_REQUEST_TIMEOUT_S)

    def _ensure_topic(self, admin: AdminClient) -> None:
        """Compacted, one partition, replicated on up to 3 of the brokers that are up right now."""
        described = admin.describe_cluster(request_timeout=TOPIC_REQUEST_TIMEOUT_S)
        brokers = len(answer(described, self._stopping, TOPIC_REQUEST_TIMEOUT_S).nodes)
        topic = NewTopic(self.topic, num_partitions=1, replication_factor=min(3, brokers), config={"cleanup.policy": "compact"})
        try:
            created = admin.create_topics([topic], request_timeout=TOPIC_REQUEST_TIMEOUT_S)[self.topic]
            answer(created, self._stopping, TOPIC_REQUEST_TIMEOUT_S)
            log.info("created members topic %s", self.topic)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise

    def _publish_own_record(self) -> None:
        """Write this node's record (signed) and wait until it is acknowledged, or the node stops."""
        self._produce(*self._codec.encode(self.me))
        flushing = in_membership_background(lambda: self._producer.flush(RECORD_FLUSH_S))
        try:
            unacknowledged = answer(flushing, self._stopping, RECORD_FLUSH_S)
        except StopRequested:
            self._stopped_mid_request("writing this node's record")
            return
        if unacknowledged:
            log.error("could not write this node's record to %s", self.topic)

    def _write_tombstone(self) -> None:
        """Delete this node's record, waiting for it up to LEAVE_TOMBSTONE_S."""
        self._produce(None)
        if self._producer.flush(LEAVE_TOMBSTONE_S):
            self._metrics.stop_waits_abandoned.labels("tombstone").inc()
            log.warning("stopping without deleting this node's record from %s: not acknowledged within %.0fs",
                        self.topic, LEAVE_TOMBSTONE_S)

    def _produce(self, value: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> None:
        """Hand this node's record (signed), or its tombstone (value None), to the producer."""
        self.roster.writing()

        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is None and value is not None:
                self.roster.written(message.partition(), message.offset())

        self._producer.produce(self.topic, key=self.me.node_id.encode(), value=value, headers=headers, on_delivery=delivered)

    def _records(self, reader: Consumer) -> list[Record]:
        """What the reader has of the members topic now (up to POLL_S of waiting)."""
        records = []
        for message in reader.consume(num_messages=500, timeout=POLL_S):
            if message.error():
                if message.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("members topic: %s", message.error())
                continue
            records.append(Record(message.key(), message.value(), message.headers(), message.partition(), message.offset()))
        return records

    def _stopped_mid_request(self, what: str) -> None:
        self._metrics.stop_waits_abandoned.labels("request").inc()
        # a stop that arrives while a request is out: on a healthy cluster too, so it says no more than that
        log.info("stopping without waiting for the backing Kafka's answer while %s", what)

    def _write_what_is_due(self) -> None:
        if self.roster.due() is not None:
            self._publish_own_record()

    def _refresh_live(self, group_members: GroupMembers) -> None:
        try:
            live_ids = group_members.client_ids()
        except StopRequested:
            self._stopped_mid_request("describing the group")
            return
        except Exception as error:
            self._last_error = str(error)
            log.debug("describe group %s failed: %s", self.group, error)
            return
        self._last_refresh_ok = time.monotonic()
        changed = self.roster.live(live_ids)
        self._write_what_is_due()
        self._view_changed(changed)

    def _view_changed(self, changed: bool) -> None:
        if not changed:
            return
        try:
            self._loop.call_soon_threadsafe(self._on_change, self.roster.view)
        except RuntimeError:  # the loop is already closed at shutdown
            pass

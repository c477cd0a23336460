"""The roster: who is in the gateway cluster, from the members topic's records and the group's live ids.

Pure bookkeeping, no Kafka, no thread: records and live ids go in, the live view and the actions this
node must take come out. The driver (membership.py) owns the clients, reads the topic and the group,
hands what it read over here and carries the actions out; the design (why records are signed, why a
tombstone waits, why a node writes its own record again) is told there.

- `read(records)`: records of the members topic. Each is verified and decoded (records.py); one that
  fails is ignored, counted in `gateway_cluster_member_records_rejected{reason}` and logged once per
  (key, reason). A tombstone for a node that is live in the group is held back until it leaves the
  group (tombstones cannot be signed). A record under this node's id that is not its own (and not one
  of its own older records, read back from before its latest write) calls for its own record again.
- `live(ids)`: the group's live consumers, as the coordinator lists them.
- `view`: the records of live nodes, sorted by node id: the same on every node that has read the same.
- `due()`: what this node must write now, if anything: its own record again after a foreign one
  (at most once per OWN_RECORD_REWRITE_MIN_S, counted in `gateway_cluster_own_record_rewrites`), or
  because its record went missing from the topic while it is live (at most once per REPUBLISH_AFTER_S).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Iterable, Mapping

from ..member import Member, RecordRejected, shown
from .metrics import ClusterMetrics
from .records import Headers, RecordCodec

log = logging.getLogger(__name__)

REPUBLISH_AFTER_S = 5.0  # own record still unread this long after writing it: write it again
OWN_RECORD_REWRITE_MIN_S = 1.0  # a foreign record under this node's id is answered at once, at most this often
MAX_LOGGED_REJECTIONS = 256  # distinct (key, reason) pairs logged; later ones are only counted

# What `due` asks of the driver: write this node's record again, because ...
ANSWER_FOREIGN = "answer_foreign"  # ... a record under its id was not its own
REPLACE_MISSING = "replace_missing"  # ... it is live but its record is missing from the topic

View = tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class Record:
    """One record of the members topic as read: `value` None is a tombstone."""

    key: bytes | None
    value: bytes | None
    headers: Headers | None
    partition: int
    offset: int


class Roster:
    def __init__(self, me: Member, codec: RecordCodec, topic: str, metrics: ClusterMetrics,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.me = me
        self._codec = codec
        self._topic = topic  # only named in log lines
        self._metrics = metrics
        self._clock = clock
        self._records: dict[str, Member] = {}
        self._live_ids: frozenset[str] = frozenset()
        self._view: View = ()
        self._own_write: tuple[int, int] | None = None  # (partition, offset) of this node's latest record
        self._next_republish = 0.0
        self._missing = False  # live, and its record is missing from the topic
        self._rewrite_own_at: float | None = None  # when to write this node's record again, after a foreign one
        self._last_own_rewrite = float("-inf")
        self._held_tombstones: set[str] = set()  # live nodes whose (unauthenticated) tombstone waits for them to leave
        self._logged_rejections: set[tuple[str, str]] = set()

    @property
    def view(self) -> View:
        return self._view

    @property
    def records(self) -> Mapping[str, Member]:
        """Every node's record as read (live or not); read-only."""
        return MappingProxyType(self._records)

    # --- what this node wrote ----------------------------------------------------------------

    def reading_again(self) -> None:
        """The driver reads the topic from the beginning again (a new reader): nothing of this process's
        is known to be written yet."""
        self._own_write = None

    def writing(self) -> None:
        """This node writes its record or its tombstone now."""
        self._next_republish = self._clock() + REPUBLISH_AFTER_S

    def written(self, partition: int, offset: int) -> None:
        """Where this node's record landed: records under its id before it are its own history."""
        self._own_write = (partition, offset)

    # --- inputs ------------------------------------------------------------------------------

    def read(self, records: Iterable[Record]) -> bool:
        """Take records of the members topic into account; True if the view changed."""
        changed = False
        for record in records:
            try:
                changed |= self._apply(record)
            except RecordRejected as rejected:
                self._reject(record.key, rejected.reason, rejected.detail)
            except Exception as error:  # a bug of ours, or a record nobody foresaw: skip it, keep reading
                self._reject(record.key, "error", f"{type(error).__name__}: {error}", exc_info=True)
        return self._update_view() if changed else False

    def live(self, live_ids: frozenset[str]) -> bool:
        """The group's live members now; True if the view changed."""
        if self.me.node_id in live_ids and self.me.node_id not in self._records and self._clock() > self._next_republish:
            if not self._missing:
                log.warning("this node's record is missing from %s; writing it again", self._topic)
            self._missing = True
        if live_ids == self._live_ids:
            return False
        self._live_ids = live_ids
        for node_id in self._held_tombstones - live_ids:  # left the group: its tombstone counts now
            self._records.pop(node_id, None)
        self._held_tombstones &= live_ids
        return self._update_view()

    def left(self) -> bool:
        """This node stopped (or lost) its clients: it is no member until it joins again; True if the view changed."""
        self._live_ids = self._live_ids - {self.me.node_id}
        self._records.pop(self.me.node_id, None)
        return self._update_view()

    # --- outputs -----------------------------------------------------------------------------

    def due(self) -> str | None:
        """ANSWER_FOREIGN or REPLACE_MISSING when this node must write its own record now, else None."""
        now = self._clock()
        if self._rewrite_own_at is not None and now >= self._rewrite_own_at:
            self._rewrite_own_at = None
            self._last_own_rewrite = now
            self._metrics.own_record_rewrites.inc()
            return ANSWER_FOREIGN
        if self._missing:
            self._missing = False
            return REPLACE_MISSING
        return None

    # --- the records ---------------------------------------------------------------------------

    def _apply(self, record: Record) -> bool:
        """Take one record into account; True if the known records changed."""
        key, value = record.key, record.value
        # This process's own older records, read back before its latest write, are history, not forgeries.
        mine_before = self._own_write is not None and (record.partition, record.offset) < self._own_write \
            and record.partition == self._own_write[0]
        if value is None:
            if key is None:
                raise RecordRejected("key_mismatch", "a tombstone without a key")
            node_id = key.decode(errors="replace")
            if node_id == self.me.node_id:
                if not mine_before:  # this node writes its own tombstone only as it stops reading
                    self._foreign_own_record("a tombstone")
                return False
            if node_id in self._live_ids:  # unauthenticated: it takes effect once the node has left the group
                self._held_tombstones.add(node_id)
                return False
            return self._records.pop(node_id, None) is not None
        member = self._codec.decode(key, value, record.headers)
        if member.node_id == self.me.node_id:
            if member != self.me:
                if not mine_before:
                    self._foreign_own_record(f"a different record ({member.advertised_host}, ports {member.port_start}+{member.port_count})")
                return False
        self._held_tombstones.discard(member.node_id)
        changed = self._records.get(member.node_id) != member
        self._records[member.node_id] = member
        return changed

    def _reject(self, key: bytes | None, reason: str, detail: str, exc_info: bool = False) -> None:
        """Count an ignored record; log it once per (key, reason), for at most MAX_LOGGED_REJECTIONS pairs."""
        self._metrics.member_records_rejected.labels(reason).inc()
        label = shown(None if key is None else key.decode(errors="replace"))
        if (label, reason) in self._logged_rejections or len(self._logged_rejections) > MAX_LOGGED_REJECTIONS:
            return
        self._logged_rejections.add((label, reason))
        if len(self._logged_rejections) > MAX_LOGGED_REJECTIONS:
            log.warning("more ignored member records than %d distinct keys and reasons: from now on only counted "
                        "(gateway_cluster_member_records_rejected)", MAX_LOGGED_REJECTIONS)
            return
        log.warning("ignoring a member record under key %s on %s (%s): %s; later ones with this key and reason are "
                    "only counted", label, self._topic, reason, detail, exc_info=exc_info)

    def _foreign_own_record(self, what: str) -> None:
        if self._rewrite_own_at is None:
            self._rewrite_own_at = max(self._clock(), self._last_own_rewrite + OWN_RECORD_REWRITE_MIN_S)
        log.warning("read %s under this node's id %s on %s; writing this node's record again", what, self.me.node_id, self._topic)

    def _update_view(self) -> bool:
        view = tuple(self._records[node_id] for node_id in sorted(self._live_ids) if node_id in self._records)
        if view == self._view:
            return False
        self._view = view
        log.info("cluster members: %s", ", ".join(f"{m.node_id}@{m.advertised_host}({m.rack or '-'})" for m in view) or "none")
        return True

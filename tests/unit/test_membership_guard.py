"""Membership's handling of hostile records and of its own failures, without a network.

Fake messages go through `_read_records` (what the reader hands over), a fake `_run` through the
supervisor. The same behaviour against the lab's brokers: tests/e2e/test_cluster_member_records.py.
"""

from __future__ import annotations

import itertools
import threading

import pytest
from confluent_kafka import KafkaError
from prometheus_client import CollectorRegistry

from gateway_app.cluster import membership as membership_module
from gateway_app.cluster.records import RecordCodec
from gateway_app.member import Member
from gateway_app.cluster.membership import Membership
from gateway_app.cluster.metrics import ClusterMetrics

SECRET = "unit-test-secret-0123456789"
ME = Member("gw1", "198.18.0.11", "rack-a", 6969, 10)
GW2 = Member("gw2", "198.18.0.12", "rack-b", 6969, 10)
CODEC = RecordCodec("lab", SECRET)


class Message:
    offsets = iter(range(100, 10_000))

    def __init__(self, key: bytes | None, value: bytes | None, headers=None, partition: int = 0, error=None) -> None:
        self._key, self._value, self._headers, self._partition = key, value, headers, partition
        self._offset, self._error = next(Message.offsets), error

    def key(self): return self._key
    def value(self): return self._value
    def headers(self): return self._headers
    def partition(self): return self._partition
    def offset(self): return self._offset
    def error(self): return self._error


def record(member: Member, codec: RecordCodec = CODEC, key: bytes | None = None) -> Message:
    value, headers = codec.encode(member)
    return Message(member.node_id.encode() if key is None else key, value, headers)


class Reader:
    def __init__(self, *batches: list[Message]) -> None:
        self.batches = list(batches)

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        return self.batches.pop(0) if self.batches else []


def node() -> tuple[Membership, ClusterMetrics]:
    metrics = ClusterMetrics(CollectorRegistry())
    membership = Membership(ME, "lab", {}, 10.0, lambda view: None, None, secret=SECRET, metrics=metrics)
    membership._update_view = lambda: setattr(membership, "_view", tuple(
        membership._records[n] for n in sorted(membership._live_ids) if n in membership._records))
    membership._live_ids = frozenset({"gw1", "gw2"})
    membership._own_write = (0, 50)
    membership._records = {"gw1": ME}
    membership.published = []
    membership._publish_record = lambda value, headers=None: membership.published.append(value)
    return membership, metrics


def rejections(metrics: ClusterMetrics) -> dict[str, float]:
    return {s.labels["reason"]: s.value for s in metrics.member_records_rejected.collect()[0].samples
            if s.name.endswith("_total") and s.value}


def test_forged_and_malformed_records_change_nothing_and_are_counted_and_logged_once(caplog):
    membership, metrics = node()
    membership._read_records(Reader([record(GW2)]))
    view = membership.view
    forged = Member("gw2", "198.18.0.250", "rack-b", 6969, 10)
    other_cluster = RecordCodec("lab", "another-secret-0123456789")
    value, headers = CODEC.encode(GW2)
    attacks = [
        Message(b"gw2", forged.encode()),  # unsigned
        Message(b"gw2", forged.encode()),  # the same again: counted, not logged again
        record(forged, other_cluster),  # signed with the wrong secret
        Message(b"gw2", b'{"node_id": "gw2", "advertised_host": "h", "rack": null, "port_start": 1e400, "port_count": 10}'),
        Message(b"gw2", b"\x00\xffgarbage"),
        Message(b"gw3", value, headers),  # a valid record under another key
        Message(None, None),  # a tombstone without a key
        Message(None, None, error=KafkaError(KafkaError._PARTITION_EOF)),
    ]
    membership._read_records(Reader(attacks))
    assert membership.view == view == (ME, GW2)
    assert rejections(metrics) == {"unsigned": 4, "bad_mac": 1, "key_mismatch": 2}
    logged = [r.getMessage() for r in caplog.records if "ignoring a member record" in r.getMessage()]
    assert len(logged) == 4, logged  # once per (key, reason)
    assert not membership.published


def test_an_exception_while_handling_one_record_is_contained(monkeypatch):
    membership, metrics = node()
    decode = membership._codec.decode

    def explode_on_gw3(key, value, headers):
        if key == b"gw3":
            raise ZeroDivisionError("a bug")
        return decode(key, value, headers)

    monkeypatch.setattr(membership._codec, "decode", explode_on_gw3)
    membership._read_records(Reader([record(Member("gw3", "h3", None, 6969, 10)), record(GW2)]))
    assert membership._records["gw2"] == GW2  # the record after the failing one was read
    assert rejections(metrics) == {"error": 1}


def test_a_foreign_record_under_its_own_id_is_answered_by_writing_its_own_at_once():
    membership, metrics = node()
    forged = Member("gw1", "198.18.0.250", "rack-a", 6969, 10)
    membership._read_records(Reader([record(forged)]))
    assert membership._records["gw1"] == ME  # never takes the forgery for its own view
    membership._rewrite_own_record_if_due()
    assert membership.published == [CODEC.encode(ME)[0]]
    assert metrics.own_record_rewrites._value.get() == 1
    # A second one right after is answered too, but not before OWN_RECORD_REWRITE_MIN_S has passed.
    membership._read_records(Reader([Message(b"gw1", None)]))  # a tombstone under its id
    membership._rewrite_own_record_if_due()
    assert len(membership.published) == 1 and membership._rewrite_own_at is not None
    membership._rewrite_own_at = 0.0
    membership._rewrite_own_record_if_due()
    assert len(membership.published) == 2


def test_its_own_older_records_read_back_at_start_are_history_not_forgeries():
    membership, metrics = node()
    older = Member("gw1", "198.18.0.99", "rack-a", 6969, 10)
    old_record, old_tombstone = record(older), Message(b"gw1", None)
    old_record._offset, old_tombstone._offset = 10, 11  # before this process's write at offset 50
    membership._read_records(Reader([old_record, old_tombstone]))
    membership._rewrite_own_record_if_due()
    assert not membership.published and membership._records["gw1"] == ME


def test_a_tombstone_for_a_live_node_waits_until_it_leaves_the_group():
    membership, _ = node()
    membership._read_records(Reader([record(GW2)]))
    membership._read_records(Reader([Message(b"gw2", None)]))
    assert GW2 in membership.view

    class Group:
        def client_ids(self):
            return frozenset({"gw1"})

    membership._refresh_live(Group())
    assert membership.view == (ME,) and "gw2" not in membership._records


class Stopping:
    """A threading.Event whose waits return at once, recording how long they would have been."""

    def __init__(self) -> None:
        self.event, self.waits = threading.Event(), []

    def is_set(self) -> bool:
        return self.event.is_set()

    def set(self) -> None:
        self.event.set()

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return self.event.is_set()


def test_the_supervisor_restarts_a_dying_loop_with_a_growing_backoff_and_says_so(monkeypatch):
    metrics = ClusterMetrics(CollectorRegistry())
    membership = Membership(ME, "lab", {}, 10.0, lambda view: None, None, secret=SECRET, metrics=metrics)
    membership._stopping = stopping = Stopping()
    runs = []

    def run():
        runs.append(1)
        if len(runs) <= 8:
            raise RuntimeError(f"boom {len(runs)}")
        if len(runs) == 9:
            return  # returned without being asked to stop: restarted too
        stopping.set()

    monkeypatch.setattr(membership, "_run", run)
    membership._supervise()
    assert len(runs) == 10
    assert stopping.waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert metrics.membership_restarts._value.get() == 9 and membership.restarts == 9
    detail = membership.status().detail
    assert "membership restarted 9 times, last error: the membership loop returned unasked" in detail


def test_a_loop_that_ran_long_before_dying_restarts_from_the_first_backoff(monkeypatch):
    membership = Membership(ME, "lab", {}, 10.0, lambda view: None, None, secret=SECRET)
    membership._stopping = stopping = Stopping()
    clock = itertools.chain([0.0, 0.1, 1.0, 1.1, 2.0, 100.0, 200.0], itertools.repeat(300.0))
    monkeypatch.setattr(membership_module.time, "monotonic", lambda: next(clock))
    runs = []

    def run():
        runs.append(1)
        if len(runs) == 4:
            stopping.set()
            return
        raise RuntimeError("boom")

    monkeypatch.setattr(membership, "_run", run)
    membership._supervise()
    assert stopping.waits == [0.5, 1.0, 0.5]
    assert "RuntimeError: boom" in membership.status().detail

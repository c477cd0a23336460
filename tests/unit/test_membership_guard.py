"""Membership's handling of hostile records and of its own failures, without a network.

Records go to the roster (cluster/roster.py) as the driver hands them over, and its answers are read
through its public methods; the supervisor runs a fake loop. The same behaviour against the lab's
brokers: tests/e2e/test_cluster_member_records.py.
"""

from __future__ import annotations

import itertools
import threading

from prometheus_client import CollectorRegistry

from gateway_app.cluster.membership import Membership, Supervisor
from gateway_app.cluster.metrics import ClusterMetrics
from gateway_app.cluster.records import RecordCodec
from gateway_app.cluster.roster import ANSWER_FOREIGN, OWN_RECORD_REWRITE_MIN_S, REPLACE_MISSING, Record, Roster
from gateway_app.member import Member

SECRET = "unit-test-secret-0123456789"
ME = Member("gw1", "198.18.0.11", "rack-a", 6969, 10)
GW2 = Member("gw2", "198.18.0.12", "rack-b", 6969, 10)
CODEC = RecordCodec("lab", SECRET)
OFFSETS = itertools.count(100)  # every record a later offset than this process's write at 50


def message(key: bytes | None, value: bytes | None, headers=None, offset: int | None = None) -> Record:
    return Record(key, value, headers, 0, next(OFFSETS) if offset is None else offset)


def record(member: Member, codec: RecordCodec = CODEC, key: bytes | None = None) -> Record:
    value, headers = codec.encode(member)
    return message(member.node_id.encode() if key is None else key, value, headers)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def node(codec: RecordCodec = CODEC) -> tuple[Roster, ClusterMetrics, Clock]:
    """A roster of node gw1, live together with gw2, that has written its record at offset 50 and read it."""
    metrics, clock = ClusterMetrics(CollectorRegistry()), Clock()
    roster = Roster(ME, codec, "_gateway_lab_members", metrics, clock)
    roster.writing()
    roster.written(0, 50)
    roster.live(frozenset({"gw1", "gw2"}))
    roster.read([record(ME)])
    assert roster.view == (ME,) and roster.due() is None
    return roster, metrics, clock


def rejections(metrics: ClusterMetrics) -> dict[str, float]:
    return {s.labels["reason"]: s.value for s in metrics.member_records_rejected.collect()[0].samples
            if s.name.endswith("_total") and s.value}


def test_forged_and_malformed_records_change_nothing_and_are_counted_and_logged_once(caplog):
    membership, metrics, _ = node()
    assert membership.read([record(GW2)])
    view = membership.view
    forged = Member("gw2", "198.18.0.250", "rack-b", 6969, 10)
    other_cluster = RecordCodec("lab", "another-secret-0123456789")
    value, headers = CODEC.encode(GW2)
    attacks = [
        message(b"gw2", forged.encode()),  # unsigned
        message(b"gw2", forged.encode()),  # the same again: counted, not logged again
        record(forged, other_cluster),  # signed with the wrong secret
        message(b"gw2", b'{"node_id": "gw2", "advertised_host": "h", "rack": null, "port_start": 1e400, "port_count": 10}'),
        message(b"gw2", b"\x00\xffgarbage"),
        message(b"gw3", value, headers),  # a valid record under another key
        message(None, None),  # a tombstone without a key
    ]
    assert not membership.read(attacks)
    assert membership.view == view == (ME, GW2)
    assert rejections(metrics) == {"unsigned": 4, "bad_mac": 1, "key_mismatch": 2}
    logged = [r.getMessage() for r in caplog.records if "ignoring a member record" in r.getMessage()]
    assert len(logged) == 4, logged  # once per (key, reason)
    assert membership.due() is None  # nothing to write


class ExplodingCodec(RecordCodec):
    """A codec with a bug that shows on gw3's record."""

    def decode(self, key, value, headers):
        if key == b"gw3":
            raise ZeroDivisionError("a bug")
        return super().decode(key, value, headers)


def test_an_exception_while_handling_one_record_is_contained():
    membership, metrics, _ = node(ExplodingCodec("lab", SECRET))
    membership.read([record(Member("gw3", "h3", None, 6969, 10)), record(GW2)])
    assert membership.records["gw2"] == GW2  # the record after the failing one was read
    assert rejections(metrics) == {"error": 1}


def own_record_rewrites(metrics: ClusterMetrics) -> float:
    return next(s.value for s in metrics.own_record_rewrites.collect()[0].samples if s.name.endswith("_total"))


def test_a_foreign_record_under_its_own_id_is_answered_by_writing_its_own_at_once():
    membership, metrics, clock = node()
    forged = Member("gw1", "198.18.0.250", "rack-a", 6969, 10)
    membership.read([record(forged)])
    assert membership.records["gw1"] == ME  # never takes the forgery for its own view
    assert membership.due() == ANSWER_FOREIGN and membership.due() is None
    assert own_record_rewrites(metrics) == 1
    # A second one right after is answered too, but not before OWN_RECORD_REWRITE_MIN_S has passed.
    membership.read([message(b"gw1", None)])  # a tombstone under its id
    assert membership.due() is None
    clock.now += OWN_RECORD_REWRITE_MIN_S
    assert membership.due() == ANSWER_FOREIGN
    assert own_record_rewrites(metrics) == 2


def test_its_own_older_records_read_back_at_start_are_history_not_forgeries():
    membership, metrics, _ = node()
    older = Member("gw1", "198.18.0.99", "rack-a", 6969, 10)
    value, headers = CODEC.encode(older)
    # both before this process's write at offset 50
    membership.read([message(b"gw1", value, headers, offset=10), message(b"gw1", None, offset=11)])
    assert membership.due() is None and membership.records["gw1"] == ME


def test_a_tombstone_for_a_live_node_waits_until_it_leaves_the_group():
    membership, _, _ = node()
    membership.read([record(GW2)])
    membership.read([message(b"gw2", None)])
    assert GW2 in membership.view
    assert membership.live(frozenset({"gw1"}))
    assert membership.view == (ME,) and "gw2" not in membership.records


def test_a_tombstone_for_a_node_not_in_the_group_counts_at_once():
    membership, _, _ = node()
    membership.live(frozenset({"gw1"}))
    membership.read([record(GW2)])
    assert membership.view == (ME,) and "gw2" in membership.records
    membership.read([message(b"gw2", None)])
    assert "gw2" not in membership.records


def test_its_own_record_missing_while_live_is_written_again_at_most_every_few_seconds():
    metrics, clock = ClusterMetrics(CollectorRegistry()), Clock()
    roster = Roster(ME, CODEC, "_gateway_lab_members", metrics, clock)
    roster.writing()  # written, not read back yet (compaction or a deletion may have removed it)
    roster.live(frozenset({"gw1"}))
    assert roster.due() is None  # too soon after the write to call it missing
    clock.now += 6.0
    roster.live(frozenset({"gw1"}))
    assert roster.due() == REPLACE_MISSING and roster.due() is None
    roster.writing()
    roster.live(frozenset({"gw1"}))
    assert roster.due() is None
    roster.read([record(ME)])
    clock.now += 6.0
    roster.live(frozenset({"gw1"}))
    assert roster.due() is None and roster.view == (ME,)  # read back: nothing missing
    assert roster.left() and roster.view == ()


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


def test_the_supervisor_restarts_a_dying_loop_with_a_growing_backoff_and_says_so():
    metrics = ClusterMetrics(CollectorRegistry())
    stopping = Stopping()
    runs = []

    def run():
        runs.append(1)
        if len(runs) <= 8:
            raise RuntimeError(f"boom {len(runs)}")
        if len(runs) == 9:
            return  # returned without being asked to stop: restarted too
        stopping.set()

    membership = Membership(ME, "lab", {}, 10.0, lambda view: None, None, secret=SECRET, metrics=metrics, stopping=stopping)
    membership.supervisor = Supervisor(run, stopping, metrics)  # a loop that dies as told, instead of the Kafka one
    membership.supervisor.supervise()
    assert len(runs) == 10
    assert stopping.waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    restarts = next(s.value for s in metrics.membership_restarts.collect()[0].samples if s.name.endswith("_total"))
    assert restarts == 9 and membership.restarts == 9
    detail = membership.status().detail
    assert "membership restarted 9 times, last error: the membership loop returned unasked" in detail


def test_a_loop_that_ran_long_before_dying_restarts_from_the_first_backoff():
    stopping = Stopping()
    clock = itertools.chain([0.0, 0.1, 1.0, 1.1, 2.0, 100.0, 200.0], itertools.repeat(300.0))
    runs = []

    def run():
        runs.append(1)
        if len(runs) == 4:
            stopping.set()
            return
        raise RuntimeError("boom")

    supervisor = Supervisor(run, stopping, ClusterMetrics(CollectorRegistry()), clock=lambda: next(clock))
    supervisor.supervise()
    assert stopping.waits == [0.5, 1.0, 0.5]
    assert "RuntimeError: boom" in supervisor.detail()

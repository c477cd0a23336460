"""Waits on Kafka that a stop cuts short (gateway_app/cluster/stop_aware.py), with real threads, real futures and,
where Kafka's part matters, real confluent-kafka clients aimed at a loopback port nothing listens on.

Each stop test fails if `answer` ignores the stop event (mutation tried: `while True:` instead of
`while not stopping.is_set():`): it then waits out the request's timeout and raises that timeout's error, not
StopRequested, and the membership tests below take the full 10 s request instead of a slice.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry

from gateway_app.cluster import membership as membership_module
from gateway_app.cluster import stop_aware
from gateway_app.cluster.group_members import GroupMembers
from gateway_app.cluster.membership import TOPIC_REQUEST_TIMEOUT_S, Membership
from gateway_app.cluster.metrics import ClusterMetrics
from gateway_app.cluster.stop_aware import WAIT_SLICE_S, StopRequested, answer, in_membership_background
from gateway_app.member import Member

# loopback, a port nothing listens on: every request times out (log_level 0: no line per refused connect in the output)
UNREACHABLE = {"bootstrap.servers": "127.0.0.1:9", "log_level": "0"}
STOP_AFTER_S = 0.3


def stop_later(stopping: threading.Event, after_s: float = STOP_AFTER_S) -> threading.Timer:
    timer = threading.Timer(after_s, stopping.set)
    timer.start()
    return timer


def timed(call):
    started = time.monotonic()
    try:
        return call(), time.monotonic() - started
    except Exception as error:
        return error, time.monotonic() - started


def test_an_answer_that_comes_is_returned():
    future: Future[str] = Future()
    threading.Timer(0.2, future.set_result, ["described"]).start()
    assert answer(future, threading.Event(), 5.0) == "described"


def test_the_requests_own_error_is_raised_as_it_is():
    future: Future[str] = Future()
    threading.Timer(0.2, future.set_exception, [KafkaException("no controller")]).start()
    with pytest.raises(KafkaException, match="no controller"):
        answer(future, threading.Event(), 5.0)


def test_a_timeout_error_that_is_the_calls_answer_is_raised_at_once():
    future: Future[str] = Future()
    future.set_exception(TimeoutError("the call's own"))
    error, took = timed(lambda: answer(future, threading.Event(), 5.0))
    assert isinstance(error, TimeoutError) and str(error) == "the call's own"
    assert took < 5.0  # not waited out to the deadline as if no answer had come


def test_a_stop_cuts_the_wait_short():
    stopping, future = threading.Event(), Future()  # nobody ever answers
    stop_later(stopping)
    error, took = timed(lambda: answer(future, stopping, 2.0))
    assert isinstance(error, StopRequested), error  # ignoring the stop: TimeoutError after 3 s
    assert STOP_AFTER_S <= took < 2.0


def test_a_stop_asked_before_the_wait_gives_up_at_once_even_on_an_answer():
    stopping, future = threading.Event(), Future()
    stopping.set()
    future.set_result("late")
    with pytest.raises(StopRequested):
        answer(future, stopping, 2.0)


def test_without_a_stop_nor_an_answer_the_wait_ends_a_grace_after_the_requests_timeout(monkeypatch):
    monkeypatch.setattr(stop_aware, "ANSWER_GRACE_S", 0.2)
    error, took = timed(lambda: answer(Future(), threading.Event(), 0.3))
    assert isinstance(error, TimeoutError) and str(error) == "no answer from Kafka within 0.5s", error
    assert 0.5 <= took < 0.5 + 10 * WAIT_SLICE_S


def test_a_blocking_call_aside_gives_its_result_its_error_and_can_be_given_up_on():
    assert answer(in_membership_background(lambda: 42), threading.Event(), 5.0) == 42
    with pytest.raises(ZeroDivisionError):
        answer(in_membership_background(lambda: 1 / 0), threading.Event(), 5.0)

    release, stopping = threading.Event(), threading.Event()
    stuck = in_membership_background(lambda: release.wait(30))
    stop_later(stopping)
    error, took = timed(lambda: answer(stuck, stopping, 30.0))
    assert isinstance(error, StopRequested) and took < 5.0
    assert not stuck.done()  # given up on, still running: on a daemon thread, so it cannot hold up the exit
    calls = [t for t in threading.enumerate() if t.name == "gateway-membership-call"]
    assert calls and all(t.daemon for t in calls)
    release.set()
    assert stuck.result(5) is True


def test_a_real_admin_request_to_an_unreachable_kafka_is_given_up_on_a_stop():
    admin, stopping = AdminClient(UNREACHABLE), threading.Event()
    stop_later(stopping)
    error, took = timed(lambda: answer(admin.describe_cluster(request_timeout=10), stopping, 10))
    assert isinstance(error, StopRequested), error  # ignoring the stop: KafkaException _TIMED_OUT after 10 s
    assert took < 5.0


def test_the_group_description_gives_up_on_a_stop_and_keeps_its_client():
    stopping = threading.Event()
    group = GroupMembers(UNREACHABLE, "_gateway_unit", stopping, request_timeout_s=10)
    client = group._admin
    stop_later(stopping)
    error, took = timed(group.client_ids)
    assert isinstance(error, StopRequested) and took < 5.0, error
    assert group._admin is client  # a stop is no failure of the coordinator: no new client for a lookup


def abandoned(registry: CollectorRegistry, wait: str) -> float:
    return registry.get_sample_value("gateway_cluster_stop_waits_abandoned_total", {"wait": wait})


def member(stopping: threading.Event, metrics: ClusterMetrics) -> Membership:
    return Membership(Member("gw-a", "10.0.0.1", None, 6969, 10), "c1", UNREACHABLE, 10.0, lambda view: None, None,
                      secret="unit-test-secret-0123456789", metrics=metrics, stopping=stopping)


def test_a_node_stopping_while_kafka_is_unreachable_stops_finding_the_members_topic_at_once():
    """What held a stop for 10 s (tests/e2e/test_dataplane.py::test_not_ready_while_kafka_is_unreachable)."""
    registry, stopping = CollectorRegistry(), threading.Event()
    node = member(stopping, ClusterMetrics(registry))
    stop_later(stopping)
    partitions, took = timed(lambda: node.wait_for_topic(AdminClient(UNREACHABLE)))
    assert partitions == [] and took < TOPIC_REQUEST_TIMEOUT_S / 2
    assert abandoned(registry, "request") == 1


def test_the_leaves_tombstone_is_waited_for_a_bounded_time(monkeypatch):
    from confluent_kafka import Producer

    monkeypatch.setattr(membership_module, "LEAVE_TOMBSTONE_S", 0.3)
    registry = CollectorRegistry()
    node = member(threading.Event(), ClusterMetrics(registry))
    node._producer = Producer({**UNREACHABLE, "acks": "all", "linger.ms": 0})
    _, took = timed(node._write_tombstone)
    assert 0.3 <= took < 3.0
    assert abandoned(registry, "tombstone") == 1


class StuckMembership(Membership):
    """A membership whose loop ignores the stop until released (as a Kafka call with no stop check would)."""

    release = threading.Event()

    def _run(self) -> None:
        self.release.wait(30)


def test_a_thread_still_busy_after_the_stops_wait_is_left_behind_and_counted(caplog):
    registry, stopping = CollectorRegistry(), threading.Event()
    node = StuckMembership(Member("gw-a", "10.0.0.1", None, 6969, 10), "c1", UNREACHABLE, 10.0, lambda view: None,
                           None, secret="unit-test-secret-0123456789", metrics=ClusterMetrics(registry), stopping=stopping)
    node.start()
    _, took = timed(lambda: node.stop(timeout_s=0.2))
    assert took < 5.0 and node.running
    assert abandoned(registry, "thread") == 1
    assert [r for r in caplog.records if "still busy with the backing Kafka" in r.getMessage()]
    StuckMembership.release.set()
    node.stop()
    assert not node.running and abandoned(registry, "thread") == 1

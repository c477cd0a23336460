"""Membership start-up without a network: finding the members topic, with fake admin calls.

A topic that exists but is missing from the metadata of the broker asked (it lags creation, more so
on a loaded host or while brokers restart) is asked about again at once; only an unreachable Kafka
or a failing creation backs off. One growing backoff for both made a few seconds of metadata lag
cost 20-30 s, and a node missed its readiness wait ("members topic has no partitions").
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException

from gateway_app.cluster import membership as membership_module
from gateway_app.member import Member
from gateway_app.cluster.membership import PROPAGATION_POLL_S, Membership


class Future:
    def __init__(self, value=None, error: Exception | None = None) -> None:
        self.value, self.error = value, error

    def result(self, timeout=None):
        if self.error:
            raise self.error
        return self.value


class FakeAdmin:
    """create_topics fails `create_failures` times, then succeeds or finds the topic made by another node;
    list_topics leaves the topic out `lagging` times, then lists one partition."""

    def __init__(self, topic: str, lagging: int, create_failures: int = 0, exists: bool = False) -> None:
        self.topic, self.lagging, self.create_failures, self.exists = topic, lagging, create_failures, exists
        self.creates = self.lists = 0

    def describe_cluster(self, request_timeout=None):
        return Future(SimpleNamespace(nodes=[1, 2, 3]))

    def create_topics(self, topics, request_timeout=None):
        self.creates += 1
        if self.creates <= self.create_failures:
            return {self.topic: Future(error=KafkaException(KafkaError(KafkaError._TRANSPORT)))}
        if self.exists:
            return {self.topic: Future(error=KafkaException(KafkaError(KafkaError.TOPIC_ALREADY_EXISTS)))}
        return {self.topic: Future()}

    def list_topics(self, topic, timeout=None):
        self.lists += 1
        if self.lists <= self.lagging:
            error = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
            return SimpleNamespace(topics={topic: SimpleNamespace(partitions={}, error=error)})
        return SimpleNamespace(topics={topic: SimpleNamespace(partitions={0: object()}, error=None)})


class Stopping:
    """threading.Event stand-in: never set; records how long each wait would have been."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def is_set(self) -> bool:
        return False

    def set(self) -> None:
        raise AssertionError("nothing here stops the membership")

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return False


def member() -> tuple[Membership, Stopping]:
    stopping = Stopping()
    node = Membership(Member("gw-a", "10.0.0.1", None, 6969, 10), "c1", {}, 10.0, lambda view: None, None,
                      secret="unit-test-secret-0123456789", stopping=stopping)
    return node, stopping


@pytest.mark.parametrize("made_by_another_node", [False, True])
def test_metadata_lag_is_polled_quickly_and_the_topic_is_not_created_again(monkeypatch, made_by_another_node):
    node, stopping = member()
    admin = FakeAdmin(node.topic, lagging=40, exists=made_by_another_node)  # 10 s of lag at the poll interval
    assert node.wait_for_topic(admin) == [0]
    assert admin.creates == 1 and admin.lists == 41
    assert stopping.waits == [PROPAGATION_POLL_S] * 40
    assert sum(stopping.waits) == pytest.approx(10.0)
    # The old doubling backoff asked at 0, 0.2, 0.6, 1.4, 3.0, 6.2, 12.6, 22.6, 32.6 s, and created the
    # topic again each time: a topic listed from 12.7 s on was found only after 30 s.


def test_an_unreachable_kafka_backs_off_then_the_topic_is_found(monkeypatch):
    node, stopping = member()
    admin = FakeAdmin(node.topic, lagging=1, create_failures=5)
    assert node.wait_for_topic(admin) == [0]
    assert stopping.waits == [0.2, 0.4, 0.8, 1.6, 3.2, PROPAGATION_POLL_S]
    assert admin.creates == 6


def test_a_lagging_topic_is_warned_about_and_shows_in_the_readiness_detail(monkeypatch, caplog):
    node, _ = member()
    clock = itertools.count(0.0, 3.0)  # every look at the clock is 3 s later
    monkeypatch.setattr(membership_module.time, "monotonic", lambda: next(clock))
    admin = FakeAdmin(node.topic, lagging=3)
    assert node.wait_for_topic(admin) == [0]
    assert [r.message for r in caplog.records if "not in the metadata yet" in r.message][:1]
    status = node.status()
    assert not status.joined and status.detail == "starting: members topic found; joining the group"


class LaggingListingAdmin(FakeAdmin):
    """The members topic is listed when asked for by name, but the broker answering the full listing does not have
    it in its metadata yet; describe_topics gives each topic an id of its own."""

    def __init__(self, topic: str, others: list[str]) -> None:
        super().__init__(topic, lagging=0)
        self.others = others
        self.described: list[str] = []

    def list_topics(self, topic=None, timeout=None):
        if topic is not None:
            return super().list_topics(topic, timeout)
        return SimpleNamespace(topics={name: object() for name in self.others})

    def describe_topics(self, collection, request_timeout=None):
        self.described = list(collection.topic_names)
        return {name: Future(SimpleNamespace(topic_id=SimpleNamespace(
            get_most_significant_bits=lambda n=name: hash(n) & 0xFFFF, get_least_significant_bits=lambda: 1)))
            for name in self.described}


def test_the_members_topic_id_is_learnt_even_when_the_full_listing_lags_its_creation():
    """Left out, the members topic's id would pass the guard by id (the node would say it knows every reserved id):
    the full listing comes from whichever broker answers, which may not have the just-created topic yet."""
    learnt: list[list[bytes]] = []
    stopping = Stopping()
    node = Membership(Member("gw-a", "10.0.0.1", None, 6969, 10), "c1", {}, 10.0, lambda view: None, None,
                      secret="unit-test-secret-0123456789", stopping=stopping, on_reserved_topic_ids=learnt.append)
    extra = f"{node.group}_extra"
    admin = LaggingListingAdmin(node.topic, ["orders", extra])
    assert node.wait_for_topic(admin) == [0]
    assert sorted(admin.described) == sorted([node.topic, extra])
    assert len(learnt) == 1 and len(learnt[0]) == 2

"""ClusterTopology's bookkeeping around the mapping, without a network: epochs, rack hints, modes.

Brokers reach the topology the one way they do in a node: through a BrokerDirectory that tells it when
its set changes (a broker a response names: `learn`; a DescribeCluster: `described`)."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gateway_app.member import Member
from gateway_app.cluster.topology import ClusterTopology
from gateway_app.config import load_settings
from gateway_app.broker_addresses import BrokerInfo, BrokerOutOfRange
from gateway_app.proxy.directory import BrokerDirectory

A = Member("gw-a", "10.0.0.1", "rack-a", 6969, 10)
B = Member("gw-b", "10.0.0.2", "rack-b", 6969, 10)


def topology(internal: bool = True, **options) -> tuple[ClusterTopology, CollectorRegistry]:
    registry = CollectorRegistry()
    settings = load_settings({
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9", "GATEWAY_CLUSTER_SECRET": "unit-test-secret-0123456789",
        "GATEWAY_NODE_ID": "gw-a", "GATEWAY_RACK_ID": "rack-a", "GATEWAY_ADVERTISED_HOST": "10.0.0.1",
        "GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING": str(internal).lower(),
    })
    return ClusterTopology(settings, registry, **options), registry


def directory_of(node: ClusterTopology) -> BrokerDirectory:
    """A real directory (never asked to refresh: no network) that tells the topology, as app.py wires it."""
    return BrokerDirectory({}, (), 1.0, on_change=node.brokers_changed)


def broker(broker_id: int, rack: str | None) -> BrokerInfo:
    return BrokerInfo(broker_id, f"192.0.2.{broker_id}", 9092, rack)


def tell(node: ClusterTopology, *brokers: tuple[int, str | None]) -> BrokerDirectory:
    """A directory that has learnt these (id, rack) brokers from responses, wired to the topology."""
    directory = directory_of(node)
    for broker_id, rack in brokers:
        directory.learn(broker(broker_id, rack))
    return directory


def test_brokers_follow_their_rack_and_the_epoch_counts_changes_only():
    node, registry = topology()
    node.members_changed((A, B))
    directory = tell(node, (1, "rack-a"), (2, "rack-b"))
    assert node.broker_endpoint(1) == ("10.0.0.1", 6970)
    assert node.broker_endpoint(2) == ("10.0.0.2", 6971)
    epoch = node.epoch
    directory.learn(broker(2, "rack-b"))
    node.members_changed((A, B))
    assert node.epoch == epoch
    node.members_changed((A,))
    assert node.broker_endpoint(2) == ("10.0.0.1", 6971)
    assert node.epoch == epoch + 1
    metrics = generate_latest(registry).decode()
    assert f"gateway_cluster_mapping_epoch {float(epoch + 1)}" in metrics
    assert 'gateway_cluster_members_per_rack{rack="rack-b"} 0.0' in metrics


def test_a_missing_rack_hint_never_erases_a_known_rack():
    node, _ = topology()
    node.members_changed((A, B))
    directory = tell(node, (2, "rack-b"))
    epoch = node.epoch
    directory.learn(broker(2, None))  # e.g. Metadata v0
    assert node.broker_endpoint(2) == ("10.0.0.2", 6971)
    assert node.epoch == epoch and directory.brokers[2].rack == "rack-b"


def test_reading_an_endpoint_changes_nothing():
    node, _ = topology()
    node.members_changed((A, B))
    epoch, digest = node.epoch, node.mapping_digest()
    assert node.broker_endpoint(2) == ("10.0.0.1", 6971)  # not told of yet (e.g. a FindCoordinator): served here
    assert node.epoch == epoch and node.mapping_digest() == digest
    tell(node, (2, "rack-b"))
    assert node.broker_endpoint(2) == ("10.0.0.2", 6971) and node.epoch == epoch + 1


def test_a_describe_cluster_replaces_the_brokers_learnt_from_responses():
    node, _ = topology()
    node.members_changed((A, B))
    directory = tell(node, (1, "rack-a"), (2, "rack-b"), (3, "rack-b"))
    epoch = node.epoch
    directory.described([broker(1, "rack-a"), broker(2, "rack-b")])  # broker 3 is gone from the backing cluster
    assert sorted(directory.brokers) == [1, 2]
    assert node.epoch == epoch + 1 and sorted(node.view(directory.brokers)["mapping"]) == ["1", "2"]
    directory.described([broker(1, "rack-a"), broker(2, "rack-b")])  # the same answer again: nothing changes
    assert node.epoch == epoch + 1


def test_broker_ids_outside_the_port_range_are_an_error_in_both_modes():
    for internal in (True, False):
        node, _ = topology(internal)
        with pytest.raises(BrokerOutOfRange):
            node.broker_endpoint(42)


def test_external_mode_advertises_only_the_advertised_host():
    node, _ = topology(internal=False)
    node.members_changed((A, B))
    tell(node, (2, "rack-b"))
    assert node.broker_endpoint(2) == ("10.0.0.1", 6971)
    assert node.view({})["mode"] == "external"


def test_alone_or_leaving_the_node_maps_to_itself_or_the_others():
    node, _ = topology()
    tell(node, (1, "rack-a"), (2, "rack-b"))
    assert node.broker_endpoint(2) == ("10.0.0.1", 6971)  # before any view: itself
    node.members_changed((A, B))
    asyncio.run(node.stop())  # never started: only the mapping side of leaving
    assert node.broker_endpoint(1) == ("10.0.0.2", 6970)
    assert not node.readiness_check().ok


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


C = Member("gw-c", "10.0.0.3", "rack-c", 6969, 10)


def unsettled_topology(internal: bool = True) -> tuple[ClusterTopology, Clock, CollectorRegistry]:
    clock = Clock()
    node, registry = topology(internal, clock=clock)
    return node, clock, registry


def test_every_coordinator_is_refused_once_per_connection_for_a_while_after_a_node_left():
    from gateway_app.cluster.topology import COORDINATOR_RESET_WINDOW_S
    node, clock, registry = unsettled_topology(True)
    first, second = {}, {}  # two client connections' records of their refusals
    node.members_changed((A, B, C))
    tell(node, (1, "rack-a"), (2, "rack-b"), (3, "rack-c"))
    assert all(node.coordinator_available(b, first) for b in (1, 2, 3))  # nobody left

    node.members_changed((A, B))  # gw-c (broker 3) leaves: 3 moves, 1 and 2 stay, and all three are unsettled
    assert [node.coordinator_available(3, first) for _ in range(3)] == [False, True, True]
    assert [node.coordinator_available(1, first) for _ in range(2)] == [False, True]
    assert [node.coordinator_available(3, second) for _ in range(2)] == [False, True]
    clock.now += COORDINATOR_RESET_WINDOW_S
    assert all(node.coordinator_available(b, {}) for b in (1, 2, 3))  # window over: a new connection is not refused
    assert "gateway_cluster_coordinator_lookups_refused_total 3.0" in generate_latest(registry).decode()


def test_a_connection_refused_in_one_window_is_refused_again_in_the_next():
    node, clock, _ = unsettled_topology(True)
    connection = {}
    node.members_changed((A, B, C))
    tell(node, (3, "rack-c"))
    node.members_changed((A, B))  # gw-c leaves: broker 3 moves to a rack-a/b node
    assert not node.coordinator_available(3, connection) and node.coordinator_available(3, connection)
    clock.now += 5
    serving = next(m for m in (A, B) if m.advertised_host == node.broker_endpoint(3)[0])
    node.members_changed((C, *(m for m in (A, B) if m != serving)))  # ... and the node that took broker 3 leaves too
    assert not node.coordinator_available(3, connection)  # a new window: this connection is refused once more
    assert node.coordinator_available(3, connection)


def test_a_join_unsettles_nothing():
    node, _, _ = unsettled_topology(True)
    node.members_changed((A, C))  # no rack-b node yet
    tell(node, (2, "rack-b"))
    node.members_changed((A, B, C))  # gw-b joins and takes broker 2
    assert node.broker_endpoint(2) == (B.advertised_host, 6971) and node.coordinator_available(2, {})  # gw-b's


def test_a_node_that_never_saw_the_leaver_serve_a_broker_still_unsettles_it():
    """After a rolling restart the survivors of the last node's leaving were restarted after it stood in for
    their brokers, so they never saw it serve them; a librdkafka consumer can still hold a coordinator at its
    address (the rolling-restart scenario lost a group session so). Every broker is unsettled."""
    node, _, _ = unsettled_topology(True)
    node.members_changed((A, B, C))  # this node (re)started with every rack served by its own node
    tell(node, (1, "rack-a"), (2, "rack-b"), (3, "rack-c"))
    assert node.broker_endpoint(1) == (A.advertised_host, 6970)  # gw-a's: gw-c never served broker 1 in this node's sight
    node.members_changed((A, B))  # gw-c, which stood in for broker 1 before this node's restart, leaves
    assert not node.coordinator_available(1, {})


def test_nothing_is_unsettled_with_internal_load_balancing_off():
    node, _, _ = unsettled_topology(False)
    node.members_changed((A, B, C))
    tell(node, (3, "rack-c"))
    node.members_changed((A, B))
    assert node.coordinator_available(3, {})

"""ClusterTopology's bookkeeping around the mapping, without a network: epochs, rack hints, modes."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gateway_app.cluster.member import Member
from gateway_app.cluster.topology import ClusterTopology
from gateway_app.config import load_settings
from gateway_app.topology import BrokerOutOfRange

A = Member("gw-a", "10.0.0.1", "rack-a", 6969, 10)
B = Member("gw-b", "10.0.0.2", "rack-b", 6969, 10)


def topology(internal: bool = True) -> tuple[ClusterTopology, CollectorRegistry]:
    registry = CollectorRegistry()
    settings = load_settings({
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "GATEWAY_NODE_ID": "gw-a", "GATEWAY_RACK_ID": "rack-a", "GATEWAY_ADVERTISED_HOST": "10.0.0.1",
        "GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING": str(internal).lower(),
    })
    return ClusterTopology(settings, registry), registry


def test_member_record_round_trip():
    assert Member.decode(A.encode()) == A
    assert Member.decode(Member("x", "h", None, 1, 2).encode()).rack is None


def test_brokers_follow_their_rack_and_the_epoch_counts_changes_only():
    node, registry = topology()
    node._on_members((A, B))
    assert node.broker_endpoint(1, "rack-a") == ("10.0.0.1", 6970)
    assert node.broker_endpoint(2, "rack-b") == ("10.0.0.2", 6971)
    epoch = node.epoch
    node.broker_endpoint(2, "rack-b")
    node._on_members((A, B))
    assert node.epoch == epoch
    node._on_members((A,))
    assert node.broker_endpoint(2, "rack-b") == ("10.0.0.1", 6971)
    assert node.epoch == epoch + 1
    metrics = generate_latest(registry).decode()
    assert f"gateway_cluster_mapping_epoch {float(epoch + 1)}" in metrics
    assert 'gateway_cluster_members_per_rack{rack="rack-b"} 0.0' in metrics


def test_a_missing_rack_hint_never_erases_a_known_rack():
    node, _ = topology()
    node._on_members((A, B))
    node.broker_endpoint(2, "rack-b")
    epoch = node.epoch
    assert node.broker_endpoint(2, None) == ("10.0.0.2", 6971)  # e.g. Metadata v0 or FindCoordinator
    assert node.epoch == epoch


def test_broker_ids_outside_the_port_range_are_an_error_in_both_modes():
    for internal in (True, False):
        node, _ = topology(internal)
        with pytest.raises(BrokerOutOfRange):
            node.broker_endpoint(42, None)


def test_external_mode_advertises_only_the_advertised_host():
    node, _ = topology(internal=False)
    node._on_members((A, B))
    assert node.broker_endpoint(2, "rack-b") == ("10.0.0.1", 6971)
    assert node.view({})["mode"] == "external"


def test_alone_or_leaving_the_node_maps_to_itself_or_the_others():
    node, _ = topology()
    assert node.broker_endpoint(2, "rack-b") == ("10.0.0.1", 6971)  # before any view: itself
    node._on_members((A, B))
    asyncio.run(node.stop())  # never started: only the mapping side of leaving
    assert node.broker_endpoint(1, "rack-a") == ("10.0.0.2", 6970)
    assert not node.readiness_check().ok

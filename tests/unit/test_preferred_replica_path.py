"""KIP-392 through the gateway, the address half: a Fetch response's preferred_read_replica is a broker id, and the
client's next fetch goes to the address Metadata gave that broker, which the mapping puts on the node in the broker's
own rack; while that rack has no live node, on a node of another rack; back on the rack's node when it returns
(docs/architecture.md#rack-aware-reads)."""

from __future__ import annotations

from gateway_app.member import Member
from gateway_app.metrics import Metrics
from gateway_app.proxy.routes import Routes
from tests.unit.test_mapping_topology import broker, directory_of, topology

A = Member("gw-a", "10.0.0.1", "rack-a", 6969, 10)
B = Member("gw-b", "10.0.0.2", "rack-b", 6969, 10)
C = Member("gw-c", "10.0.0.3", "rack-c", 6969, 10)


def routes_with_three_racks() -> tuple[Routes, object]:
    node, _ = topology()
    directory = directory_of(node)
    directory.described([broker(1, "rack-a"), broker(2, "rack-b"), broker(3, "rack-c")])
    node.members_changed((A, B, C))
    return Routes(node, directory, Metrics()), node


def test_a_preferred_replica_is_reached_through_the_node_in_its_rack() -> None:
    routes, _ = routes_with_three_racks()
    # what Metadata advertises for each broker id a Fetch response may name as preferred_read_replica
    assert [routes.endpoint(b) for b in (1, 2, 3)] == [("10.0.0.1", 6970), ("10.0.0.2", 6971), ("10.0.0.3", 6972)]
    assert [routes.broker_rack(b) for b in (1, 2, 3, None)] == ["rack-a", "rack-b", "rack-c", None]


def test_a_rack_without_a_live_node_is_served_from_another_rack_and_taken_back() -> None:
    routes, node = routes_with_three_racks()
    node.members_changed((A, C))  # rack-b's only node is gone: broker 2 (rack-b) still has replicas to read
    host, port = routes.endpoint(2)
    assert port == 6971 and host in ("10.0.0.1", "10.0.0.3"), "still broker 2's port, on a node of another rack"
    node.members_changed((A, B, C))  # back: handover moves broker 2's connections to it (docs/handover.md)
    assert routes.endpoint(2) == ("10.0.0.2", 6971)

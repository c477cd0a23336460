"""ClusterTopology of three nodes in three racks against the lab's real brokers (no data plane).

The nodes run in one process here (each has its own membership thread and Kafka clients); the
Metadata-through-the-gateway tests live in test_cluster_gateway.py.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gateway_app.broker_addresses import BrokerInfo
from gateway_app.cluster.topology import ClusterTopology
from gateway_app.config import load_settings
from lab.layout import CLUSTER_SECRET
from tests.e2e.cluster_support import cluster_id  # noqa: F401  (fixture)

RACKS = ["rack-a", "rack-b", "rack-c"]


def settings_for(lab, cluster_id: str, rack: str, address: str, internal: bool = True):
    return load_settings({
        "KAFKA_BOOTSTRAP_SERVERS": lab.bootstrap_servers,
        "GATEWAY_CLUSTER_ID": cluster_id,
        "GATEWAY_CLUSTER_SECRET": CLUSTER_SECRET,
        "GATEWAY_NODE_ID": f"gw-{rack}",
        "GATEWAY_RACK_ID": rack,
        "GATEWAY_ADVERTISED_HOST": address,
        "GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING": str(internal).lower(),
    })


async def eventually(predicate, timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


async def started(lab, node: ClusterTopology) -> ClusterTopology:
    """Start a topology and hand it the brokers as the node's BrokerDirectory does (DescribeCluster, with racks):
    the directory is the one source of brokers, and it is not part of this test."""
    await node.start()
    node.brokers_changed({b.id: BrokerInfo(b.id, b.address, b.port, b.rack) for b in lab.brokers})
    return node


def endpoints(node: ClusterTopology) -> dict[int, tuple[str, int]]:
    return {b: node.broker_endpoint(b) for b in (1, 2, 3)}


@pytest.mark.lab
@pytest.mark.timeout(120)
def test_three_nodes_agree_rack_local_then_a_rack_empties_and_returns(lab, cluster_id):
    addresses = dict(zip(RACKS, lab.gateway_addresses))
    rack_of_broker = {b.id: b.rack for b in lab.brokers}

    async def scenario() -> None:
        registries = {rack: CollectorRegistry() for rack in RACKS}
        nodes = {rack: ClusterTopology(settings_for(lab, cluster_id, rack, addresses[rack]), registries[rack]) for rack in RACKS}
        for node in nodes.values():
            await started(lab, node)
        try:
            rack_local = {b: (addresses[rack_of_broker[b]], 6969 + b) for b in (1, 2, 3)}
            await eventually(lambda: all(endpoints(n) == rack_local for n in nodes.values()), 40, "rack-local mapping on every node")
            await eventually(lambda: all(n.readiness_check().ok for n in nodes.values()), 10, "every node ready")
            assert len({n.mapping_digest() for n in nodes.values()}) == 1
            metrics = generate_latest(registries["rack-a"]).decode()
            assert "gateway_cluster_members 3.0" in metrics
            assert 'gateway_cluster_members_per_rack{rack="rack-c"} 1.0' in metrics

            await nodes["rack-c"].stop()
            assert not nodes["rack-c"].readiness_check().ok
            others = [nodes["rack-a"], nodes["rack-b"]]
            took = await eventually(
                lambda: all(endpoints(n)[3][0] in (addresses["rack-a"], addresses["rack-b"]) for n in others), 5,
                "broker 3 to move off the emptied rack")
            print(f"\nrack-c emptied -> broker 3 moved on both nodes after {took:.2f}s")
            assert endpoints(others[0]) == endpoints(others[1])
            assert {b: endpoints(others[0])[b] for b in (1, 2)} == {1: rack_local[1], 2: rack_local[2]}
            assert 'gateway_cluster_members_per_rack{rack="rack-c"} 0.0' in generate_latest(registries["rack-a"]).decode()
            assert nodes["rack-c"].broker_endpoint(3)[0] != addresses["rack-c"]  # a leaving node stops naming itself

            nodes["rack-c"] = ClusterTopology(settings_for(lab, cluster_id, "rack-c", addresses["rack-c"]), CollectorRegistry())
            await started(lab, nodes["rack-c"])
            await eventually(lambda: all(endpoints(n) == rack_local for n in nodes.values()), 30, "broker 3 back in rack-c")
            view = nodes["rack-a"].view({})
            assert [m["node_id"] for m in view["members"]] == ["gw-rack-a", "gw-rack-b", "gw-rack-c"]
            assert view["epoch"] >= 3
        finally:
            for node in nodes.values():
                await node.stop()

    asyncio.run(scenario())


@pytest.mark.lab
@pytest.mark.timeout(60)
def test_external_load_balancing_advertises_only_the_advertised_host(lab, cluster_id):
    async def scenario() -> None:
        node = ClusterTopology(settings_for(lab, cluster_id, "rack-a", "gateway-lb.example", internal=False), CollectorRegistry())
        await started(lab, node)
        try:
            await eventually(lambda: node.readiness_check().ok, 30, "the node to join")
            assert endpoints(node) == {1: ("gateway-lb.example", 6970), 2: ("gateway-lb.example", 6971), 3: ("gateway-lb.example", 6972)}
            assert node.view({})["mode"] == "external"
        finally:
            await node.stop()

    asyncio.run(scenario())

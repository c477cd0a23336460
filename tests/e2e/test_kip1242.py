"""KIP-1242 (ApiVersions v5, Kafka 4.4) through the gateway: the node a client names is the broker its port stands for.

Raw ApiVersions v5 frames from the client namespace name a cluster and a node. On a broker port the gateway relays
them untouched and the broker behind the port judges: its own id is accepted, another node's (a client holding a stale
address) gets REBOOTSTRAP_REQUIRED. On the bootstrap port, which stands for no broker, the gateway relays the request
naming neither (protocol/api_versions_request.py), so whichever broker it dials accepts it. A broker before 4.4 knows
no v5 and refuses it as UNSUPPORTED_VERSION whatever it names, and the client asks again at v4.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway_app.protocol.api_keys import API_VERSIONS
from lab import kafka_versions
from tests.e2e.dataplane_support import node_fixture
from tests.e2e.test_request_guard import api_versions, closed, exchange, response

pytestmark = pytest.mark.lab

PORT_START, HTTP_PORT = 18000, 18090
REBOOTSTRAP_REQUIRED = 129
UNSUPPORTED_VERSION = 35
CLEARED = "gateway_bootstrap_nodes_cleared_total"

node = node_fixture(PORT_START, HTTP_PORT)


def answer(step: dict[str, Any], correlation: int, lab: Any) -> int:
    """The error code of an ApiVersions v5 answer (v0 when the broker refused the version, KIP-511)."""
    assert "response" in step, step
    if not kafka_versions.at_least(lab.kafka_version, 4, 4):
        return response(API_VERSIONS, 0, step["response"], correlation)["error_code"]
    return response(API_VERSIONS, 5, step["response"], correlation)["error_code"]


def test_a_broker_port_accepts_its_own_node_and_sends_a_stale_client_to_bootstrap_again(lab, node):
    port = PORT_START + 2  # stands for broker 2
    own, other_node, other_cluster = exchange(
        lab, node, [(api_versions(5, 1, lab.cluster_id, 2), True)], [(api_versions(5, 2, lab.cluster_id, 3), True)],
        [(api_versions(5, 3, "AAAAAAAAAAAAAAAAAAAAAA", 2), True)], port=port)

    if not kafka_versions.at_least(lab.kafka_version, 4, 4):
        assert [answer(steps[0], n, lab) for n, steps in enumerate((own, other_node, other_cluster), 1)] == \
            [UNSUPPORTED_VERSION] * 3
        return
    assert answer(own[0], 1, lab) == 0
    assert answer(other_node[0], 2, lab) == REBOOTSTRAP_REQUIRED  # a client that still thinks port 2 is broker 3
    assert answer(other_cluster[0], 3, lab) == REBOOTSTRAP_REQUIRED
    assert not closed(own[-1]), own
    assert node.metric(CLEARED) == 0  # a broker port's requests are relayed untouched


def test_the_bootstrap_port_stands_for_no_node(lab, node):
    before = node.metric(CLEARED)
    # Bootstrap connections are spread over the brokers: of three, at least one dials a broker other than node 3.
    asked = [[(api_versions(5, 10 + n, lab.cluster_id, 3), True), (api_versions(4, 20 + n), True)] for n in range(3)]
    results = exchange(lab, node, *asked)

    expected = 0 if kafka_versions.at_least(lab.kafka_version, 4, 4) else UNSUPPORTED_VERSION
    assert [answer(steps[0], 10 + n, lab) for n, steps in enumerate(results)] == [expected] * 3, results
    assert [response(API_VERSIONS, 4, steps[1]["response"], 20 + n)["error_code"]
            for n, steps in enumerate(results)] == [0] * 3
    assert node.metric(CLEARED) == before + 3
    unnamed = exchange(lab, node, [(api_versions(5, 30), True)])  # naming neither: nothing to clear
    assert answer(unnamed[0][0], 30, lab) == expected
    assert node.metric(CLEARED) == before + 3

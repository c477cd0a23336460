"""The trust boundary through a real node: clients from the client netns, the lab's real brokers.

A client that can reach the gateway must not touch the gateway cluster's own topic and group, learn a
broker's address from its configuration, or make a node hold resources without bound (silent sockets,
connection floods, pipelining without reading).
"""

from __future__ import annotations

import datetime
import json
import socket
import subprocess
import time
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from kio.schema.errors import ErrorCode
from kio.schema.produce.v9 import request as produce_v9_request
from kio.schema.produce.v9 import response as produce_v9_response
from kio.static.primitive import i16, i32, i32Timedelta

from gateway_app.cluster_names import group_name, topic_name
from tests.e2e.dataplane_support import PYTHON, REPO, GatewayNode, kafka_exchange, node_fixture, unique
from tests.e2e.trust_clients import metadata_request

pytestmark = pytest.mark.lab

FIRST_REQUEST_TIMEOUT_S = 3
CLIENT_WRITE_TIMEOUT_S = 4
node = node_fixture(17500, 17590, GATEWAY_FIRST_REQUEST_TIMEOUT_S=str(FIRST_REQUEST_TIMEOUT_S),
                    GATEWAY_CLIENT_WRITE_TIMEOUT_S=str(CLIENT_WRITE_TIMEOUT_S), GATEWAY_MAX_IN_FLIGHT="20",
                    GATEWAY_MAX_CONNECTIONS="5000", GATEWAY_MAX_CONNECTIONS_PER_SOURCE="3000")


def client(lab: Any, scenario: str, *args: str, timeout_s: float = 180.0) -> dict[str, Any]:
    done = subprocess.run(lab.client_cmd([PYTHON, "-m", "tests.e2e.trust_clients", scenario, *args]),
                          cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def broker_connections(lab: Any) -> int:
    """Established TCP connections on the brokers' client port, counted in the brokers' own namespaces."""
    total = 0
    for broker in lab.brokers:
        out = subprocess.run(["ip", "netns", "exec", broker.netns, "ss", "-Htn", "state", "established",
                              "( sport = :9092 )"], capture_output=True, text=True, check=True).stdout
        total += len(out.splitlines())
    return total


def test_the_gateway_clusters_own_topic_and_group_are_untouchable(lab: Any, node: GatewayNode) -> None:
    cluster_id = node.env["GATEWAY_CLUSTER_ID"]
    members_topic, members_group = topic_name(cluster_id), group_name(cluster_id)
    ordinary = unique("trust")
    digest_before = json.loads(node.http("/cluster")[1])["mapping_digest"]

    seen = client(lab, "reserved", "--bootstrap", node.bootstrap, "--topic", members_topic,
                  "--group", members_group, "--ordinary-topic", ordinary)

    assert seen["produce"] == ["TOPIC_AUTHORIZATION_FAILED"], seen
    assert "GROUP_AUTHORIZATION_FAILED" in seen["join"], seen
    assert seen["delete_topic"] == "TOPIC_AUTHORIZATION_FAILED", seen
    assert seen["delete_group"] == "GROUP_AUTHORIZATION_FAILED", seen
    assert members_topic not in seen["listed_topics"], seen["listed_topics"]
    assert not [g for g in seen["listed_groups"] if g.startswith(members_group)], seen["listed_groups"]
    assert seen["broker_config"].get("advertised.listeners") is None, seen["broker_config"]
    assert seen["broker_config"].get("listeners") is None, seen["broker_config"]
    for broker in lab.brokers:  # no broker address in any config value (this lab instance's brokers, whatever it is)
        assert broker.address not in seen["broker_config_values"], broker.address

    # Counted, nothing moved, the node stays ready, and the topic is still there (checked at the brokers).
    assert node.metric("gateway_reserved_requests_refused_total", api="delete_topics", kind="topic") >= 1
    assert node.metric("gateway_reserved_requests_refused_total", kind="group") >= 1
    assert node.metric("gateway_reserved_entries_hidden_total") >= 1
    assert node.metric("gateway_config_values_redacted_total") >= 1
    assert node.http("/health/ready")[0] == 200
    assert json.loads(node.http("/cluster")[1])["mapping_digest"] == digest_before
    admin = AdminClient({"bootstrap.servers": lab.bootstrap_servers})
    assert members_topic in admin.list_topics(timeout=10).topics


def test_a_raw_produce_to_the_members_topic_is_answered_topic_authorization_failed(node: GatewayNode) -> None:
    """What librdkafka never sends (it stops at the denied Metadata): a Produce request written by hand."""
    topic = topic_name(node.env["GATEWAY_CLUSTER_ID"])
    header = produce_v9_request.RequestHeader(request_api_key=i16(0), request_api_version=i16(9),
                                              correlation_id=i32(7), client_id="trust")
    body = produce_v9_request.ProduceRequest(transactional_id=None, acks=i16(-1), timeout=i32Timedelta.parse(
        datetime.timedelta(seconds=5)), topic_data=(produce_v9_request.TopicProduceData(
            name=topic, partition_data=(produce_v9_request.PartitionProduceData(index=i32(0), records=None),)),))
    before = node.metric("gateway_reserved_requests_refused_total", api="produce", kind="topic")
    response = kafka_exchange(node.address, node.port_start, header, body, produce_v9_response.ProduceResponse,
                              response_header_bytes=5)
    (answer,) = response.responses
    assert (answer.name, [p.error_code for p in answer.partition_responses]) == \
        (topic, [ErrorCode.topic_authorization_failed])
    assert node.metric("gateway_reserved_requests_refused_total", api="produce", kind="topic") == before + 1


def test_silent_sockets_are_closed_by_the_first_request_deadline_and_cost_the_brokers_nothing(
        lab: Any, node: GatewayNode) -> None:
    before = broker_connections(lab)
    refused_before = node.metric("gateway_connections_refused_total", reason="first_request_timeout")
    probe = subprocess.Popen(lab.client_cmd([PYTHON, "-m", "tests.e2e.trust_clients", "silent", "--bootstrap",
                                             node.bootstrap, "--count", "2000", "--seconds", "60"]),
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    during = []
    while probe.poll() is None and len(during) < 60:
        during.append(broker_connections(lab))
        time.sleep(1)
    out, err = probe.communicate(timeout=120)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["opened"] == 2000 and result["closed"] == 2000, (result, err[-2000:])
    # Opened over `opened_s`; each is closed within its deadline plus the sweep interval and the probe's polling.
    assert result["last_closed_s"] <= result["opened_s"] + FIRST_REQUEST_TIMEOUT_S + 3, result
    assert max(during) <= before + 2, (before, during)  # the gateway's own clients may come and go
    assert node.metric("gateway_connections_refused_total", reason="first_request_timeout") - refused_before == 2000
    assert node.http("/health/ready")[0] == 200


def test_pipelined_requests_stay_within_the_in_flight_cap_and_all_come_back_in_order(lab: Any, node: GatewayNode) -> None:
    paused_before = node.metric("gateway_in_flight_paused_total")
    result = client(lab, "pipeline", "--bootstrap", node.bootstrap, "--count", "500")
    assert result == {"responses": 500, "in_order": True}
    assert node.metric("gateway_in_flight_paused_total") > paused_before


def test_a_client_that_stops_reading_is_dropped_within_its_deadline(lab: Any, node: GatewayNode) -> None:
    dropped_before = node.metric("gateway_connections_refused_total", reason="client_not_reading")
    result = client(lab, "no-reading", "--bootstrap", node.bootstrap, "--seconds", "90")
    assert result["closed_after_s"] is not None, result
    assert node.metric("gateway_connections_refused_total", reason="client_not_reading") > dropped_before
    assert node.http("/health/ready")[0] == 200


def test_connection_caps_refuse_and_count(lab: Any, tmp_path_factory: Any) -> None:
    capped = GatewayNode(lab, lab.gateway_addresses[-2], 17600, 17690, tmp_path_factory.mktemp("capped"),
                         GATEWAY_MAX_CONNECTIONS="30", GATEWAY_MAX_CONNECTIONS_PER_SOURCE="20").start()
    try:
        # holds its connections until communicate() below closes its stdin (at most 60 s)
        held = subprocess.Popen(lab.client_cmd([PYTHON, "-m", "tests.e2e.trust_clients", "hold", "--bootstrap",
                                                capped.bootstrap, "--count", "25", "--seconds", "60"]),
                                cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while capped.metric("gateway_connections_refused_total", reason="source_limit") < 5 \
                and time.monotonic() < deadline:
            time.sleep(0.5)
        # From the controller, a second source: 10 more fit under the node's cap of 30, the rest do not.
        answered, extra = 0, []
        for n in range(12):
            sock = socket.create_connection((capped.address, capped.port_start), timeout=10)
            extra.append(sock)
            try:
                sock.sendall(metadata_request(n))
                answered += len(sock.recv(4)) == 4
            except OSError:
                pass
        refused = capped.metric("gateway_connections_refused_total", reason="node_limit")
        for sock in extra:
            sock.close()
        out, err = held.communicate(timeout=120)
        result = json.loads(out.strip().splitlines()[-1])
        assert result == {"answered": 20, "refused": 5}, (result, err[-2000:])
        assert capped.metric("gateway_connections_refused_total", reason="source_limit") == 5
        assert (answered, refused) == (10, 2)
        assert capped.http("/health/ready")[0] == 200
    finally:
        assert capped.stop() == 0

"""The gateway data plane against the lab's real brokers, with confluent-kafka clients in the client netns.

The client netns has no route to the brokers, so any broker address that leaked through a response
would fail the client instead of quietly working.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import struct
import subprocess
import time
from datetime import datetime

import pytest
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.api_versions.v3.response import ApiVersionsResponse
from kio.schema.errors import ErrorCode
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2

from gateway_app.protocol.policy import POLICIES, Handling
from lab.polling import wait_until

from tests.e2e.dataplane_support import (PYTHON, REPO, GatewayNode, kafka_exchange, node_fixture, run_client,
                                         run_in_client_netns, unique)

pytestmark = pytest.mark.lab

PORT_START, HTTP_PORT = 17000, 17090


node = node_fixture(PORT_START, HTTP_PORT)


def test_idempotent_produce_every_message_counted(lab, node):
    result = run_client(lab, "idempotent", "--bootstrap", node.bootstrap, "--topic", unique("idem"), "--count", "3000")
    assert result == {"acked": 3000, "consumed": 3000, "distinct": 3000, "missing": 0}


def test_transactional_produce_read_committed(lab, node):
    result = run_client(lab, "transactional", "--bootstrap", node.bootstrap, "--topic", unique("txn"), "--count", "500")
    assert result == {"committed": 500, "aborted_seen": 0, "distinct": 500}


def test_consumer_group_commits(lab, node):
    result = run_client(lab, "group", "--bootstrap", node.bootstrap, "--topic", unique("grp"), "--count", "1200")
    assert result == {"acked": 1200, "first": 1200, "after_commit": 0, "committed_total": 1200}


def test_admin_sees_only_gateway_addresses_with_racks(lab, node):
    result = run_client(lab, "admin", "--bootstrap", node.bootstrap, "--topic", unique("adm"))
    gateway = [f"{node.address}:{PORT_START + b.id}" for b in lab.brokers]  # broker b -> PORT_START + 1 + (b - 1)
    assert result["partitions"] == 4
    assert set(result["leaders"]) <= set(gateway) and set(result["replica_hosts"]) == set(gateway)
    assert result["cluster_nodes"] == sorted(f"{b.id}@{node.address}:{PORT_START + b.id}/{b.rack}" for b in lab.brokers)
    assert result["metadata_brokers"] == sorted(f"{b.id}@{node.address}:{PORT_START + b.id}" for b in lab.brokers)
    assert result["controller"] in gateway


def test_metrics_and_cluster_view_reflect_traffic(lab, node):
    assert node.metric("gateway_requests_total", api="produce") > 0
    assert node.metric("gateway_rewritten_responses_total", api="metadata") > 0
    assert node.metric("gateway_rewritten_responses_total", api="find_coordinator") > 0
    assert node.metric("gateway_bytes_total", api="fetch", direction="response") > 0
    # plain TCP both ways: the consumers' record sets were spliced (GATEWAY_SPLICE, on by default)
    assert node.metric("gateway_spliced_bytes_total") > 0
    assert node.metric("gateway_request_latency_seconds_count", api="produce") > 0
    assert node.metric("gateway_client_connections_total", port=str(PORT_START), broker="bootstrap") > 0
    assert node.metric("gateway_malformed_frames_total") == 0
    status, body = node.http("/cluster")
    view = json.loads(body)
    assert status == 200
    mapping = {broker: {k: entry[k] for k in ("host", "port", "rack")} for broker, entry in view["mapping"].items()}
    assert mapping == {str(b.id): {"host": node.address, "port": PORT_START + b.id, "rack": b.rack} for b in lab.brokers}
    assert node.http("/health/live")[0] == 200


def test_sigterm_not_ready_drain_exit_zero(lab, tmp_path):
    gateway = GatewayNode(lab, lab.gateway_addresses[-2], PORT_START + 50, HTTP_PORT + 50, tmp_path,
                          GATEWAY_DRAIN_TIMEOUT_S="3").start()
    idle = socket.create_connection((gateway.address, gateway.port_start), timeout=5)
    time.sleep(0.3)
    started = time.monotonic()
    gateway.process.send_signal(signal.SIGTERM)
    code = gateway.process.wait(15)
    assert code == 0 and time.monotonic() - started < 5, gateway.log()[-2000:]
    assert idle.recv(1) == b""  # the idle client connection was closed, not left hanging
    idle.close()
    assert "drained; 0 connections aborted" in gateway.log()


def test_bad_setting_is_named_at_start(lab):
    env = {"PATH": "/usr/bin:/bin", "GATEWAY_PORT_START": "70000", "KAFKA_BOOTSTRAP_SERVERS": lab.bootstrap_servers}
    done = subprocess.run([PYTHON, "-m", "gateway_app"], cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "GATEWAY_PORT_START" in done.stderr


def api_versions(address: str, port: int) -> dict[int, tuple[int, int]]:
    header = RequestHeaderV2(request_api_key=18, request_api_version=3, correlation_id=9, client_id="dp-test")
    request = ApiVersionsRequest(client_software_name="kgw-test", client_software_version="1.0")
    response = kafka_exchange(address, port, header, request, ApiVersionsResponse)
    assert response.error_code == ErrorCode.none
    return {int(k.api_key): (int(k.min_version), int(k.max_version)) for k in response.api_keys}


def test_api_versions_capped_to_the_policy(lab, node):
    broker = lab.brokers[0]
    direct = api_versions(broker.address, broker.port)
    through = api_versions(node.address, PORT_START + broker.id)
    # Written out from the rule, not computed by policy.cap (the function under test): a key is advertised when
    # the policy lets it through at a version the broker has, capped at the policy's version.
    expected = {key: (lo, min(hi, POLICIES[key].max_version)) for key, (lo, hi) in direct.items()
                if key in POLICIES and POLICIES[key].handling is not Handling.DROP and POLICIES[key].max_version >= lo}
    assert through == expected
    # What the table means, independently of it: DescribeQuorum at most v1 (v2 lists controller endpoints), and
    # Produce, Fetch and Metadata advertised as the broker has them (the gateway knows Kafka 4.4's versions).
    assert through[55][1] <= 1 < direct[55][1]
    assert through[0] == direct[0] and through[1] == direct[1] and through[3] == direct[3]
    for key, (lo, hi) in through.items():
        print(f"{key:3d} {POLICIES[key].name:32s} {lo}-{hi} {POLICIES[key].handling.value:8s} broker {direct[key]}")
    hidden = sorted(set(direct) - set(through))
    print("hidden:", [(k, POLICIES[k].name if k in POLICIES else "?") for k in hidden])
    assert all(POLICIES[k].handling is not Handling.DROP for k in through)


def test_dropped_api_closes_only_that_connection(lab, node):
    before = node.metric("gateway_malformed_frames_total", reason="api_not_allowed")
    with socket.create_connection((node.address, PORT_START), timeout=5) as sock:
        payload = struct.pack(">hhih", 52, 0, 1, -1) + b"\x00" * 16  # KRaft Vote: never relayed
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        sock.settimeout(5)
        assert sock.recv(4) == b""
    assert node.metric("gateway_malformed_frames_total", reason="api_not_allowed") == before + 1
    assert api_versions(node.address, PORT_START)  # the node keeps serving


def test_not_ready_while_a_broker_id_has_no_port(lab, tmp_path):
    """MIN_BROKERID=2: broker 1 cannot be mapped; it is left out, counted, and readiness says why."""
    gateway = GatewayNode(lab, lab.gateway_addresses[-2], PORT_START + 60, HTTP_PORT + 60, tmp_path,
                          GATEWAY_MIN_BROKERID="2", GATEWAY_PORT_COUNT="3").start(ready=False)
    try:
        # The node answers /health/ready before it has read the broker list: wait for the check that list settles.
        wait_until(lambda: not json.loads(gateway.http("/health/ready")[1])["checks"]["broker_ids_in_range"]["ok"], 30,
                   "broker_ids_in_range to fail once the node has read the brokers")
        status, body = gateway.http("/health/ready")
        checks = json.loads(body)["checks"]
        assert status == 503 and not checks["broker_ids_in_range"]["ok"], body
        assert "[1]" in checks["broker_ids_in_range"]["detail"]
        done = run_in_client_netns(lab, ["kcat", "-L", "-b", gateway.bootstrap, "-m", "15"], timeout_s=60)
        listed = set(re.findall(r"broker (\d+) at (\S+)", done.stdout))
        assert listed == {("2", f"{gateway.address}:{PORT_START + 61}"), ("3", f"{gateway.address}:{PORT_START + 62}")}
        assert gateway.metric("gateway_broker_id_out_of_range_total", broker="1") > 0
    finally:
        assert gateway.stop() == 0


def test_not_ready_while_kafka_is_unreachable(lab, tmp_path):
    unreachable = f"{lab.brokers[0].address}:9"  # a broker host, a port nothing listens on
    gateway = GatewayNode(lab, lab.gateway_addresses[-2], PORT_START + 70, HTTP_PORT + 70, tmp_path,
                          KAFKA_BOOTSTRAP_SERVERS=unreachable, GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S="2").start(ready=False)
    try:
        status, body = gateway.http("/health/ready")
        assert status == 503 and not json.loads(body)["checks"]["backing_kafka"]["ok"], body
        assert gateway.http("/health/live")[0] == 200
    finally:
        assert gateway.stop() == 0
    # The leave (from "shutting down" to the drain) gives up the membership's wait on the unreachable Kafka at
    # once (stop_aware.py); it used to sit out the 10 s request. Timed by the node's own log, so neither start-up
    # nor the process's exit counts; the bound is far above a wait cut short and far below one sat out.
    assert seconds_between(gateway.log(), "shutting down: not ready, leaving", "drain:") < 5.0


def seconds_between(log: str, first: str, then: str) -> float:
    """Seconds between the log lines holding `first` and (after it) `then`, by their timestamps."""
    stamps = {}
    for line in log.splitlines():
        for mark in (first, then):
            if mark in line and mark not in stamps and (mark == first or first in stamps):
                stamps[mark] = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    assert first in stamps and then in stamps, f"no {first!r} then {then!r} in the log: {log[-2000:]}"
    return (stamps[then] - stamps[first]).total_seconds()


def test_large_records_relay_intact(lab, node):
    spliced = node.metric("gateway_spliced_produce_bytes_total")
    result = run_client(lab, "large", "--bootstrap", node.bootstrap, "--topic", unique("large"), "--count", "12")
    assert result == {"unflushed": 0, "received": 12, "identical": True}
    # plain TCP both ways: the Produce requests' records were spliced (a few reads' worth of them read, at most the
    # first request's read by the connection's transport before the pair reads its socket itself)
    assert node.metric("gateway_spliced_produce_bytes_total") - spliced >= 12 * 899_000 - 300_000


def test_pipelined_requests_answered_in_order(lab, node):
    """Rewritten (Metadata, ApiVersions) and relayed (ListGroups) requests interleaved on one connection."""
    frames, expected = [], []
    for correlation_id in range(1, 61):
        api_key, version, body = [(18, 0, b""), (3, 1, struct.pack(">i", 0)), (16, 0, b"")][correlation_id % 3]
        payload = struct.pack(">hhih", api_key, version, correlation_id, 2) + b"pl" + body
        frames.append(struct.pack(">i", len(payload)) + payload)
        expected.append(correlation_id)
    with socket.create_connection((node.address, PORT_START + 1), timeout=10) as sock:
        sock.sendall(b"".join(frames))
        seen = []
        stream = sock.makefile("rb")
        for _ in expected:
            size = struct.unpack(">i", stream.read(4))[0]
            seen.append(struct.unpack(">i", stream.read(size)[:4])[0])
    assert seen == expected


def test_acks_zero_produce_keeps_the_connection_in_step(lab, node):
    before = node.metric("gateway_upstream_errors_total", reason="correlation_mismatch")
    result = run_client(lab, "acks0", "--bootstrap", node.bootstrap, "--topic", unique("acks0"), "--count", "2000")
    assert result == {"acked": 2000, "consumed": 2000}
    assert node.metric("gateway_upstream_errors_total", reason="correlation_mismatch") == before

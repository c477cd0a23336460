"""The gateway data plane against the lab's real brokers, with confluent-kafka clients in the client netns.

The client netns has no route to the brokers, so any broker address that leaked through a response
would fail the client instead of quietly working.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time

import pytest

from tests.e2e.dataplane_support import node_fixture, PYTHON, REPO, GatewayNode, run_client, unique

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

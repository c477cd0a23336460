"""SASL end to end: the gateway authenticates its own connections with KAFKA_* settings, and relays the clients'.

The lab brokers have a SASL_PLAINTEXT listener (PLAIN; users in lab.layout.SASL_USERS). The node's own
connections (broker directory, cluster membership) log in as "gateway"; a client's SaslHandshake and
SaslAuthenticate go through the data plane untouched, so the broker — not the gateway — accepts or refuses it.
"""

from __future__ import annotations

import pytest

from lab.layout import SASL_PORT, SASL_USERS
from tests.e2e.dataplane_support import run_client, running_node, unique

pytestmark = pytest.mark.lab

PORT_START, HTTP_PORT = 17600, 17690


def sasl_client(user: str, password: str) -> list[str]:
    settings = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                "sasl.username": user, "sasl.password": password}
    return [arg for key, value in settings.items() for arg in ("--config", f"{key}={value}")]


@pytest.fixture(scope="module")
def node(lab, tmp_path_factory):
    yield from running_node(
        lab, tmp_path_factory, PORT_START, HTTP_PORT, KAFKA_BOOTSTRAP_SERVERS=lab.sasl_bootstrap_servers,
        KAFKA_SECURITY_PROTOCOL="sasl_plaintext", KAFKA_SASL_MECHANISM="PLAIN", KAFKA_SASL_USERNAME="gateway",
        KAFKA_SASL_PASSWORD=SASL_USERS["gateway"])


def test_node_reaches_the_sasl_listener(lab, node):
    """Ready means the node's own SASL connections work; the brokers it relays to are the SASL listener's."""
    assert node.http("/health/ready")[0] == 200
    log = node.log()
    assert all(f"broker {b.id} is at {b.address}:{SASL_PORT} " in log for b in lab.brokers), log[-2000:]


def test_client_sasl_is_relayed_for_idempotent_produce(lab, node):
    result = run_client(lab, "idempotent", "--bootstrap", node.bootstrap, "--topic", unique("sasl"), "--count", "1000",
                        *sasl_client("alice", SASL_USERS["alice"]))
    assert result == {"acked": 1000, "consumed": 1000, "distinct": 1000, "missing": 0}


def test_client_sasl_is_relayed_for_a_consumer_group(lab, node):
    result = run_client(lab, "group", "--bootstrap", node.bootstrap, "--topic", unique("sasl-group"), "--count", "500",
                        *sasl_client("alice", SASL_USERS["alice"]))
    assert result == {"acked": 500, "first": 500, "after_commit": 0, "committed_total": 500}


def test_wrong_password_is_refused_by_the_broker(lab, node):
    result = run_client(lab, "client-errors", "--bootstrap", node.bootstrap, "--topic", "unused", "--seconds", "20",
                        *sasl_client("alice", "not-the-password"))
    assert "_AUTHENTICATION" in result["errors"], result  # the broker's verdict, relayed (then it drops the link)

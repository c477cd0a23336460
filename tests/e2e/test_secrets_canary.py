"""Secrets stay in their file: a node logs in to the lab's SASL listener with its real password, and carries a canary
operator token and cluster secret; none of them appears in --help, --check-config output, the node's log, /metrics
or /cluster (with or without the token), after a client's Metadata through the node."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lab.layout import SASL_USERS
from tests.e2e.dataplane_support import REPO, GatewayNode, run_in_client_netns
from tests.e2e.test_http_port import FETCH

pytestmark = pytest.mark.lab

PORT_START, HTTP_PORT = 17900, 17990
TOKEN = "canary-token-9b2e4c7d1f"
CLUSTER_SECRET = "canary-cluster-secret-5a8d3e"
SECRET_ENV = {
    "KAFKA_SECURITY_PROTOCOL": "sasl_plaintext", "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "gateway",
    "KAFKA_SASL_PASSWORD": SASL_USERS["gateway"], "GATEWAY_HTTP_ADMIN_TOKEN": TOKEN,
    "GATEWAY_CLUSTER_SECRET": CLUSTER_SECRET,
}
CANARIES = (SASL_USERS["gateway"], TOKEN, CLUSTER_SECRET)


def assert_no_canary(where: str, text: str) -> None:
    leaked = [canary for canary in CANARIES if canary in text]
    assert not leaked, f"{len(leaked)} secret(s) in {where}"  # never print the text: it would leak them again


@pytest.fixture(scope="module")
def node(lab, tmp_path_factory):
    gateway = GatewayNode(lab, lab.gateway_addresses[-1], PORT_START, HTTP_PORT, tmp_path_factory.mktemp("canary"),
                          KAFKA_BOOTSTRAP_SERVERS=lab.sasl_bootstrap_servers, GATEWAY_LOG_LEVEL="debug", **SECRET_ENV)
    yield gateway.start(timeout_s=120)  # a SASL login and debug logging on a busy machine
    assert gateway.stop() == 0


def gateway_cli(lab, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway_app", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "KAFKA_BOOTSTRAP_SERVERS": lab.sasl_bootstrap_servers,
                                           **SECRET_ENV, **env})


def test_help_and_check_config_show_no_secret(lab):
    for done in (gateway_cli(lab, "--help"), gateway_cli(lab, "--check-config"),
                 gateway_cli(lab, "--check-config", KAFKA_SASL_MECHANISMS_TYPO="x"),
                 gateway_cli(lab, "--check-config", GATEWAY_HTTP_ADMIN_TOKEN="too short " + TOKEN[:4])):
        assert_no_canary(f"kafka-gateway {done.args[3:]}", done.stdout + done.stderr)
    assert gateway_cli(lab, "--check-config").returncode == 0


def test_no_secret_in_metrics_cluster_or_log_after_traffic(lab, node):
    sasl = ["-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=PLAIN", "-X", "sasl.username=alice",
            "-X", f"sasl.password={SASL_USERS['alice']}"]  # the brokers behind this node are the SASL listener
    listed = run_in_client_netns(lab, ["kcat", "-b", node.bootstrap, *sasl, "-L", "-m", "30"], timeout_s=60)
    assert listed.returncode == 0 and f"{node.address}:{PORT_START + 1}" in listed.stdout, listed.stderr
    for token in ("", TOKEN, "wrong-token-0123456789"):
        done = subprocess.run(lab.client_cmd([sys.executable, "-c", FETCH,
                                              f"http://{node.http_address}:{HTTP_PORT}/cluster", token]),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0
        assert_no_canary("/cluster", done.stdout)
    status, metrics = node.http("/metrics")
    assert status == 200 and "gateway_requests_total" in metrics
    assert_no_canary("/metrics", metrics)
    assert_no_canary("/health/ready", node.http("/health/ready")[1])
    assert_no_canary("the node's log", node.log())

"""Settings: defaults, env-file + environment precedence, KAFKA_* mapping, errors naming the setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway_app.config import SPECS, ConfigError, load_settings
from gateway_app.protocol.reserved import ReservedNames
from gateway_app.proxy.server import rules_of

BASE = {"KAFKA_BOOTSTRAP_SERVERS": "198.18.1.11:9092,198.18.1.12:9092", "GATEWAY_CLUSTER_SECRET": "unit-test-secret-0123456789"}


def test_defaults() -> None:
    s = load_settings(BASE)
    assert (s.port_start, s.min_broker_id, s.http_port, s.max_frame_bytes) == (6969, 1, 8888, 100 * 1024 * 1024)
    assert s.internal_load_balancing is True and s.proxy_protocol is False and s.client_tls is False
    assert s.splice is True and load_settings({**BASE, "GATEWAY_SPLICE": "false"}).splice is False
    assert s.bootstrap_servers == (("198.18.1.11", 9092), ("198.18.1.12", 9092))
    assert s.advertised_host and s.node_id  # host name by default
    assert s.port_plan.port_for_broker(3) == 6972  # 6969 + 1 + (3 - 1)


def test_kafka_properties_map_to_client_properties() -> None:
    s = load_settings({**BASE, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                       "KAFKA_SSL_CA_LOCATION": "/etc/ca.pem"})
    assert s.kafka_properties["sasl.mechanism"] == "SCRAM-SHA-512"
    assert s.kafka_properties["ssl.ca.location"] == "/etc/ca.pem"
    assert s.kafka_properties["bootstrap.servers"] == BASE["KAFKA_BOOTSTRAP_SERVERS"]
    assert s.upstream_tls


def test_file_then_environment_wins(tmp_path: Path) -> None:
    config = tmp_path / "gateway.env"
    config.write_text('# comment\nGATEWAY_PORT_START=7000\nGATEWAY_RACK_ID="rack-b"\nKAFKA_BOOTSTRAP_SERVERS=a:1\n'
                      'GATEWAY_CLUSTER_SECRET=file-secret-0123456789\n')
    s = load_settings({"GATEWAY_PORT_START": "7100"}, config)
    assert (s.port_start, s.rack_id, s.bootstrap_servers) == (7100, "rack-b", (("a", 1),))


@pytest.mark.parametrize(("env", "setting"), [
    ({"GATEWAY_PORT_START": "abc"}, "GATEWAY_PORT_START"),
    ({"GATEWAY_PORT_START": "65530"}, "GATEWAY_PORT_COUNT"),
    ({"GATEWAY_HTTP_PORT": "6970"}, "GATEWAY_HTTP_PORT"),
    ({"GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING": "maybe"}, "GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING"),
    ({"GATEWAY_MAX_FRAME_BYTES": "10"}, "GATEWAY_MAX_FRAME_BYTES"),
    ({"GATEWAY_SSL_CERT_FILE": "/nonexistent.pem"}, "GATEWAY_SSL_CERT_FILE"),
    ({"GATEWAY_SSL_CLIENT_AUTH": "required"}, "GATEWAY_SSL_CA_FILE"),
    ({"KAFKA_BOOTSTRAP_SERVERS": "nohostport"}, "KAFKA_BOOTSTRAP_SERVERS"),
    ({"KAFKA_SECURITY_PROTOCOL": "tls"}, "KAFKA_SECURITY_PROTOCOL"),
    ({"GATEWAY_DRAIN_TIMEOUT_S": "-1"}, "GATEWAY_DRAIN_TIMEOUT_S"),
    ({"GATEWAY_SPLICE": "sometimes"}, "GATEWAY_SPLICE"),
])
def test_errors_name_the_setting(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({**BASE, **env})
    assert raised.value.setting == setting and str(raised.value).startswith(setting)


def test_bootstrap_servers_required() -> None:
    with pytest.raises(ConfigError, match="^KAFKA_BOOTSTRAP_SERVERS: is required"):
        load_settings({})


def test_help_explains_every_setting() -> None:
    done = subprocess.run([sys.executable, "-m", "gateway_app", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for spec in SPECS:
        assert spec.env in done.stdout and spec.help.split()[0] in done.stdout
    assert "KAFKA_X_Y" in done.stdout


CANARY = "canary-Zq7-secret-4711"


def test_cluster_secret_is_required_long_and_never_shown(tmp_path: Path) -> None:
    without = {k: v for k, v in BASE.items() if k != "GATEWAY_CLUSTER_SECRET"}
    with pytest.raises(ConfigError, match="^GATEWAY_CLUSTER_SECRET: is required"):
        load_settings(without)
    with pytest.raises(ConfigError) as short:
        load_settings({**without, "GATEWAY_CLUSTER_SECRET": "canary-short"})
    assert short.value.setting == "GATEWAY_CLUSTER_SECRET" and "canary" not in str(short.value)
    with pytest.raises(ConfigError) as previous:
        load_settings({**without, "GATEWAY_CLUSTER_SECRET": CANARY, "GATEWAY_CLUSTER_SECRET_PREVIOUS": "canary\x01" * 3})
    assert previous.value.setting == "GATEWAY_CLUSTER_SECRET_PREVIOUS" and "canary" not in str(previous.value)
    settings = load_settings({**without, "GATEWAY_CLUSTER_SECRET": CANARY})
    assert settings.cluster_secret.reveal() == CANARY and settings.cluster_secret_previous is None
    assert CANARY not in repr(settings) and CANARY not in f"{settings.cluster_secret}"
    config = tmp_path / "gateway.env"
    config.write_text(f"KAFKA_BOOTSTRAP_SERVERS=a:1\nGATEWAY_CLUSTER_SECRET={CANARY}\n")
    checked = subprocess.run([sys.executable, "-m", "gateway_app", "--check-config", "--config", str(config)],
                             capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert checked.returncode == 0 and CANARY not in checked.stdout + checked.stderr


@pytest.mark.parametrize(("env", "setting"), [
    ({"GATEWAY_NODE_ID": "gw 1"}, "GATEWAY_NODE_ID"),
    ({"GATEWAY_RACK_ID": "rack a"}, "GATEWAY_RACK_ID"),
    ({"GATEWAY_ADVERTISED_HOST": "bad host"}, "GATEWAY_ADVERTISED_HOST"),
    ({"GATEWAY_CLUSTER_SECRET_PREVIOUS": BASE["GATEWAY_CLUSTER_SECRET"]}, "GATEWAY_CLUSTER_SECRET_PREVIOUS"),
])
def test_a_node_never_starts_with_a_record_its_peers_refuse(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({**BASE, **env})
    assert raised.value.setting == setting


def test_help_says_how_to_make_a_cluster_secret() -> None:
    done = subprocess.run([sys.executable, "-m", "gateway_app", "--help"], capture_output=True, text=True, timeout=60)
    assert "GATEWAY_CLUSTER_SECRET  (required)" in done.stdout and "openssl rand -hex 32" in done.stdout


def test_the_splice_setting_reaches_every_connection_s_rules() -> None:
    reserved = ReservedNames.of("_gateway_test", "_gateway_test_members")
    assert rules_of(load_settings(BASE), False, reserved).splice is True
    assert rules_of(load_settings({**BASE, "GATEWAY_SPLICE": "false"}), False, reserved).splice is False

"""The fleet doctor's probe asks the node's venv for the brokers' replica.selector.class only where client networks
are configured, and carries whatever it answers (or why it could not) to the verdict."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from gateway_app.fleet import probe, replica_selectors


def fake_venv(tmp_path: Path, output: str) -> Path:
    """A venv whose python prints `output` and records its arguments, as the node's venv would run the module."""
    python = tmp_path / "venv/bin/python"
    python.parent.mkdir(parents=True)
    python.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/argv\ncat <<'EOF'\n{output}\nEOF\n")
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return tmp_path / "venv"


def test_the_probe_runs_the_module_in_the_nodes_venv_with_its_env_file(tmp_path: Path) -> None:
    answer = {"brokers": {"1": replica_selectors.RACK_AWARE_SELECTOR, "2": None}}
    venv = fake_venv(tmp_path, json.dumps(answer))
    assert probe.replica_selectors(str(venv), "/etc/kafka-gateway/gateway.env") == answer
    assert (tmp_path / "argv").read_text().split() == [
        "-m", "gateway_app.fleet.replica_selectors", "--config", "/etc/kafka-gateway/gateway.env",
        "--timeout", str(probe.SELECTORS_TIMEOUT_S)]


def test_a_probe_that_gets_no_json_says_so(tmp_path: Path) -> None:
    assert "error" in probe.replica_selectors(str(fake_venv(tmp_path, "Traceback ...")), "/nonexistent")
    assert "error" in probe.replica_selectors(str(tmp_path / "no-venv"), "/nonexistent")


def test_the_client_networks_setting_is_reported_by_the_probe() -> None:
    assert "GATEWAY_CLIENT_RACK_NETWORKS" in probe.ENV_KEYS_REPORTED


def test_the_module_reports_bad_settings_as_an_error_document(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    env = tmp_path / "gateway.env"
    env.write_text("KAFKA_BOOTSTRAP_SERVERS=nohostport\nGATEWAY_CLUSTER_SECRET=unit-test-secret-0123456789\n")
    assert replica_selectors.main(["--config", str(env)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["error"].startswith("settings: KAFKA_BOOTSTRAP_SERVERS")
    assert "unit-test-secret" not in json.dumps(printed)


def test_the_selectors_are_asked_only_with_client_networks_and_a_broker_reached():
    """A host whose brokers are all unreachable (the doctor's `brokers` problem) is not made to wait on Kafka too:
    that wait would cost the host's whole probe its time, and the doctor would report SSH instead of the brokers."""
    networks = {"GATEWAY_CLIENT_RACK_NETWORKS": "rack-a=10.1.0.0/16"}
    reached = {"b1:9092": {"ok": True}, "b2:9092": {"ok": False, "error": "timed out"}}
    unreached = {"b1:9092": {"ok": False, "error": "timed out"}}
    assert probe.selectors_wanted(networks, reached)
    assert not probe.selectors_wanted(networks, unreached)
    assert not probe.selectors_wanted({}, reached)

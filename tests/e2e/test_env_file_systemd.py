"""What systemd itself reads from an env file the role writes equals what the gateway's --check-config reads.

The file is written with the role's own filter (roles/gateway/filter_plugins/systemd_env.py), copied to a lab host,
and read by systemd as the EnvironmentFile= of a transient service that prints its environment (systemd-run);
the same bytes are read by gateway_app.env_file.read_env_file on the controller."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from gateway_app.env_file import read_env_file
from tests.unit.test_env_file import TRICKY, systemd_env

pytestmark = pytest.mark.lab

# files written by hand, not by the role: systemd's grammar beyond what the writer produces
HAND_WRITTEN = (
    "A1=  spaced value  \n"
    "A2='single'\"double\"\n"
    "A3=\"a\\nb \\$x \\\"q\\\"\"\n"
    "A4=one\\\ntwo\n"
    "; comment\n# comment\n"
    "A5=x # not a comment\n"
    "A6=first\nA6=second\n"
    "A7=unquoted\\ escaped\n"
)


def systemd_reads(lab, host: str, content: bytes) -> dict[str, str]:
    path = f"/tmp/kgw-env-{uuid.uuid4().hex[:8]}.env"
    subprocess.run(lab.ssh_cmd(host, f"cat > {path}"), input=content, check=True, timeout=30)
    try:
        done = subprocess.run(
            lab.ssh_cmd(host, f"systemd-run --quiet --wait --pipe --collect -p EnvironmentFile={path} /usr/bin/env -0"),
            capture_output=True, check=True, timeout=60)
    finally:
        subprocess.run(lab.ssh_cmd(host, f"rm -f {path}"), timeout=30)
    pairs = [item.decode().split("=", 1) for item in done.stdout.split(b"\0") if item]
    return dict(pairs)


def test_systemd_and_check_config_read_the_role_written_file_alike(lab, tmp_path):
    values = {f"KGW_TEST_{i}": value for i, value in enumerate(TRICKY)}
    content = "".join(f"{k}={systemd_env.systemd_env_value(v)}\n" for k, v in values.items()).encode()
    path = tmp_path / "gateway.env"
    path.write_bytes(content)
    host = lab.hosts_in("gateways")[0].name
    seen_by_systemd = {k: v for k, v in systemd_reads(lab, host, content).items() if k.startswith("KGW_TEST_")}
    assert seen_by_systemd == values
    assert read_env_file(path) == values


def test_systemd_and_check_config_read_a_hand_written_file_alike(lab, tmp_path):
    path = tmp_path / "hand.env"
    path.write_text(HAND_WRITTEN)
    host = lab.hosts_in("gateways")[0].name
    seen_by_systemd = {k: v for k, v in systemd_reads(lab, host, HAND_WRITTEN.encode()).items() if k.startswith("A")}
    assert read_env_file(Path(path)) == seen_by_systemd
    assert seen_by_systemd["A3"] == 'a\\nb $x "q"' and seen_by_systemd["A6"] == "second"

"""kafka-gateway-doctor against a real fleet: three gateways (one per rack) behind two HAProxy hosts, deployed once
with the project's playbook on lab hosts; a healthy run exits 0, then each fault is injected and undone in turn and
the doctor must name the host and the problem and exit 1.

The wall time of the healthy runs is printed (`pytest -s` shows it): the doctor's own time (SSH, probes, verdict)
and the whole command's, which includes reading the inventory with `ansible-inventory`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.state import LabState

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv/bin"
GATEWAYS = {"dr-gw1": "rack-a", "dr-gw2": "rack-b", "dr-gw3": "rack-c"}
LBS = ["dr-lb1", "dr-lb2"]
HOST_SPECS = [f"{n}:{r}@gateways" for n, r in GATEWAYS.items()] + [f"{n}@gateway_lb" for n in LBS]
ENV_FILE = "/etc/kafka-gateway/gateway.env"
FAULT_TIMEOUT_S = 90
# the first test also deploys the fleet: five hosts, which takes minutes on a busy machine
pytestmark = pytest.mark.timeout(2400)


class Fleet:
    def __init__(self, lab: LabState, env: dict[str, str]) -> None:
        self.lab, self.env = lab, env

    def address(self, name: str) -> str:
        return self.lab.host(name).address

    def ssh(self, name: str, command: str, check: bool = True) -> str:
        proc = subprocess.run(self.lab.ssh_cmd(name, command), capture_output=True, text=True, timeout=120)
        assert not check or proc.returncode == 0, f"{name}: {command}: {proc.stderr}"
        return proc.stdout

    def doctor(self, *args: str) -> tuple[int, dict, float]:
        began = time.monotonic()
        proc = subprocess.run([str(VENV_BIN / "kafka-gateway-doctor"), "-i", "inventory/lab", "--json", *args],
                              cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300)
        assert proc.returncode in (0, 1), proc.stdout + proc.stderr
        return proc.returncode, json.loads(proc.stdout), time.monotonic() - began

    def healthy(self) -> dict:
        rc, report, _ = self.doctor("--wait", str(FAULT_TIMEOUT_S))
        assert rc == 0 and report["healthy"], json.dumps(report["problems"], indent=1)
        return report

    def expect(self, host: str, check: str, words: str) -> dict:
        """Run the doctor until it names this host and check (the fault may take a moment to show); exit code 1."""
        deadline = time.monotonic() + FAULT_TIMEOUT_S
        while True:
            rc, report, _ = self.doctor()
            named = [p for p in report["problems"] if p["host"] == host and p["check"] == check]
            if named or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert named, f"no {check} problem on {host}: {json.dumps(report['problems'], indent=1)}"
        assert rc == 1 and not report["healthy"]
        assert any(words in p["detail"] for p in named), named
        assert host in report["verdict"] and report["verdict"].startswith("UNHEALTHY")
        print(f"doctor: {host} {check}: {named[0]['detail']}")
        return report


@pytest.fixture(scope="module")
def fleet(lab: LabState) -> Fleet:
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "KGW_LAB_HOSTS": " ".join(HOST_SPECS),
           "KGW_LAB_INSTANCE": str(lab.instance), "ANSIBLE_NOCOLOR": "1"}
    lab_cmd = [sys.executable, "-m", "lab", "--instance", str(lab.instance)]
    subprocess.run([*lab_cmd, "host", "add", *HOST_SPECS], cwd=ROOT, check=True, timeout=300)
    state = LabState.load(lab.instance)
    try:
        deploy = subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "-i", "inventory/lab", "playbooks/deploy.yml",
             "-e", "gateway_internal_load_balancing=false", "-e", f"gateway_external_lb_host={state.host(LBS[0]).address}",
             "-e", "gateway_cluster_id=fleet-doctor"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
        assert deploy.returncode == 0, deploy.stdout[-5000:]
        yield Fleet(state, env)
    finally:
        for name in [*GATEWAYS, *LBS]:
            subprocess.run([*lab_cmd, "host", "remove", name], cwd=ROOT, timeout=120)


@pytest.mark.lab
def test_a_healthy_fleet_exits_zero_and_in_time(fleet: Fleet) -> None:
    fleet.healthy()
    for _ in range(3):
        rc, report, wall = fleet.doctor()
        assert rc == 0, report["problems"]
        print(f"doctor: healthy fleet of 3 gateways and 2 load balancers: {report['elapsed_s']:.2f} s probing, "
              f"{wall:.2f} s for the whole command")
    assert {h["name"] for h in report["hosts"]} == {*GATEWAYS, *LBS}
    versions = {h["facts"]["version"] for h in report["hosts"] if h["role"] == "gateway"}
    assert len(versions) == 1
    for host in report["hosts"]:
        assert host["error"] is None and abs(host["clock_offset_s"]) < 0.5
    # the env file's other values never leave the host
    assert "KAFKA_SASL" not in json.dumps(report) and "SECRET" not in json.dumps(report)


@pytest.mark.lab
def test_a_stopped_unit(fleet: Fleet) -> None:
    fleet.ssh("dr-gw2", "systemctl stop kafka-gateway")
    try:
        report = fleet.expect("dr-gw2", "unit", "kafka-gateway is inactive")
        assert any(p["host"] in LBS and "dr-gw2" in p["detail"] for p in report["problems"])  # HAProxy took it out
    finally:
        fleet.ssh("dr-gw2", "systemctl start kafka-gateway")
    fleet.healthy()


@pytest.mark.lab
def test_an_env_file_rack_that_disagrees_with_the_inventory(fleet: Fleet) -> None:
    original = fleet.ssh("dr-gw3", f"grep '^GATEWAY_RACK_ID=' {ENV_FILE}").strip()
    fleet.ssh("dr-gw3", f"sed -i 's/^GATEWAY_RACK_ID=.*/GATEWAY_RACK_ID=rack-x/' {ENV_FILE}")
    try:
        fleet.expect("dr-gw3", "rack", "GATEWAY_RACK_ID=rack-x")
    finally:
        fleet.ssh("dr-gw3", f"sed -i 's/^GATEWAY_RACK_ID=.*/{original}/' {ENV_FILE}")
    fleet.healthy()


@pytest.mark.lab
def test_a_node_cut_off_from_the_brokers(fleet: Fleet) -> None:
    routes = [f"{b.endpoint.rsplit(':', 1)[0]}/32" for b in fleet.lab.brokers]
    fleet.ssh("dr-gw1", "; ".join(f"ip route add blackhole {r}" for r in routes))
    try:
        report = fleet.expect("dr-gw1", "brokers", "cannot reach broker")
        unreachable = [p for p in report["problems"] if p["host"] == "dr-gw1" and p["check"] == "brokers"]
        assert len(unreachable) == len(routes)
    finally:
        fleet.ssh("dr-gw1", "; ".join(f"ip route del blackhole {r}" for r in routes))
    fleet.healthy()


@pytest.mark.lab
def test_a_node_running_an_older_version(fleet: Fleet, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for item in ("gateway_app", "README.md", "pyproject.toml"):
        (shutil.copytree if (ROOT / item).is_dir() else shutil.copy)(ROOT / item, source / item)
    pyproject = source / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.0.9"', 1))
    subprocess.run([str(VENV_BIN / "pip"), "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, timeout=300, capture_output=True)
    wheel = next((tmp_path / "dist").glob("kafka_gateway-0.0.9-*.whl"))
    subprocess.run(["scp", *fleet.lab.ssh_options(), str(wheel), f"root@{fleet.address('dr-gw2')}:/tmp/{wheel.name}"],
                   check=True, timeout=120, capture_output=True)
    pip = "/opt/kafka-gateway/venv/bin/pip install -q --no-index --no-deps --force-reinstall"
    fleet.ssh("dr-gw2", f"{pip} /tmp/{wheel.name} && systemctl restart kafka-gateway")
    try:
        fleet.expect("dr-gw2", "version", "runs kafka-gateway 0.0.9; dr-gw1, dr-gw3 run 0.1.0")
    finally:
        fleet.ssh("dr-gw2", f"{pip} /opt/kafka-gateway/wheelhouse/kafka_gateway-0.1.0-*.whl "
                            "&& systemctl restart kafka-gateway")
    fleet.healthy()


@pytest.mark.lab
def test_an_haproxy_backend_down(fleet: Fleet) -> None:
    admin = ("python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(\"/run/haproxy/admin.sock\"); "
             "s.sendall(sys.argv[1].encode()+b\"\\n\"); s.recv(4096)' ")
    fleet.ssh("dr-lb2", admin + "'disable server gateways_6970/dr-gw3'")
    try:
        fleet.expect("dr-lb2", "haproxy", "server dr-gw3 is MAINT in 1 of 10 backends")
    finally:
        fleet.ssh("dr-lb2", admin + "'enable server gateways_6970/dr-gw3'")
    fleet.healthy()

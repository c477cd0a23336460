"""The fleet doctor run by its full path, from a shell whose PATH lacks its virtualenv: it reads the inventory with
the `ansible-inventory` installed beside its own interpreter, and says what to install when there is none."""

from __future__ import annotations

import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCTOR = Path(sys.executable).parent / "kafka-gateway-doctor"


def write_inventory(tmp_path: Path, port: int) -> Path:
    """One gateway on loopback at a port nothing listens on: reachable inventory, unreachable host."""
    (tmp_path / "known_hosts").write_text("")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  children:\n    gateways:\n      hosts:\n        gw-nowhere:\n"
        f"          ansible_host: 127.0.0.1\n          ansible_port: {port}\n          gateway_rack_id: rack-a\n"
        f"          ansible_ssh_common_args: '-o UserKnownHostsFile={tmp_path / 'known_hosts'}'\n")
    return inventory


def closed_port() -> socket.socket:
    """A loopback port bound but not listening (connections are refused), held so nothing else takes it."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    return held


def test_doctor_by_full_path_reads_the_inventory_without_the_venv_on_path(tmp_path: Path) -> None:
    assert DOCTOR.is_file(), f"{DOCTOR} missing: install the project with its ops extra into this interpreter's venv"
    empty = tmp_path / "bin"
    empty.mkdir()
    with closed_port() as held:
        inventory = write_inventory(tmp_path, held.getsockname()[1])
        done = subprocess.run([str(DOCTOR), "-i", str(inventory), "--timeout", "3"], env={"PATH": str(empty)},
                              capture_output=True, text=True, timeout=60)
    assert "ansible-inventory" not in done.stderr, done.stderr
    assert done.returncode == 1, done.stdout + done.stderr
    verdict = done.stdout.splitlines()[-1]
    assert verdict.startswith("UNHEALTHY: 1 problem on 1 gateway") and "gw-nowhere (ssh)" in verdict, done.stdout
    assert "gw-nowhere  ssh: ConnectionRefusedError" in done.stdout, done.stdout


def test_doctor_without_ansible_says_what_to_install(tmp_path: Path) -> None:
    """A virtualenv holding the doctor's code and its other dependencies but no Ansible, and a PATH without one."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    # the project and this venv's packages, without this venv's bin/ (where ansible-inventory lives)
    site.joinpath("doctor.pth").write_text(f"{ROOT}\nimport site; site.addsitedir({sysconfig.get_path('purelib')!r})\n")
    empty = tmp_path / "bin"
    empty.mkdir()
    with closed_port() as held:
        inventory = write_inventory(tmp_path, held.getsockname()[1])
        done = subprocess.run([str(venv / "bin/python"), "-m", "gateway_app.fleet", "-i", str(inventory)],
                              env={"PATH": str(empty)}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"kafka-gateway-doctor: no ansible-inventory beside {venv / 'bin/python'} nor on PATH; install Ansible into "
        f"this environment: {venv / 'bin/python'} -m pip install 'kafka-gateway[ops]' (or 'ansible-core>=2.17,<2.22')"]

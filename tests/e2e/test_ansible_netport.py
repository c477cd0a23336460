"""gateway_netport run by ansible against real links in network namespaces this test creates and removes."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv/bin"
LIBRARY = ROOT / "roles/gateway_network/library"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creating network namespaces needs root")


@dataclass
class Outcome:
    changed: bool
    result: dict[str, Any]
    diff_text: str


def ip(*argv: str) -> str:
    return subprocess.run(["ip", *argv], check=True, capture_output=True, text=True).stdout


def run_module(args: str, *, check: bool = False, expect_failure: bool = False) -> Outcome:
    """`ansible localhost -m gateway_netport` with --diff; returns the parsed result and the printed diff."""
    argv = [str(VENV_BIN / "ansible"), "localhost", "-m", "gateway_netport", "-a", args, "--diff"]
    if check:
        argv.append("--check")
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "ANSIBLE_LIBRARY": str(LIBRARY),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_PYTHON_INTERPRETER": str(VENV_BIN / "python"),
    }
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    if expect_failure:
        assert proc.returncode != 0, proc.stdout
        return Outcome(False, {}, proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    diff_text, _, tail = proc.stdout.partition("localhost | ")
    status, _, payload = tail.partition(" => ")
    return Outcome(status.strip() == "CHANGED", json.loads(payload), diff_text)


@pytest.fixture
def netns() -> Iterator[str]:
    """A namespace with a veth pair p0/p1 standing in for two client-facing NICs."""
    name = f"kgwt-{uuid.uuid4().hex[:8]}"
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
        yield name
    finally:
        ip("netns", "del", name)


def link(netns: str, name: str) -> dict[str, Any]:
    return json.loads(ip("-n", netns, "-j", "-d", "addr", "show", "dev", name))[0]


def addresses(netns: str, name: str) -> set[str]:
    return {f"{a['local']}/{a['prefixlen']}" for a in link(netns, name)["addr_info"] if a.get("scope") == "global"}


PORT_ARGS = "name=p0 netns={ns} addresses=198.18.200.1/24,198.18.201.1/24 mtu=1400 link_state=up"


def test_configures_port_then_second_run_changes_nothing(netns: str) -> None:
    first = run_module(PORT_ARGS.format(ns=netns))
    assert first.changed
    assert first.result["actions"] == [
        "set mtu of p0: 1500 -> 1400",
        "add address 198.18.200.1/24 to p0",
        "add address 198.18.201.1/24 to p0",
        "set p0 up",
    ]
    state = link(netns, "p0")
    assert state["mtu"] == 1400
    assert "UP" in state["flags"]
    assert addresses(netns, "p0") == {"198.18.200.1/24", "198.18.201.1/24"}

    second = run_module(PORT_ARGS.format(ns=netns))
    assert not second.changed
    assert second.result["actions"] == []


def test_check_mode_reports_change_and_leaves_the_port_alone(netns: str) -> None:
    before = link(netns, "p0")
    outcome = run_module(PORT_ARGS.format(ns=netns), check=True)
    assert outcome.changed
    assert outcome.result["port"]["mtu"] == 1400  # the predicted state
    after = link(netns, "p0")
    assert (after["mtu"], after["flags"], after["addr_info"]) == (before["mtu"], before["flags"], before["addr_info"])
    # and the real run afterwards does exactly what check mode announced
    assert run_module(PORT_ARGS.format(ns=netns)).result["actions"] == outcome.result["actions"]


def test_diff_shows_before_and_after(netns: str) -> None:
    outcome = run_module(f"name=p0 netns={netns} mtu=1280 addresses=198.18.200.1/24")
    assert '-    "mtu": 1500,' in outcome.diff_text
    assert '+    "mtu": 1280,' in outcome.diff_text
    assert '+        "198.18.200.1/24"' in outcome.diff_text


def test_modify_and_purge_addresses(netns: str) -> None:
    run_module(PORT_ARGS.format(ns=netns))
    outcome = run_module(f"name=p0 netns={netns} addresses=198.18.202.1/24 purge_addresses=true mtu=1500 link_state=down")
    assert outcome.result["actions"] == [
        "set mtu of p0: 1400 -> 1500",
        "add address 198.18.202.1/24 to p0",
        "remove address 198.18.200.1/24 from p0",
        "remove address 198.18.201.1/24 from p0",
        "set p0 down",
    ]
    assert addresses(netns, "p0") == {"198.18.202.1/24"}
    assert link(netns, "p0")["mtu"] == 1500
    assert "UP" not in link(netns, "p0")["flags"]


def test_missing_physical_port_and_namespace_fail_clearly(netns: str) -> None:
    assert "physical port p9 does not exist" in run_module(f"name=p9 netns={netns} mtu=1500", expect_failure=True).diff_text
    missing_ns = f"kgwt-absent-{uuid.uuid4().hex[:6]}"
    failure = run_module(f"name=p0 netns={missing_ns} mtu=1500", expect_failure=True)
    assert f"network namespace {missing_ns} does not exist" in failure.diff_text
    assert not Path("/run/netns", missing_ns).exists()


def kernel_supports(netns: str, *link_spec: str) -> bool:
    """Whether `ip link add probe0 LINK_SPEC` works here (containers' kernels often lack bonding or 802.1Q)."""
    probe = subprocess.run(["ip", "-n", netns, "link", "add", "probe0", *link_spec], capture_output=True, text=True)
    if probe.returncode == 0:
        ip("-n", netns, "link", "del", "probe0")
    return probe.returncode == 0


def test_bond_with_vlan_on_top(netns: str) -> None:
    """Bond p0+p1, a VLAN on the bond with the gateway address; on a kernel without bonding, a clean failure."""
    bond_args = f"name=bond0 kind=bond netns={netns} bond_mode=active-backup bond_slaves=p0,p1 mtu=9000 link_state=up"
    if not kernel_supports(netns, "type", "bond"):
        failure = run_module(bond_args, expect_failure=True)
        assert "create bond port bond0" in failure.diff_text
        assert "this kernel lacks support for that link kind" in failure.diff_text
        assert "bond0" not in ip("-n", netns, "-br", "link")
        return
    assert run_module(bond_args).changed
    assert not run_module(bond_args).changed
    info = link(netns, "bond0")
    assert (info["mtu"], info["linkinfo"]["info_data"]["mode"]) == (9000, "active-backup")
    assert {link(netns, p).get("master") for p in ("p0", "p1")} == {"bond0"}

    vlan_args = f"name=bond0.120 kind=vlan netns={netns} vlan_link=bond0 vlan_id=120 addresses=198.18.210.1/24 link_state=up"
    if not kernel_supports(netns, "link", "bond0", "type", "vlan", "id", "4000"):
        failure = run_module(vlan_args, expect_failure=True)
        assert "this kernel lacks support for that link kind" in failure.diff_text
        return
    assert run_module(vlan_args).changed
    assert not run_module(vlan_args).changed
    assert link(netns, "bond0.120")["linkinfo"]["info_data"]["id"] == 120
    assert addresses(netns, "bond0.120") == {"198.18.210.1/24"}

    mode_change = run_module(bond_args.replace("active-backup", "balance-rr"))
    assert "set bond mode of bond0: active-backup -> balance-rr" in mode_change.result["actions"]
    assert link(netns, "bond0")["linkinfo"]["info_data"]["mode"] == "balance-rr"
    assert {link(netns, p).get("master") for p in ("p0", "p1")} == {"bond0"}

    run_module(f"name=bond0.120 kind=vlan netns={netns} state=absent")
    run_module(f"name=bond0 kind=bond netns={netns} state=absent")
    assert "bond0" not in ip("-n", netns, "-br", "link")

"""The gateway_netport planner: from (current port state, wanted state) to netlink steps, without netlink."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

MODULE_PATH = Path(__file__).resolve().parents[2] / "roles/gateway_network/library/gateway_netport.py"
spec = importlib.util.spec_from_file_location("gateway_netport", MODULE_PATH)
assert spec and spec.loader
netport = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = netport  # dataclasses look their module up there
spec.loader.exec_module(netport)

PortState = netport.PortState
PortError = netport.PortError


def want(**overrides: Any) -> Any:
    params = {
        "name": "p0",
        "kind": "physical",
        "state": "present",
        "addresses": None,
        "purge_addresses": False,
        "mtu": None,
        "link_state": None,
        "bond_mode": None,
        "bond_slaves": None,
        "vlan_id": None,
        "vlan_link": None,
    }
    params.update(overrides)
    desired = netport.Desired.from_params(params)
    desired.validate()
    return desired


def describe(current: Any, desired: Any) -> tuple[list[str], Any]:
    steps, after = netport.plan(current, desired)
    return [step.describe for step in steps], after


NIC = PortState(name="p0", exists=True, kind="physical", mtu=1500, link_state="up", addresses=("198.18.0.21/24",))


def test_matching_port_plans_nothing() -> None:
    steps, after = describe(NIC, want(addresses=["198.18.0.21/24"], mtu=1500, link_state="up"))
    assert steps == []
    assert after == NIC


def test_addresses_are_compared_as_a_set() -> None:
    two = PortState(name="p0", exists=True, kind="physical", addresses=("198.18.0.21/24", "198.18.0.22/24"))
    steps, _ = describe(two, want(addresses=["198.18.0.22/24", "198.18.0.21/24", "198.18.0.21/24"]))
    assert steps == []


def test_invalid_address_is_refused_with_its_text() -> None:
    with pytest.raises(PortError, match="198.18.0.300/24"):
        want(addresses=["198.18.0.300/24"])


def test_extra_addresses_are_kept_unless_purged() -> None:
    steps, after = describe(NIC, want(addresses=["198.18.0.22/24"]))
    assert steps == ["add address 198.18.0.22/24 to p0"]
    assert after.addresses == ("198.18.0.21/24", "198.18.0.22/24")

    steps, after = describe(NIC, want(addresses=["198.18.0.22/24"], purge_addresses=True))
    assert steps == ["add address 198.18.0.22/24 to p0", "remove address 198.18.0.21/24 from p0"]
    assert after.addresses == ("198.18.0.22/24",)


def test_mtu_and_link_state_changes() -> None:
    steps, after = describe(NIC, want(mtu=9000, link_state="down"))
    assert steps == ["set mtu of p0: 1500 -> 9000", "set p0 down"]
    assert (after.mtu, after.link_state) == (9000, "down")


def test_missing_physical_port_is_an_error() -> None:
    with pytest.raises(PortError, match="physical port p0 does not exist"):
        netport.plan(PortState(name="p0"), want(mtu=1500))


def test_physical_port_is_never_deleted() -> None:
    with pytest.raises(PortError, match="refusing to delete physical port"):
        want(state="absent")


def test_new_bond_is_created_enslaved_and_raised() -> None:
    steps, after = describe(
        PortState(name="bond0"),
        want(name="bond0", kind="bond", bond_mode="802.3ad", bond_slaves=["eno2", "eno1"], mtu=9000, link_state="up"),
    )
    assert steps == [
        "create bond port bond0",
        "enslave eno1 to bond0",
        "enslave eno2 to bond0",
        "set mtu of bond0: None -> 9000",
        "set bond0 up",
    ]
    assert after.bond_slaves == ("eno1", "eno2")
    assert after.bond_mode == "802.3ad"


def test_bond_mode_change_releases_slaves_first_then_reenslaves() -> None:
    bond = PortState(
        name="bond0", exists=True, kind="bond", mtu=1500, link_state="up", bond_mode="active-backup", bond_slaves=("eno1",)
    )
    steps, after = describe(bond, want(name="bond0", kind="bond", bond_mode="802.3ad", bond_slaves=["eno1"], link_state="up"))
    assert steps == [
        "bring bond0 down to change its bond mode",
        "release eno1 from bond0",
        "set bond mode of bond0: active-backup -> 802.3ad",
        "enslave eno1 to bond0",
        "set bond0 up",
    ]
    assert (after.bond_mode, after.bond_slaves, after.link_state) == ("802.3ad", ("eno1",), "up")


def test_unlisted_bond_slaves_are_released() -> None:
    bond = PortState(name="bond0", exists=True, kind="bond", bond_mode="802.3ad", bond_slaves=("eno1", "eno3"))
    steps, _ = describe(bond, want(name="bond0", kind="bond", bond_slaves=["eno1", "eno2"]))
    assert steps == ["release eno3 from bond0", "enslave eno2 to bond0"]


def test_vlan_needs_id_and_parent() -> None:
    with pytest.raises(PortError, match="vlan_id and vlan_link"):
        want(name="v", kind="vlan", vlan_id=120)


def test_vlan_id_change_recreates_the_port_and_its_addresses() -> None:
    vlan = PortState(
        name="bond0.120",
        exists=True,
        kind="vlan",
        mtu=9000,
        link_state="up",
        addresses=("198.18.0.21/24",),
        vlan_id=120,
        vlan_link="bond0",
    )
    desired = want(name="bond0.120", kind="vlan", vlan_id=121, vlan_link="bond0", addresses=["198.18.0.21/24"], link_state="up")
    steps, after = describe(vlan, desired)
    assert steps == [
        "delete vlan bond0.120 to change its id/parent",
        "create vlan port bond0.120",
        "add address 198.18.0.21/24 to bond0.120",
        "set bond0.120 up",
    ]
    assert (after.vlan_id, after.addresses) == (121, ("198.18.0.21/24",))


def test_kind_mismatch_is_refused() -> None:
    with pytest.raises(PortError, match="exists as physical, not bond"):
        netport.plan(NIC, want(name="p0", kind="bond"))


def test_absent_virtual_port() -> None:
    bond = PortState(name="bond0", exists=True, kind="bond")
    assert describe(bond, want(name="bond0", kind="bond", state="absent"))[0] == ["delete bond port bond0"]
    assert describe(PortState(name="bond0"), want(name="bond0", kind="bond", state="absent"))[0] == []

#!/usr/bin/python
# Copyright: the kafka-gateway authors. Apache-2.0.
"""Ansible module: one client-facing network port, managed over netlink with pyroute2."""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
except ImportError:  # reported through missing_required_lib below
    IPRoute = None
    NetlinkError = OSError

DOCUMENTATION = r"""
module: gateway_netport
short_description: Manage a client-facing network port (addresses, MTU, link state, bond, VLAN) with pyroute2
description:
  - Reads the port over netlink, plans the smallest set of changes that reaches the requested state, and applies them.
  - Only the properties given are managed; an omitted option leaves that property as it is.
  - Supports check mode (reports what would change, changes nothing) and diff (port state before and after).
requirements: [pyroute2 >= 0.7]
options:
  name:
    description: Interface name.
    type: str
    required: true
  kind:
    description:
      - C(physical) is a port that already exists (a NIC, or a veth in a lab); it is never created or deleted.
      - C(bond), C(vlan) and C(dummy) are virtual ports created when missing and deleted with O(state=absent).
    type: str
    choices: [physical, bond, vlan, dummy]
    default: physical
  state:
    description: Whether the port should exist. V(absent) is refused for physical ports.
    type: str
    choices: [present, absent]
    default: present
  addresses:
    description: Addresses in CIDR form (V(198.18.0.21/24)) that must be on the port.
    type: list
    elements: str
  purge_addresses:
    description: Remove global-scope addresses that are not in O(addresses). Link-local addresses are kept.
    type: bool
    default: false
  mtu:
    description: MTU of the port.
    type: int
  link_state:
    description: Administrative state of the port.
    type: str
    choices: [up, down]
  bond_mode:
    description: Bonding mode of a bond port.
    type: str
    choices: [balance-rr, active-backup, balance-xor, broadcast, 802.3ad, balance-tlb, balance-alb]
  bond_slaves:
    description: Ports enslaved to a bond; other slaves are released.
    type: list
    elements: str
  vlan_id:
    description: 802.1Q VLAN id of a vlan port. Changing it recreates the port.
    type: int
  vlan_link:
    description: Parent port of a vlan port. Changing it recreates the port.
    type: str
  netns:
    description: Network namespace the port lives in; the caller's namespace when omitted.
    type: str
"""

EXAMPLES = r"""
- name: Bond two NICs for the client side and put a VLAN with the gateway address on it
  gateway_netport:
    name: "{{ item.name }}"
    kind: "{{ item.kind }}"
    bond_mode: "{{ item.bond_mode | default(omit) }}"
    bond_slaves: "{{ item.bond_slaves | default(omit) }}"
    vlan_id: "{{ item.vlan_id | default(omit) }}"
    vlan_link: "{{ item.vlan_link | default(omit) }}"
    addresses: "{{ item.addresses | default(omit) }}"
    mtu: 9000
    link_state: up
  loop:
    - {name: bond0, kind: bond, bond_mode: 802.3ad, bond_slaves: [eno1, eno2]}
    - {name: bond0.120, kind: vlan, vlan_link: bond0, vlan_id: 120, addresses: [198.18.0.21/24]}
"""

RETURN = r"""
port:
  description: State of the port after the run (predicted in check mode).
  returned: always
  type: dict
actions:
  description: Human-readable list of the changes made (or that would be made in check mode).
  returned: always
  type: list
  elements: str
"""

BOND_MODES = ("balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb")
VIRTUAL_KINDS = ("bond", "vlan", "dummy")
SCOPE_UNIVERSE = 0
NETNS_RUN_DIR = "/run/netns"
EOPNOTSUPP = 95


class PortError(Exception):
    """A request that cannot be carried out; its message goes to the operator."""


@dataclass(frozen=True)
class PortState:
    """What netlink says about one port; `exists=False` means no such link."""

    name: str
    exists: bool = False
    kind: str | None = None
    mtu: int | None = None
    link_state: str | None = None
    addresses: tuple[str, ...] = ()
    bond_mode: str | None = None
    bond_slaves: tuple[str, ...] = ()
    vlan_id: int | None = None
    vlan_link: str | None = None

    def as_dict(self) -> dict[str, Any]:
        state = asdict(self)
        state["addresses"] = list(self.addresses)
        state["bond_slaves"] = list(self.bond_slaves)
        return state


@dataclass(frozen=True)
class Step:
    """One netlink change: a sentence for the operator and the call that makes it."""

    describe: str
    apply: Callable[["Netlink"], None] = field(compare=False)


def normalize_address(cidr: str) -> str:
    try:
        return str(ipaddress.ip_interface(cidr))
    except ValueError as err:
        raise PortError(f"invalid address {cidr!r}: {err}") from err


class Netlink:
    """The few netlink reads and writes the planner needs, by interface name."""

    def __init__(self, netns: str | None) -> None:
        # pyroute2 would create a missing namespace; a typo must fail instead
        if netns and not os.path.exists(os.path.join(NETNS_RUN_DIR, netns)):
            raise PortError(f"network namespace {netns} does not exist")
        self.ipr = IPRoute(netns=netns) if netns else IPRoute()

    def close(self) -> None:
        self.ipr.close()

    def index(self, name: str) -> int | None:
        found = self.ipr.link_lookup(ifname=name)
        return found[0] if found else None

    def require_index(self, name: str) -> int:
        index = self.index(name)
        if index is None:
            raise PortError(f"port {name} does not exist")
        return index

    def read(self, name: str) -> PortState:
        index = self.index(name)
        if index is None:
            return PortState(name=name)
        link = self.ipr.link("get", index=index)[0]
        info = link.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info else None
        data = info.get_attr("IFLA_INFO_DATA") if info else None
        state = PortState(
            name=name,
            exists=True,
            kind=kind or "physical",
            mtu=link.get_attr("IFLA_MTU"),
            link_state="up" if link["flags"] & 1 else "down",
            addresses=self._addresses(index),
        )
        if kind == "bond":
            mode = data.get_attr("IFLA_BOND_MODE") if data else 0
            state = replace(state, bond_mode=BOND_MODES[mode], bond_slaves=self._slaves(index))
        elif kind == "vlan":
            parent = link.get_attr("IFLA_LINK")
            state = replace(state, vlan_id=data.get_attr("IFLA_VLAN_ID"), vlan_link=self._name(parent))
        return state

    def _name(self, index: int | None) -> str | None:
        if not index:
            return None
        return self.ipr.link("get", index=index)[0].get_attr("IFLA_IFNAME")

    def _addresses(self, index: int) -> tuple[str, ...]:
        found = []
        for msg in self.ipr.get_addr(index=index):
            if msg["scope"] != SCOPE_UNIVERSE:
                continue
            address = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
            found.append(normalize_address(f"{address}/{msg['prefixlen']}"))
        return tuple(sorted(found))

    def _slaves(self, index: int) -> tuple[str, ...]:
        return tuple(
            sorted(link.get_attr("IFLA_IFNAME") for link in self.ipr.get_links() if link.get_attr("IFLA_MASTER") == index)
        )

    # writes, each by name so a recreated port is found again
    def create(self, name: str, kind: str, bond_mode: str | None, vlan_id: int | None, vlan_link: str | None) -> None:
        extra: dict[str, Any] = {}
        if kind == "bond":
            extra["bond_mode"] = BOND_MODES.index(bond_mode or "balance-rr")
        elif kind == "vlan":
            extra.update(link=self.require_index(vlan_link or ""), vlan_id=vlan_id)
        self.ipr.link("add", ifname=name, kind=kind, **extra)

    def delete(self, name: str) -> None:
        self.ipr.link("del", index=self.require_index(name))

    def set_link(self, name: str, **attrs: Any) -> None:
        self.ipr.link("set", index=self.require_index(name), **attrs)

    def set_bond_mode(self, name: str, mode: str) -> None:
        self.ipr.link("set", index=self.require_index(name), kind="bond", bond_mode=BOND_MODES.index(mode))

    def enslave(self, slave: str, bond: str) -> None:
        # the kernel only enslaves a port that is down; the bond brings it up
        self.set_link(slave, state="down")
        self.set_link(slave, master=self.require_index(bond))

    def release(self, slave: str) -> None:
        self.set_link(slave, master=0)

    def address(self, name: str, cidr: str, command: str) -> None:
        iface = ipaddress.ip_interface(cidr)
        family = socket.AF_INET if iface.version == 4 else socket.AF_INET6
        self.ipr.addr(
            command, index=self.require_index(name), address=str(iface.ip), prefixlen=iface.network.prefixlen, family=family
        )


@dataclass(frozen=True)
class Desired:
    """The module parameters, with addresses normalized; None means 'leave as it is'."""

    name: str
    kind: str
    state: str
    addresses: tuple[str, ...] | None
    purge_addresses: bool
    mtu: int | None
    link_state: str | None
    bond_mode: str | None
    bond_slaves: tuple[str, ...] | None
    vlan_id: int | None
    vlan_link: str | None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "Desired":
        addresses = params["addresses"]
        slaves = params["bond_slaves"]
        return cls(
            name=params["name"],
            kind=params["kind"],
            state=params["state"],
            addresses=None if addresses is None else tuple(sorted({normalize_address(a) for a in addresses})),
            purge_addresses=params["purge_addresses"],
            mtu=params["mtu"],
            link_state=params["link_state"],
            bond_mode=params["bond_mode"],
            bond_slaves=None if slaves is None else tuple(sorted(set(slaves))),
            vlan_id=params["vlan_id"],
            vlan_link=params["vlan_link"],
        )

    def validate(self) -> None:
        if self.kind == "vlan" and self.state == "present" and (self.vlan_id is None or not self.vlan_link):
            raise PortError("kind=vlan needs vlan_id and vlan_link")
        if self.kind != "bond" and (self.bond_mode or self.bond_slaves):
            raise PortError("bond_mode and bond_slaves only apply to kind=bond")
        if self.kind != "vlan" and (self.vlan_id is not None or self.vlan_link):
            raise PortError("vlan_id and vlan_link only apply to kind=vlan")
        if self.state == "absent" and self.kind not in VIRTUAL_KINDS:
            raise PortError(f"refusing to delete physical port {self.name}; only {', '.join(VIRTUAL_KINDS)} can be absent")


def plan(current: PortState, want: Desired) -> tuple[list[Step], PortState]:
    """The steps from `current` to `want`, and the state they lead to. Pure: no netlink here."""
    name = want.name
    if want.state == "absent":
        if not current.exists:
            return [], current
        return [Step(f"delete {current.kind} port {name}", lambda nl: nl.delete(name))], PortState(name=name)

    steps: list[Step] = []
    if current.exists and current.kind != want.kind and want.kind != "physical":
        raise PortError(f"port {name} exists as {current.kind}, not {want.kind}; delete it first")
    recreate = current.exists and want.kind == "vlan" and (current.vlan_id, current.vlan_link) != (want.vlan_id, want.vlan_link)
    if recreate:
        steps.append(Step(f"delete vlan {name} to change its id/parent", lambda nl: nl.delete(name)))
    if not current.exists or recreate:
        if want.kind == "physical":
            raise PortError(f"physical port {name} does not exist")
        steps.append(
            Step(
                f"create {want.kind} port {name}",
                lambda nl: nl.create(name, want.kind, want.bond_mode, want.vlan_id, want.vlan_link),
            )
        )
        # a fresh link starts down, with the kernel's default MTU and no addresses
        current = PortState(
            name=name,
            exists=True,
            kind=want.kind,
            link_state="down",
            bond_mode=(want.bond_mode or "balance-rr") if want.kind == "bond" else None,
            vlan_id=want.vlan_id,
            vlan_link=want.vlan_link,
        )

    after = current
    slaves_now = current.bond_slaves
    if want.kind == "bond" and want.bond_mode and want.bond_mode != current.bond_mode:
        # the kernel changes the mode only of a bond that is down and has no slaves
        steps.append(Step(f"bring {name} down to change its bond mode", lambda nl: nl.set_link(name, state="down")))
        for slave in slaves_now:
            steps.append(Step(f"release {slave} from {name}", lambda nl, s=slave: nl.release(s)))
        steps.append(
            Step(
                f"set bond mode of {name}: {current.bond_mode} -> {want.bond_mode}",
                lambda nl: nl.set_bond_mode(name, want.bond_mode or ""),
            )
        )
        slaves_now = ()
        after = replace(after, bond_mode=want.bond_mode, bond_slaves=(), link_state="down")

    if want.kind == "bond" and want.bond_slaves is not None:
        for slave in sorted(set(slaves_now) - set(want.bond_slaves)):
            steps.append(Step(f"release {slave} from {name}", lambda nl, s=slave: nl.release(s)))
        for slave in sorted(set(want.bond_slaves) - set(slaves_now)):
            steps.append(Step(f"enslave {slave} to {name}", lambda nl, s=slave: nl.enslave(s, name)))
        after = replace(after, bond_slaves=want.bond_slaves)

    if want.mtu is not None and want.mtu != after.mtu:
        steps.append(Step(f"set mtu of {name}: {after.mtu} -> {want.mtu}", lambda nl: nl.set_link(name, mtu=want.mtu)))
        after = replace(after, mtu=want.mtu)

    if want.addresses is not None:
        present = set(after.addresses)
        for cidr in sorted(set(want.addresses) - present):
            steps.append(Step(f"add address {cidr} to {name}", lambda nl, c=cidr: nl.address(name, c, "add")))
        kept = present & set(want.addresses)
        if want.purge_addresses:
            for cidr in sorted(present - set(want.addresses)):
                steps.append(Step(f"remove address {cidr} from {name}", lambda nl, c=cidr: nl.address(name, c, "del")))
        else:
            kept = present
        after = replace(after, addresses=tuple(sorted(kept | set(want.addresses))))

    if want.link_state is not None and want.link_state != after.link_state:
        steps.append(
            Step(f"set {name} {want.link_state}", lambda nl: nl.set_link(name, state=want.link_state))
        )
        after = replace(after, link_state=want.link_state)
    return steps, after


def run(want: Desired, netns: str | None, check_mode: bool) -> dict[str, Any]:
    """Read, plan, apply (unless check mode) and read back: the module's result."""
    want.validate()
    netlink = Netlink(netns)
    try:
        before = netlink.read(want.name)
        steps, predicted = plan(before, want)
        if steps and not check_mode:
            for step in steps:
                try:
                    step.apply(netlink)
                except NetlinkError as err:
                    hint = " (this kernel lacks support for that link kind)" if err.code == EOPNOTSUPP else ""
                    raise PortError(f"{step.describe}: {err}{hint}") from err
            after = netlink.read(want.name)
        else:
            after = predicted
    finally:
        netlink.close()
    return {
        "changed": bool(steps),
        "actions": [step.describe for step in steps],
        "port": after.as_dict(),
        "diff": {"before": before.as_dict(), "after": after.as_dict()},
    }


ARGUMENT_SPEC: dict[str, Any] = {
    "name": {"type": "str", "required": True},
    "kind": {"type": "str", "choices": ["physical", *VIRTUAL_KINDS], "default": "physical"},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "addresses": {"type": "list", "elements": "str"},
    "purge_addresses": {"type": "bool", "default": False},
    "mtu": {"type": "int"},
    "link_state": {"type": "str", "choices": ["up", "down"]},
    "bond_mode": {"type": "str", "choices": list(BOND_MODES)},
    "bond_slaves": {"type": "list", "elements": "str"},
    "vlan_id": {"type": "int"},
    "vlan_link": {"type": "str"},
    "netns": {"type": "str"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if IPRoute is None:
        module.fail_json(msg=missing_required_lib("pyroute2"))
    try:
        result = run(Desired.from_params(module.params), module.params["netns"], module.check_mode)
    except PortError as err:
        module.fail_json(msg=str(err))
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()

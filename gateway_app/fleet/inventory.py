"""The fleet as the playbooks see it: an Ansible inventory read with `ansible-inventory --list`.

Any inventory Ansible reads works the same way (a YAML file, a directory with group_vars, the lab's dynamic
inventory script). Hosts of group `gateways` are gateway nodes, hosts of `gateway_lb` HAProxy load balancers.
The `ansible-inventory` used is the one installed beside the doctor's own interpreter (its virtualenv's `bin`, which
need not be on PATH when the doctor is run by its full path), else the first on PATH.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GATEWAY_GROUP = "gateways"
LB_GROUP = "gateway_lb"


@dataclass(frozen=True)
class Target:
    name: str
    role: str  # "gateway" or "lb"
    address: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    known_hosts: str | None = None  # None: the user's ~/.ssh/known_hosts
    rack: str | None = None
    node_id: str | None = None
    probe_args: dict[str, Any] = field(default_factory=dict)


class AnsibleMissing(RuntimeError):
    """No `ansible-inventory` beside this interpreter nor on PATH."""


def ansible_inventory_executable() -> str:
    beside = Path(sys.executable).parent / "ansible-inventory"  # not resolved: a venv's python is a symlink
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    on_path = shutil.which("ansible-inventory")
    if on_path:
        return on_path
    raise AnsibleMissing(
        f"no ansible-inventory beside {sys.executable} nor on PATH; install Ansible into this environment: "
        f"{sys.executable} -m pip install 'kafka-gateway[ops]' (or 'ansible-core>=2.17,<2.22')")


def read_inventory(sources: list[str]) -> dict[str, Any]:
    argv = [ansible_inventory_executable(), "--list"]
    for source in sources:
        argv += ["-i", source]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"ansible-inventory failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout)


def group_hosts(tree: dict[str, Any], group: str) -> list[str]:
    """Hosts of a group and of its child groups, in inventory order."""
    body = tree.get(group) or {}
    hosts = list(body.get("hosts") or [])
    for child in body.get("children") or []:
        hosts += [h for h in group_hosts(tree, child) if h not in hosts]
    return hosts


def known_hosts_file(hostvars: dict[str, Any]) -> str | None:
    """The UserKnownHostsFile the playbooks' SSH would use for this host, if its SSH options name one."""
    args: list[str] = []
    for key in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        args += shlex.split(str(hostvars.get(key) or ""))
    for index, arg in enumerate(args):
        option = args[index + 1] if arg == "-o" and index + 1 < len(args) else arg.removeprefix("-o")
        name, sep, value = option.partition("=")
        if sep and name.strip().lower() == "userknownhostsfile":
            return value.split()[0]
    return None


def _literal(hostvars: dict[str, Any]) -> dict[str, Any]:
    """Host variables without the Jinja templates (`ansible-inventory` does not render them): unset instead."""
    return {k: v for k, v in hostvars.items() if not (isinstance(v, str) and "{{" in v)}


def targets(tree: dict[str, Any]) -> list[Target]:
    hostvars = {name: _literal(hv) for name, hv in ((tree.get("_meta") or {}).get("hostvars") or {}).items()}
    result: list[Target] = []
    for role, group in (("gateway", GATEWAY_GROUP), ("lb", LB_GROUP)):
        for name in group_hosts(tree, group):
            hv = hostvars.get(name, {})
            result.append(Target(
                name=name, role=role,
                address=str(hv.get("ansible_host") or name),
                port=int(hv.get("ansible_port") or 22),
                user=str(hv.get("ansible_user") or "root"),
                key_file=str(Path(hv["ansible_ssh_private_key_file"]).expanduser())
                if hv.get("ansible_ssh_private_key_file") else None,
                known_hosts=known_hosts_file(hv),
                rack=str(hv["gateway_rack_id"]) if hv.get("gateway_rack_id") is not None else None,
                node_id=str(hv.get("gateway_node_id") or name) if role == "gateway" else None,
                probe_args=_probe_args(role, hv),
            ))
    return result


def _probe_args(role: str, hv: dict[str, Any]) -> dict[str, Any]:
    """Where the roles put things on this host (their defaults unless the inventory overrides them)."""
    if role == "lb":
        return {"haproxy_config": str(hv.get("gateway_haproxy_config_file") or "/etc/haproxy/haproxy.cfg")}
    install_dir = str(hv.get("gateway_install_dir") or "/opt/kafka-gateway")
    return {
        "unit": str(hv.get("gateway_service_name") or "kafka-gateway"),
        # the release the unit runs (roles/gateway/tasks/activate.yml points `current` at it)
        "venv": f"{install_dir}/current/venv",
        "env_file": f"{hv.get('gateway_config_dir') or '/etc/kafka-gateway'}/gateway.env",
        "http_port": int(hv.get("gateway_http_port") or 8888),
        "group": str(hv.get("gateway_system_group") or "kafka-gateway"),
    }

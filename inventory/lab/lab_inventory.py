#!/usr/bin/env python3
"""Ansible inventory script for the running lab: `python -m lab inventory`, in the script-inventory format.

    ansible-playbook -i inventory/lab playbooks/deploy.yml

KGW_LAB_HOSTS (lab host specs "NAME[:RACK][@GROUP[+GROUP]][%RELEASE]", space separated) limits the inventory to those
hosts: each molecule scenario works on hosts of its own beside the lab's default ones. gateway_client_networks then
keeps the racks of those hosts only (a scenario in two racks deploys a table of two).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv/bin/python"


def lab_inventory() -> dict:
    instance = os.environ.get("KGW_LAB_INSTANCE", "0")
    out = subprocess.run(
        [str(PYTHON if PYTHON.exists() else sys.executable), "-m", "lab", "--instance", instance, "inventory"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def selected_names() -> set[str] | None:
    specs = os.environ.get("KGW_LAB_HOSTS", "").split()
    return {re.split(r"[:@%]", spec, maxsplit=1)[0] for spec in specs} if specs else None


def to_script_format(tree: dict, only: set[str] | None) -> dict:
    """{"all": {"vars", "children": {group: {"hosts": {name: vars}}}}} -> {group: {"hosts": [...]}, "_meta": ...}"""
    root = tree["all"]
    result: dict = {"all": {"vars": root.get("vars", {}), "children": sorted(root.get("children", {}))}}
    hostvars: dict = {}
    for group, body in root.get("children", {}).items():
        hosts = {name: hv for name, hv in (body.get("hosts") or {}).items() if only is None or name in only}
        result[group] = {"hosts": sorted(hosts)}
        for name, host_vars in hosts.items():
            hostvars.setdefault(name, {}).update(host_vars or {})
    result["_meta"] = {"hostvars": hostvars}
    if only is not None and "gateway_client_networks" in result["all"]["vars"]:
        # The role refuses a client network of a rack no gateway host is in: keep the racks of the hosts kept.
        racks = {host_vars.get("gateway_rack_id") for host_vars in hostvars.values()}
        networks = result["all"]["vars"]["gateway_client_networks"]
        result["all"]["vars"] = {**result["all"]["vars"],
                                 "gateway_client_networks": {r: n for r, n in networks.items() if r in racks}}
    return result


def main() -> int:
    if "--host" in sys.argv:
        print("{}")  # everything is in _meta
        return 0
    print(json.dumps(to_script_format(lab_inventory(), selected_names()), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

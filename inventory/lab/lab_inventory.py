#!/usr/bin/env python3
"""Ansible inventory script for the running lab: `python -m lab inventory`, in the script-inventory format.

    ansible-playbook -i inventory/lab playbooks/deploy.yml
"""

from __future__ import annotations

import json
import os
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


def to_script_format(tree: dict) -> dict:
    """{"all": {"vars", "children": {group: {"hosts": {name: vars}}}}} -> {group: {"hosts": [...]}, "_meta": ...}"""
    root = tree["all"]
    result: dict = {"all": {"vars": root.get("vars", {}), "children": sorted(root.get("children", {}))}}
    hostvars: dict = {}
    for group, body in root.get("children", {}).items():
        hosts = body.get("hosts") or {}
        result[group] = {"hosts": sorted(hosts)}
        for name, host_vars in hosts.items():
            hostvars.setdefault(name, {}).update(host_vars or {})
    result["_meta"] = {"hostvars": hostvars}
    return result


def main() -> int:
    if "--host" in sys.argv:
        print("{}")  # everything is in _meta
        return 0
    print(json.dumps(to_script_format(lab_inventory()), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

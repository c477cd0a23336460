"""An Ansible inventory of the running lab: its hosts as they would appear on bare metal, with their racks."""

from __future__ import annotations

from .state import LabState


def inventory(state: LabState) -> dict:
    groups: dict[str, dict] = {}
    for host in state.hosts:
        for group in host.groups or ["ungrouped"]:
            groups.setdefault(group, {"hosts": {}})["hosts"][host.name] = {}
    hostvars = {
        h.name: {
            "ansible_host": h.address,
            "lab_debian_release": h.release,
            **({"gateway_rack_id": h.rack} if h.rack else {}),
        }
        for h in state.hosts
    }
    for group in groups.values():
        for name in group["hosts"]:
            group["hosts"][name] = hostvars[name]
    return {
        "all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": state.ssh_key,
                # the lab writes each host's own key here; the fleet doctor reads the file from these options too
                "ansible_ssh_common_args": f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={state.ssh_known_hosts}",
                "ansible_python_interpreter": "/usr/bin/python3",
                "lab_kafka_bootstrap_servers": state.bootstrap_servers,
                "lab_kafka_sasl_bootstrap_servers": state.sasl_bootstrap_servers,
                "lab_client_netns": state.client_netns,
                # Each rack's client network (a client namespace per rack sits in it): where a client's rack comes
                # from when it sends none (KIP-392 rack-aware reads through the gateway).
                "gateway_client_networks": state.client_networks,
                "lab_rack_client_netns": {c.rack: c.netns for c in state.rack_clients},
            },
            "children": groups,
        }
    }

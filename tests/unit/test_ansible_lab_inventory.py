"""inventory/lab/lab_inventory.py: the lab's inventory tree in Ansible's script format, limited by KGW_LAB_HOSTS."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "inventory/lab/lab_inventory.py"
spec = importlib.util.spec_from_file_location("lab_inventory", SCRIPT)
assert spec and spec.loader
lab_inventory = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = lab_inventory
spec.loader.exec_module(lab_inventory)

TREE = {
    "all": {
        "vars": {"ansible_user": "root", "lab_kafka_bootstrap_servers": "198.18.1.11:9092"},
        "children": {
            "gateways": {"hosts": {"gw1": {"ansible_host": "198.18.0.11", "gateway_rack_id": "rack-a"},
                                   "mdf-gw1": {"ansible_host": "198.18.0.19", "gateway_rack_id": "rack-a"}}},
            "gateway_lb": {"hosts": {"lb1": {"ansible_host": "198.18.0.17"}}},
        },
    }
}


def test_whole_lab_in_script_format() -> None:
    result = lab_inventory.to_script_format(TREE, None)
    assert result["all"] == {"vars": TREE["all"]["vars"], "children": ["gateway_lb", "gateways"]}
    assert result["gateways"] == {"hosts": ["gw1", "mdf-gw1"]}
    assert result["_meta"]["hostvars"]["mdf-gw1"] == {"ansible_host": "198.18.0.19", "gateway_rack_id": "rack-a"}


def test_kgw_lab_hosts_limits_to_the_named_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGW_LAB_HOSTS", "mdf-gw1:rack-a@gateways lb1@gateway_lb")
    result = lab_inventory.to_script_format(TREE, lab_inventory.selected_names())
    assert result["gateways"] == {"hosts": ["mdf-gw1"]}
    assert result["gateway_lb"] == {"hosts": ["lb1"]}
    assert set(result["_meta"]["hostvars"]) == {"mdf-gw1", "lb1"}


def test_kgw_lab_hosts_names_ignore_the_release_suffix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGW_LAB_HOSTS", "mdf-gw1:rack-a@gateways%trixie lb1%bookworm")
    assert lab_inventory.selected_names() == {"mdf-gw1", "lb1"}


def test_kgw_lab_hosts_keeps_the_client_networks_of_the_kept_racks(monkeypatch: pytest.MonkeyPatch) -> None:
    networks = {"rack-a": ["198.19.0.0/26"], "rack-b": ["198.19.0.64/26"], "rack-c": ["198.19.0.128/26"]}
    tree = {"all": {**TREE["all"], "vars": {**TREE["all"]["vars"], "gateway_client_networks": networks}}}
    assert lab_inventory.to_script_format(tree, None)["all"]["vars"]["gateway_client_networks"] == networks
    monkeypatch.setenv("KGW_LAB_HOSTS", "mdf-gw1:rack-a@gateways lb1@gateway_lb")
    result = lab_inventory.to_script_format(tree, lab_inventory.selected_names())
    assert result["all"]["vars"]["gateway_client_networks"] == {"rack-a": ["198.19.0.0/26"]}
    assert tree["all"]["vars"]["gateway_client_networks"] == networks  # the tree it was given is left as it was

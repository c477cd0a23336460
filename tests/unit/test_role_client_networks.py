"""The gateway role's gateway_client_networks (rack -> CIDRs) becomes a GATEWAY_CLIENT_RACK_NETWORKS the node reads as
the same table (roles/gateway/vars/main.yml renders it, the env template trims its last comma)."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import yaml

from gateway_app.client_networks import parse_client_networks

ROLE = Path(__file__).resolve().parents[2] / "roles/gateway"


def rendered(networks: dict[str, list[str]]) -> str:
    expression = yaml.safe_load((ROLE / "vars/main.yml").read_text())["_gateway_client_rack_networks"]
    text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(expression).render(
        gateway_client_networks=networks)
    return re.sub(",$", "", text.strip())  # what the template's `| trim | regex_replace(',$', '')` does


# Ansible templates an empty result to None, which `trim` would write as 'None' (the external_lb molecule scenario
# caught it): the template turns it back into an empty string first.


def test_every_rack_and_network_reaches_the_node() -> None:
    networks = {"rack-b": ["198.18.9.0/24"], "rack-a": ["198.18.8.0/24", "10.1.0.0/16"]}
    table = parse_client_networks(rendered(networks))
    assert sorted((rack, str(network)) for network, rack in table.entries) == sorted(
        (rack, cidr) for rack, cidrs in networks.items() for cidr in cidrs)


def test_no_networks_is_the_feature_off() -> None:
    assert rendered({}) == "" and not parse_client_networks(rendered({}))


def test_the_env_template_writes_it() -> None:
    template = (ROLE / "templates/gateway.env.j2").read_text()
    assert ("env('GATEWAY_CLIENT_RACK_NETWORKS', _gateway_client_rack_networks | default('', true) | trim "
            "| regex_replace(',$', ''))") in template
    assert "env('GATEWAY_PROXY_TRUSTED_NETWORKS', gateway_proxy_trusted_networks | join(','))" in template

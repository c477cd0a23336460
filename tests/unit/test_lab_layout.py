"""lab/layout.py's address plan: every instance's networks inside 198.18.0.0/15, no two of them overlapping."""

from __future__ import annotations

import ipaddress

import pytest

from lab.layout import RACKS, Layout

LAB_RANGE = ipaddress.ip_network("198.18.0.0/15")
INSTANCES = range(128)


def networks(layout: Layout) -> list[ipaddress.IPv4Network]:
    return [layout.host_net, layout.kafka_net, *(layout.rack_client_net(rack) for rack in RACKS)]


def test_every_network_of_every_instance_is_in_the_lab_range_and_disjoint() -> None:
    every = sorted(net for n in INSTANCES for net in networks(Layout(n)))
    assert all(net.subnet_of(LAB_RANGE) for net in every)
    overlapping = [(a, b) for a, b in zip(every, every[1:]) if a.overlaps(b)]
    assert overlapping == []
    assert len(every) == len(INSTANCES) * (2 + len(RACKS))


def test_an_instance_the_plan_has_no_room_for_is_refused() -> None:
    with pytest.raises(ValueError, match="0..127"):
        Layout(128)


def test_rack_client_addresses_lie_in_their_own_rack_network_only() -> None:
    layout = Layout(1)
    for rack in RACKS:
        for address in (layout.rack_client_ip(rack), layout.rack_controller_ip(rack)):
            inside = [r for r in RACKS if ipaddress.ip_address(address) in layout.rack_client_net(r)]
            assert inside == [rack]
        assert layout.rack_client_net(rack).subnet_of(layout.rack_client_block)
        assert not layout.rack_client_net(rack).overlaps(layout.host_net)
    assert layout.client_networks == {"rack-a": ["198.19.1.0/26"], "rack-b": ["198.19.1.64/26"],
                                      "rack-c": ["198.19.1.128/26"]}
    assert layout.rack_client_netns("rack-b") == "kgw1-rack-b"

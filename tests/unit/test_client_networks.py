"""GATEWAY_CLIENT_RACK_NETWORKS and GATEWAY_PROXY_TRUSTED_NETWORKS: parsing, validation, the rack lookup, and a
PROXY header from a peer outside the trusted networks refused and counted (gateway_app/proxy/server.py)."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from gateway_app.client_networks import contains, parse_client_networks, parse_trusted_networks
from gateway_app.cluster.topology import StaticTopology
from gateway_app.config import ConfigError, load_settings
from gateway_app.metrics import Metrics
from gateway_app.protocol.reserved import ReservedNames
from gateway_app.proxy.directory import BrokerDirectory
from gateway_app.proxy.proxy_protocol import LOCAL_HEADER, SIGNATURE
from gateway_app.proxy.routes import Routes
from gateway_app.proxy.server import Gateway

BASE = {"KAFKA_BOOTSTRAP_SERVERS": "198.18.1.11:9092", "GATEWAY_CLUSTER_SECRET": "unit-test-secret-0123456789"}


def test_the_table_of_the_interface_example() -> None:
    table = parse_client_networks("rack-a=198.18.8.0/24,rack-b=198.18.9.0/24, rack-a=10.1.0.0/16 ,")
    assert table.racks() == ("rack-a", "rack-b")
    assert [table.rack_of(a) for a in ("198.18.8.1", "198.18.9.254", "10.1.200.3", "198.18.10.1", "?", "")] == [
        "rack-a", "rack-b", "rack-a", None, None, None]
    assert table.rack_of("::ffff:198.18.9.4") == "rack-b", "an IPv4-mapped source is its IPv4 address"
    assert parse_client_networks(table.render()) == table


def test_empty_is_off() -> None:
    table = parse_client_networks("")
    assert not table and table.rack_of("198.18.8.1") is None
    assert load_settings(BASE).client_rack_networks == table


def test_ipv6_networks() -> None:
    table = parse_client_networks("rack-c=fd00:8::/64")
    assert table.rack_of("fd00:8::5") == "rack-c" and table.rack_of("[fd00:8::5]") == "rack-c"
    assert table.rack_of("fd00:9::5") is None and table.rack_of("198.18.8.1") is None


@pytest.mark.parametrize(("raw", "problem"), [
    ("rack-a=198.18.8.0/24,rack-b=198.18.8.128/25", "overlaps"),
    ("rack-a=10.0.0.0/8,rack-a=10.1.0.0/16", "overlaps"),  # the same rack twice is still ambiguous to read
    ("rack-a=fd00::/16,rack-b=fd00:1::/32", "overlaps"),
    ("rack-a=198.18.8.0/33", "not a CIDR network"),
    ("rack-a=198.18.8.1/24", "not a CIDR network"),  # host bits set: a typo more likely than a meaning
    ("rack-a=banana", "not a CIDR network"),
    ("rack-a", "not rack=cidr"),
    ("=198.18.8.0/24", "not rack=cidr"),
    ("rack a=198.18.8.0/24", "not a Kafka rack"),
    ("r" * 129 + "=198.18.8.0/24", "not a Kafka rack"),
])
def test_bad_tables_are_refused_naming_the_setting(raw: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({**BASE, "GATEWAY_CLIENT_RACK_NETWORKS": raw})
    assert raised.value.setting == "GATEWAY_CLIENT_RACK_NETWORKS" and problem in str(raised.value)


def test_ipv4_and_ipv6_never_overlap() -> None:
    assert parse_client_networks("rack-a=0.0.0.0/0,rack-b=::/0").rack_of("::1") == "rack-b"


def test_trusted_networks() -> None:
    networks = parse_trusted_networks("198.18.0.20,198.18.4.0/24")
    assert contains(networks, "198.18.0.20") and contains(networks, "198.18.4.9")
    assert not contains(networks, "198.18.0.21") and not contains(networks, "?") and not contains((), "198.18.0.20")
    with pytest.raises(ValueError):
        parse_trusted_networks("198.18.4.1/24")


def test_proxy_protocol_needs_trusted_networks() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({**BASE, "GATEWAY_PROXY_PROTOCOL": "true"})
    assert raised.value.setting == "GATEWAY_PROXY_TRUSTED_NETWORKS"
    settings = load_settings({**BASE, "GATEWAY_PROXY_PROTOCOL": "true", "GATEWAY_PROXY_TRUSTED_NETWORKS": "198.18.0.20"})
    assert [str(n) for n in settings.proxy_trusted_networks] == ["198.18.0.20/32"]
    assert load_settings({**BASE, "GATEWAY_PROXY_TRUSTED_NETWORKS": ""}).proxy_trusted_networks == ()


# --- PROXY trust at accept ------------------------------------------------------------------------------


def proxy_header(source: str, source_port: int) -> bytes:
    addresses = socket.inet_aton(source) + socket.inet_aton("127.0.0.1") + struct.pack(">HH", source_port, 6969)
    return SIGNATURE + bytes([0x21, 0x11]) + struct.pack(">H", len(addresses)) + addresses


def _accept(trusted: str, header: bytes) -> tuple[Gateway, bool]:
    """A loopback connection that sends `header`, handed to the gateway's accept path; True if it was let in."""
    settings = load_settings({**BASE, "GATEWAY_PROXY_PROTOCOL": "true", "GATEWAY_PROXY_TRUSTED_NETWORKS": trusted,
                              "GATEWAY_CLIENT_RACK_NETWORKS": "rack-b=198.18.9.0/24"})
    metrics = Metrics()
    routes = Routes(StaticTopology(settings.port_plan, "127.0.0.1"), BrokerDirectory({}, (), 1.0), metrics)
    gateway = Gateway(settings, routes, metrics, ReservedNames.of("_gateway_t", "_gateway_t_members"))

    async def run() -> bool:
        with socket.create_server(("127.0.0.1", 0)) as server:
            client = socket.create_connection(server.getsockname())
            accepted, _ = server.accept()
            accepted.setblocking(False)
            client.sendall(header)
            await gateway._start_accepted(accepted, settings.port_start)
            await asyncio.sleep(0)
            admitted = [(pair.peer, pair.client_rack) for pair in gateway.pairs]
            for pair in list(gateway.pairs):
                pair.abort()
            client.close()
            return admitted

    return gateway, asyncio.run(run())


def _refused(gateway: Gateway) -> float:
    return gateway.metrics.connections_refused.labels("proxy_untrusted")._value.get()


def test_a_proxy_header_from_an_untrusted_peer_is_refused_and_counted() -> None:
    gateway, admitted = _accept("10.0.0.0/8", proxy_header("198.18.9.7", 4242))
    assert admitted == [] and _refused(gateway) == 1


def test_a_proxy_header_from_a_trusted_peer_gives_the_client_and_its_rack() -> None:
    gateway, admitted = _accept("127.0.0.0/8", proxy_header("198.18.9.7", 4242))
    assert admitted == [("198.18.9.7:4242", "rack-b")] and _refused(gateway) == 0


def test_a_local_header_claims_nothing_and_is_taken_from_anyone() -> None:
    """What a peer node's probe and a health check send: the connection is the socket peer's own."""
    gateway, admitted = _accept("10.0.0.0/8", LOCAL_HEADER)
    assert len(admitted) == 1 and admitted[0][0].startswith("127.0.0.1:") and admitted[0][1] is None
    assert _refused(gateway) == 0

"""Which rack a client is in, from its source address (GATEWAY_CLIENT_RACK_NETWORKS), and whose PROXY headers
are believed (GATEWAY_PROXY_TRUSTED_NETWORKS).

The client-network table names each rack's client networks (`rack-a=198.18.8.0/24,rack-b=...`; a rack may have
several). No two networks overlap, so an address is in one rack or in none: the answer never depends on the
order the table was written in. The rack is looked up once per connection (proxy/connection.py) from the real
source address: the PROXY header's source when the header is trusted, else the socket's peer.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .member import MAX_RACK, valid_rack

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(text: str) -> Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as error:
        raise ValueError(f"{text.strip()!r} is not a CIDR network ({error})") from None


def source_address(source: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address of a connection's source ('198.18.8.5', '::1', an IPv4-mapped IPv6 address as its IPv4
    address); None for anything else (a peer the socket could not name)."""
    try:
        address = ipaddress.ip_address(source.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def contains(networks: tuple[Network, ...], source: str) -> bool:
    address = source_address(source)
    return address is not None and any(address in network for network in networks)


def _check_disjoint(entries: list[tuple[Network, str]]) -> None:
    for index, (network, rack) in enumerate(entries):
        for other, other_rack in entries[index + 1:]:
            if network.version == other.version and network.overlaps(other):
                raise ValueError(f"{rack}={network} overlaps {other_rack}={other}: an address must be in one rack")


@dataclass(frozen=True, slots=True)
class ClientNetworks:
    """The client-network table: (network, rack) pairs, no two networks overlapping. Empty: no client has a rack."""

    entries: tuple[tuple[Network, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.entries)

    def racks(self) -> tuple[str, ...]:
        return tuple(sorted({rack for _, rack in self.entries}))

    def rack_of(self, source: str) -> str | None:
        """The rack whose client networks hold this source address; None when none does."""
        if not self.entries:
            return None
        address = source_address(source)
        if address is None:
            return None
        for network, rack in self.entries:
            if address in network:
                return rack
        return None

    def render(self) -> str:
        """Back to the setting's text (what --help and the docs show)."""
        return ",".join(f"{rack}={network}" for network, rack in self.entries)


def parse_client_networks(raw: str) -> ClientNetworks:
    """`rack=cidr,rack=cidr,...` -> ClientNetworks; ValueError naming the first bad pair."""
    entries: list[tuple[Network, str]] = []
    for item in raw.split(","):
        if not item.strip():
            continue
        rack, sep, cidr = item.strip().partition("=")
        rack = rack.strip()
        if not sep or not rack or not cidr.strip():
            raise ValueError(f"{item.strip()!r} is not rack=cidr")
        if not valid_rack(rack):
            raise ValueError(f"rack {rack!r} is not a Kafka rack (1-{MAX_RACK} printable ASCII characters, no spaces)")
        entries.append((parse_network(cidr), rack))
    _check_disjoint(entries)
    return ClientNetworks(tuple(entries))


def parse_trusted_networks(raw: str) -> tuple[Network, ...]:
    """Comma-separated CIDR networks (a single address is a /32 or /128)."""
    return tuple(parse_network(item) for item in raw.split(",") if item.strip())


# Client software that follows a preferred read replica it did not ask for by setting client.rack, as each names
# itself in ApiVersions: the Java client, kafka-python and librdkafka, whose bindings send their own names (the
# fetcher that follows is librdkafka's). tests/e2e/test_rack_aware_reads.py proves the Java client, kafka-python and
# confluent-kafka-python. aiokafka follows one only when it set client_rack itself (its fetcher ignores
# preferred_read_replica otherwise), so it is not here.
RACK_FOLLOWING_SOFTWARE = frozenset({
    "apache-kafka-java", "kafka-python",
    "librdkafka", "confluent-kafka-python", "confluent-kafka-go", "confluent-kafka-dotnet",
})

# KIP-511's rule for client_software_name (a broker refuses other names with INVALID_REQUEST)
_SOFTWARE_NAME = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?")


def parse_software_names(raw: str) -> frozenset[str]:
    """Comma-separated client software names (as clients send them in ApiVersions v3+, KIP-511)."""
    names = [item.strip() for item in raw.split(",") if item.strip()]
    for name in names:
        if not _SOFTWARE_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a client software name (letters, digits, '-' and '.', "
                             "beginning and ending with a letter or digit)")
    return frozenset(names)

"""PROXY protocol v2 address blocks."""

from __future__ import annotations

import socket
import struct

import pytest

from gateway_app.protocol.headers import MalformedFrame
from gateway_app.proxy.proxy_protocol import LOCAL, PROXY, parse_address_block


def test_ipv4_and_ipv6_sources() -> None:
    v4 = socket.inet_aton("198.18.0.7") + socket.inet_aton("198.18.0.2") + struct.pack(">HH", 40000, 6969)
    assert parse_address_block(PROXY, 0x11, v4) == "198.18.0.7:40000"
    v6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1") + bytes(16) + struct.pack(">HH", 1234, 6969)
    assert parse_address_block(PROXY, 0x21, v6) == "2001:db8::1:1234"


def test_local_command_and_unspecified_family_have_no_address() -> None:
    assert parse_address_block(LOCAL, 0x00, b"") is None
    assert parse_address_block(PROXY, 0x00, b"") is None


@pytest.mark.parametrize(("command", "family", "block"), [(0x22, 0x11, bytes(12)), (PROXY, 0x11, bytes(5))])
def test_bad_blocks(command: int, family: int, block: bytes) -> None:
    with pytest.raises(MalformedFrame):
        parse_address_block(command, family, block)

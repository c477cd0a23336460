"""PROXY protocol v2 header (HAProxy `send-proxy-v2`): the real client address of a connection."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct

from ..close_reasons import CloseReason
from ..protocol.headers import MalformedFrame

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
FIXED = struct.Struct(">12sBBH")  # signature, version/command, family/transport, address length
LOCAL, PROXY = 0x20, 0x21
_ADDRESSES = {  # family nibble -> (address bytes, struct of src/dst/ports)
    0x1: (4, struct.Struct(">4s4sHH")),
    0x2: (16, struct.Struct(">16s16sHH")),
}
MAX_ADDRESS_BLOCK = 512
# What a connection that proxies nobody sends (a health check, or this node's probe of a peer, peer_probe.py):
# LOCAL, no address family, an empty address block.
LOCAL_HEADER = FIXED.pack(SIGNATURE, LOCAL, 0, 0)


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise MalformedFrame(CloseReason.PROXY_HEADER, "connection closed inside the PROXY header")
        data += chunk
    return bytes(data)


def parse_address_block(version_command: int, family: int, block: bytes) -> str | None:
    """'host:port' of the original client, or None for LOCAL (health checks) / unspecified families."""
    if version_command == LOCAL:
        return None
    if version_command != PROXY:
        raise MalformedFrame(CloseReason.PROXY_HEADER, f"unsupported version/command 0x{version_command:02x}")
    address = _ADDRESSES.get(family >> 4)
    if address is None:
        return None
    layout = address[1]
    if len(block) < layout.size:
        raise MalformedFrame(CloseReason.PROXY_HEADER, "address block too short")
    source, _, source_port, _ = layout.unpack_from(block)
    return f"{ipaddress.ip_address(source)}:{source_port}"


async def read_header(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> str | None:
    """Consume exactly the PROXY v2 header from a fresh socket (before any TLS) and return the client."""
    signature, version_command, family, length = FIXED.unpack(await _recv_exactly(loop, sock, FIXED.size))
    if signature != SIGNATURE:
        raise MalformedFrame(CloseReason.PROXY_HEADER, "missing PROXY v2 signature")
    if length > MAX_ADDRESS_BLOCK:
        raise MalformedFrame(CloseReason.PROXY_HEADER, f"address block of {length} bytes")
    return parse_address_block(version_command, family, await _recv_exactly(loop, sock, length))

"""PROXY protocol v2 on the listeners: the node sees the original client address HAProxy reports."""

from __future__ import annotations

import socket
import struct
import subprocess
import time

import pytest
from kio.schema.api_versions.v0.request import ApiVersionsRequest
from kio.schema.api_versions.v0.response import ApiVersionsResponse
from kio.schema.request_header.v1.header import RequestHeader

from gateway_app.proxy.proxy_protocol import SIGNATURE
from tests.e2e.dataplane_support import PYTHON, REPO, kafka_exchange, running_node

pytestmark = pytest.mark.lab

PORT_START, HTTP_PORT = 17500, 17590
ORIGINAL_CLIENT = ("198.18.0.123", 5555)  # the address HAProxy would have seen



@pytest.fixture(scope="module")
def node(lab, tmp_path_factory):
    """The controller's own addresses stand for the load balancer: PROXY headers are believed from them only, so
    the client namespace is a peer that reaches the node directly."""
    trusted = ",".join([lab.controller_address, *lab.gateway_addresses])
    yield from running_node(lab, tmp_path_factory, PORT_START, HTTP_PORT, GATEWAY_PROXY_PROTOCOL="true",
                            GATEWAY_PROXY_TRUSTED_NETWORKS=trusted)


def proxy_header(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    addresses = socket.inet_aton(source[0]) + socket.inet_aton(destination[0]) + struct.pack(">HH", source[1], destination[1])
    return SIGNATURE + bytes([0x21, 0x11]) + struct.pack(">H", len(addresses)) + addresses


def proxied_connection(node) -> socket.socket:
    """A connection that starts with the PROXY header, as HAProxy's send-proxy-v2 does."""
    sock = socket.create_connection((node.address, PORT_START), timeout=5)
    sock.sendall(proxy_header(ORIGINAL_CLIENT, (node.address, PORT_START)))
    return sock


def test_kafka_works_after_the_proxy_header_and_logs_the_original_client(node):
    sock = proxied_connection(node)
    payload = struct.pack(">hhih", 18, 0, 7, 4) + b"test"
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", sock.recv(4))[0]
    assert size > 6
    sock.close()
    bad = proxied_connection(node)
    bad.sendall(struct.pack(">i", -5))
    bad.settimeout(5)
    assert bad.recv(1) == b""
    bad.close()
    time.sleep(0.2)
    assert f"closing client {ORIGINAL_CLIENT[0]}:{ORIGINAL_CLIENT[1]}" in node.log()


def test_connection_without_proxy_header_is_refused(node):
    before = node.metric("gateway_malformed_frames_total", reason="proxy_header")
    with pytest.raises((ConnectionError, OSError, IndexError, struct.error)):
        kafka_exchange(node.address, PORT_START, RequestHeader(request_api_key=18, request_api_version=0,
                                                                correlation_id=1, client_id="x"),
                       ApiVersionsRequest(), ApiVersionsResponse)
    time.sleep(0.2)
    assert node.metric("gateway_malformed_frames_total", reason="proxy_header") == before + 1


# Run in the client namespace: a PROXY header claiming ORIGINAL_CLIENT, then an ApiVersions v0 request; prints what
# came back ("closed" when the node hung up without answering).
_FROM_AN_UNTRUSTED_PEER = """
import socket, struct, sys
address, port, header = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
sock = socket.create_connection((address, port), timeout=5)
payload = struct.pack(">hhih", 18, 0, 9, 4) + b"test"
try:
    sock.sendall(header + struct.pack(">i", len(payload)) + payload)
    print("closed" if sock.recv(4) == b"" else "answered")
except ConnectionResetError:
    print("closed")
"""


def test_a_proxy_header_from_outside_the_trusted_networks_is_refused_and_counted(lab, node):
    before = node.metric("gateway_connections_refused_total", reason="proxy_untrusted")
    header = proxy_header(ORIGINAL_CLIENT, (node.address, PORT_START))
    done = subprocess.run(lab.client_cmd([PYTHON, "-c", _FROM_AN_UNTRUSTED_PEER, node.address, str(PORT_START),
                                          header.hex()]), cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "closed", done.stderr[-2000:]
    time.sleep(0.2)
    assert node.metric("gateway_connections_refused_total", reason="proxy_untrusted") == before + 1
    assert f"closing connection from {lab.client_address} on port {PORT_START}: proxy_untrusted" in node.log()

"""Raw Kafka frames the tests, the benchmark and the soak send without a client library in between."""

from __future__ import annotations

import socket
import struct

from kio.schema.metadata.v12.request import MetadataRequest
from kio.schema.request_header.v2.header import RequestHeader
from kio.static.primitive import i16, i32

from gateway_app.protocol.api_keys import METADATA
from gateway_app.protocol.kio_adapter import encode


def metadata_request(correlation_id: int, client_id: str = "kgw-bench", all_topics: bool = False) -> bytes:
    """A framed Metadata v12 request for no topic (the broker list only) or, with all_topics, every topic."""
    header = RequestHeader(request_api_key=i16(METADATA), request_api_version=i16(12),
                           correlation_id=i32(correlation_id), client_id=client_id)
    body = MetadataRequest(topics=None if all_topics else (), allow_auto_topic_creation=False,
                           include_topic_authorized_operations=False)
    payload = encode(header) + encode(body)
    return struct.pack(">i", len(payload)) + payload


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed mid-frame")
        data += chunk
    return bytes(data)

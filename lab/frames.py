"""Raw Kafka frames the tests, the benchmark and the soak send without a client library in between."""

from __future__ import annotations

import socket
import struct

from kio.schema.metadata.v12.request import MetadataRequest
from kio.schema.metadata.v12.response import MetadataResponse
from kio.schema.request_header.v2.header import RequestHeader
from kio.serial import entity_reader
from kio.static.primitive import i16, i32

import uuid

from gateway_app.protocol.api_keys import FETCH, METADATA
from gateway_app.protocol.codec import encode as codec_encode
from gateway_app.protocol.headers import request_is_flexible
from gateway_app.protocol.kio_adapter import encode
from gateway_app.protocol.message_specs import REQUEST, spec


def metadata_request(correlation_id: int, client_id: str = "kgw-bench", all_topics: bool = False) -> bytes:
    """A framed Metadata v12 request for no topic (the broker list only) or, with all_topics, every topic."""
    header = RequestHeader(request_api_key=i16(METADATA), request_api_version=i16(12),
                           correlation_id=i32(correlation_id), client_id=client_id)
    body = MetadataRequest(topics=None if all_topics else (), allow_auto_topic_creation=False,
                           include_topic_authorized_operations=False)
    payload = encode(header) + encode(body)
    return struct.pack(">i", len(payload)) + payload


def request_frame(api_key: int, api_version: int, correlation_id: int, body: dict, client_id: str = "kgw-bench") -> bytes:
    """A framed request of any API and version, its body given as codec values (snake_case field names)."""
    client = client_id.encode()
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client)) + client
    if request_is_flexible(api_key, api_version):
        header += b"\0"  # header v2: an empty tag section
    payload = header + codec_encode(spec(REQUEST, api_key, api_version), body)
    return struct.pack(">i", len(payload)) + payload


def fetch_body(api_version: int, partitions: int, rack_id: str = "") -> dict:
    """A consumer's Fetch request body: one topic with `partitions` partitions, by name before v13 and by id from it."""
    topic: dict = {"topic": "orders"} if api_version < 13 else {"topic_id": uuid.UUID(int=0x5EED)}
    topic["partitions"] = [{"partition": p, "current_leader_epoch": 3, "fetch_offset": 1000 + p, "last_fetched_epoch": -1,
                            "log_start_offset": -1, "partition_max_bytes": 1048576} for p in range(partitions)]
    return {"replica_id": -1, "max_wait_ms": 500, "min_bytes": 1, "max_bytes": 52428800, "isolation_level": 1,
            "session_id": 0, "session_epoch": -1, "topics": [topic], "forgotten_topics_data": [], "rack_id": rack_id}


def fetch_request(api_version: int, correlation_id: int, partitions: int = 1, rack_id: str = "") -> bytes:
    return request_frame(FETCH, api_version, correlation_id, fetch_body(api_version, partitions, rack_id))


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed mid-frame")
        data += chunk
    return bytes(data)


def exchange(host: str, port: int, frame: bytes, timeout_s: float = 5.0) -> bytes:
    """Send one framed request on a fresh connection and return the response frame, its size prefix taken off."""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(frame)
        size = struct.unpack(">i", recv_exactly(sock, 4))[0]
        return recv_exactly(sock, size)


def metadata_brokers(host: str, port: int, timeout_s: float = 3.0,
                     client_id: str = "kgw-lab") -> dict[int, tuple[str, int, str | None]]:
    """Ask a broker or a gateway node for Metadata v12 (no topics) on a fresh connection: broker id -> (host, port,
    rack). OSError when it cannot be reached or closes before it answers."""
    frame = memoryview(exchange(host, port, metadata_request(1, client_id), timeout_s))
    # response header v1: the correlation id, then an empty tag section (one zero byte)
    if struct.unpack(">i", frame[:4])[0] != 1 or frame[4] != 0:
        raise ConnectionError(f"{host}:{port} answered Metadata with a header that is not ours: {bytes(frame[:5]).hex()}")
    response = entity_reader(MetadataResponse)(frame[5:], 0)[0]
    return {int(b.node_id): (b.host, int(b.port), b.rack) for b in response.brokers}

"""KIP-1242 through the gateway: the cluster and node an ApiVersions request (v5+) names.

From v5 a client may name the cluster and the node it means to reach; a broker takes both or neither (one alone is
INVALID_REQUEST) and answers REBOOTSTRAP_REQUIRED when it is another node or another cluster, so a client holding a
stale address bootstraps again. On a broker port the node named means the broker that port stands for (node ids are
the brokers' own), so the request is relayed untouched and the broker's check is exactly the client's. The bootstrap
port stands for no node: whichever broker its connection dials would refuse a client that names one. There both
fields are cleared before the request is relayed; the client's cluster is checked again on its first broker port.
"""

from __future__ import annotations

from .api_keys import API_VERSIONS
from .codec import decode_field, decode_until
from .message_specs import REQUEST, spec
from .wire import I32

FIRST_NAMING_NODE = 5
FIRST_NAMING_SOFTWARE = 3  # KIP-511: client_software_name and _version
NO_NODE = -1
NULL_COMPACT_STRING = b"\x00"


def names_node(api_version: int) -> bool:
    return api_version >= FIRST_NAMING_NODE


def without_node(frame: bytes, body_offset: int, api_version: int) -> bytes | None:
    """The sized frame with ClusterId null and NodeId -1 if it names both; None if it names neither or one alone
    (relayed as it is: the broker answers one alone with INVALID_REQUEST, as it would without a gateway).

    body_offset counts from the frame's start, its size prefix included. Raises WireError, IndexError or
    struct.error for bytes Kafka would not read."""
    message = spec(REQUEST, API_VERSIONS, api_version)
    view = memoryview(frame)
    cluster_at = decode_until(message, "cluster_id", view, body_offset)
    node_at = decode_until(message, "node_id", view, body_offset)
    (node_id,) = I32.unpack_from(frame, node_at)
    cluster_is_null = node_at == cluster_at + 1 and frame[cluster_at:node_at] == NULL_COMPACT_STRING
    if node_id == NO_NODE or cluster_is_null:
        return None
    payload = bytes(view[4:cluster_at]) + NULL_COMPACT_STRING + I32.pack(NO_NODE) + bytes(view[node_at + 4:])
    return I32.pack(len(payload)) + payload


def names_software(api_version: int) -> bool:
    return api_version >= FIRST_NAMING_SOFTWARE


def client_software(frame: bytes, body_offset: int, api_version: int) -> str | None:
    """The client_software_name an ApiVersions request (v3+) carries, None before v3. body_offset counts from the
    frame's start, its size prefix included. Raises WireError, IndexError or struct.error for bytes Kafka would not
    read."""
    if not names_software(api_version):
        return None
    message = spec(REQUEST, API_VERSIONS, api_version)
    view = memoryview(frame)
    start = decode_until(message, "client_software_name", view, body_offset)
    field = next(field for field in message.untagged() if field.snake == "client_software_name")
    name, _ = decode_field(field, view, start)
    return name

"""KIP-392 through the gateway: a Fetch request that names no rack is relayed naming the client's.

From v11 a Fetch request carries `rack_id`, the consumer's rack; a broker with
`replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector` answers it with a preferred
read replica in that rack. Few applications set `client.rack`, so the gateway fills it in from the rack it
decided for the connection (client_networks.py). Only an empty rack_id is filled: one the client set itself is
never overridden. rack_id is the last field before the top-level tag section, so the request is kept byte for
byte up to it (reached by a reader compiled from Kafka's definitions, reserved.offset_reader, which builds no
values), the field is read and written anew by the codec, and the rest follows as the client sent it.
"""

from __future__ import annotations

from functools import cache
from typing import Callable

from .api_keys import FETCH
from .codec import decode_field, encode_field
from .message_specs import REQUEST, FieldSpec, spec
from .reserved import offset_reader
from .wire import I32

FIRST_WITH_RACK = 11


def carries_rack(api_version: int) -> bool:
    return api_version >= FIRST_WITH_RACK


@cache
def _rack_field(api_version: int) -> tuple[Callable[[memoryview, int], int], FieldSpec]:
    """Where rack_id starts in a request of this version, and the field."""
    message = spec(REQUEST, FETCH, api_version)
    field = next(field for field in message.untagged() if field.snake == "rack_id")
    return offset_reader(message, "rack_id"), field


@cache
def encoded_rack(rack: str, api_version: int) -> bytes:
    """The rack_id field's bytes at a version (compact or legacy string), built once per rack and version."""
    return encode_field(_rack_field(api_version)[1], rack)


def with_rack(frame: bytes, body_offset: int, api_version: int, rack: str) -> bytes | None:
    """The sized frame with rack_id set to `rack`, or None when it stays as it is: a version before v11, or a
    rack_id the client set itself. body_offset counts from the frame's start, size prefix included.
    Raises WireError, IndexError or struct.error for bytes Kafka would not read."""
    if not carries_rack(api_version):
        return None
    rack_at, field = _rack_field(api_version)
    view = memoryview(frame)
    start = rack_at(view, body_offset)  # every item takes a byte at least: the frame's size bounds the walk
    current, end = decode_field(field, view, start)
    if current:
        return None
    payload_size = len(frame) - 4 - (end - start) + len(encoded := encoded_rack(rack, api_version))
    return b"".join((I32.pack(payload_size), view[4:start], encoded, view[end:]))

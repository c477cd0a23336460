"""KIP-392 through the gateway: a Fetch request that names no rack is relayed naming the client's.

From v11 a Fetch request carries `rack_id`, the consumer's rack; a broker with
`replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector` answers it with a preferred
read replica in that rack. Few applications set `client.rack`, so the gateway fills it in from the rack it
decided for the connection (client_networks.py). Only an empty rack_id is filled: one the client set itself is
never overridden. rack_id is the last field before the top-level tag section, so the request is kept byte for
byte up to it (read by Kafka's definitions, codec.decode_until), the field is written anew and the rest follows
as the client sent it.
"""

from __future__ import annotations

from functools import cache

from .api_keys import FETCH
from .codec import decode_field, decode_until, encode_field
from .message_specs import REQUEST, FieldSpec, MessageSpec, spec
from .wire import I32

FIRST_WITH_RACK = 11


def carries_rack(api_version: int) -> bool:
    return api_version >= FIRST_WITH_RACK


@cache
def _rack_field(api_version: int) -> tuple[MessageSpec, FieldSpec]:
    message = spec(REQUEST, FETCH, api_version)
    return message, next(field for field in message.untagged() if field.snake == "rack_id")


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
    message, field = _rack_field(api_version)
    view = memoryview(frame)
    # Every item takes at least a byte: the frame's size bounds the walk, the budget adds nothing to it.
    start = decode_until(message, "rack_id", view, body_offset, budget=len(frame))
    current, end = decode_field(field, view, start)
    if current:
        return None
    payload_size = len(frame) - 4 - (end - start) + len(encoded := encoded_rack(rack, api_version))
    return b"".join((I32.pack(payload_size), view[4:start], encoded, view[end:]))

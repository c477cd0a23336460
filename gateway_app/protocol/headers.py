"""Kafka frame sizes and request/response headers.

A frame is a 4-byte big-endian size followed by that many bytes. Requests start with api_key,
api_version, correlation_id and a (always legacy-encoded) client_id, plus a tag section when the
request version is flexible (header v2). Responses start with the correlation id, plus a tag
section when flexible (header v1) — except ApiVersions, whose response header is always v0 so a
client can read it before it knows what the broker supports.
"""

from __future__ import annotations

import struct
from functools import cache

from ..close_reasons import CloseReason
from .api_keys import API_VERSIONS
from .message_specs import REQUEST, RESPONSE, is_flexible
from .schema_walk import skip_tagged_fields

SIZE = struct.Struct(">i")
REQUEST_FIXED = struct.Struct(">hhi")  # api_key, api_version, correlation_id
CORRELATION = struct.Struct(">i")
CLIENT_ID_LENGTH = struct.Struct(">h")


class MalformedFrame(ValueError):
    """Bytes from a peer that are not a valid Kafka frame; `reason` labels the metric."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def frame_size(prefix: bytes | memoryview, limit: int) -> int:
    (size,) = SIZE.unpack_from(prefix)
    if size < 0:
        raise MalformedFrame(CloseReason.NEGATIVE_SIZE, f"frame size {size}")
    if size > limit:
        raise MalformedFrame(CloseReason.OVERSIZED, f"frame of {size} bytes exceeds the limit of {limit}")
    return size


def request_is_flexible(api_key: int, api_version: int) -> bool | None:
    """Whether this request version uses header v2; None if Kafka does not define the version."""
    return is_flexible(REQUEST, api_key, api_version)


@cache
def response_header_is_flexible(api_key: int, api_version: int) -> bool:
    if api_key == API_VERSIONS:
        return False
    return bool(is_flexible(RESPONSE, api_key, api_version))


def read_request_header(frame: memoryview) -> tuple[int, int, int, int | None]:
    """api_key, api_version, correlation_id and body offset (None if the header layout is unknown) of a
    request frame (size prefix excluded): what relaying needs, without decoding the client id."""
    if len(frame) < REQUEST_FIXED.size + 2:
        raise MalformedFrame(CloseReason.SHORT_HEADER, f"request of {len(frame)} bytes has no complete header")
    api_key, api_version, correlation_id = REQUEST_FIXED.unpack_from(frame)
    if api_key < 0 or api_version < 0:
        raise MalformedFrame(CloseReason.BAD_HEADER, f"api key {api_key} version {api_version}")
    flexible = request_is_flexible(api_key, api_version)
    (length,) = CLIENT_ID_LENGTH.unpack_from(frame, REQUEST_FIXED.size)
    offset = REQUEST_FIXED.size + 2 + (length if length > 0 else 0)
    if offset > len(frame):
        raise MalformedFrame(CloseReason.BAD_HEADER, f"client id of {length} bytes runs past the frame")
    if flexible:
        try:
            offset = skip_tagged_fields(frame, offset)
        except (IndexError, ValueError) as error:
            raise MalformedFrame(CloseReason.BAD_HEADER, f"api key {api_key} v{api_version}: {error}") from None
    return api_key, api_version, correlation_id, offset if flexible is not None else None


def response_body_offset(frame: memoryview, api_key: int, api_version: int) -> int:
    """Offset of the response body within a response frame (size prefix excluded)."""
    if response_header_is_flexible(api_key, api_version):
        return skip_tagged_fields(frame, CORRELATION.size)
    return CORRELATION.size

"""ApiVersions capping: clients only learn versions the gateway has reviewed (see policy.py).

If a client asks with a version the broker does not support, the broker answers with a v0 body
and UNSUPPORTED_VERSION (so the client can retry lower); that body is decoded and capped as v0.
"""

from __future__ import annotations

from dataclasses import replace

from kio.schema.errors import ErrorCode
from kio.serial.readers import read_int16

from .api_keys import API_VERSIONS
from .context import RewriteContext
from .kio_adapter import decode_response, encode
from .policy import api_versions_known, cap
from .wire import I16, I32

UNSUPPORTED_VERSION = 35


def rewrite_api_versions(body: memoryview, api_version: int, ctx: RewriteContext) -> bytes:
    error, _ = read_int16(body, 0)
    if error == ErrorCode.unsupported_version.value:
        api_version = 0
    response = decode_response(API_VERSIONS, api_version, body)
    capped = []
    for entry in response.api_keys:
        window = cap(int(entry.api_key), int(entry.min_version), int(entry.max_version))
        if window is not None:
            capped.append(replace(entry, min_version=type(entry.min_version)(window[0]),
                                  max_version=type(entry.max_version)(window[1])))
    return encode(replace(response, api_keys=tuple(capped)))


def unsupported_version_body() -> bytes:
    """A v0 ApiVersions body for a client that asked with a version above ours: UNSUPPORTED_VERSION and
    the versions of ApiVersions we know, which is what a Kafka broker answers (KIP-511) and what every
    client retries from."""
    return (I16.pack(UNSUPPORTED_VERSION) + I32.pack(1)
            + I16.pack(API_VERSIONS) + I16.pack(0) + I16.pack(api_versions_known()))

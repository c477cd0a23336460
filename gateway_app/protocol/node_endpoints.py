"""KIP-951 NodeEndpoints in Produce (v10+), Fetch (v16+), ShareFetch and ShareAcknowledge responses.

These responses can be large (Fetch carries record batches), so the body is never decoded as a
whole: the schema walk finds where `node_endpoints` lives — the trailing tag section (tag 0) of
Produce/Fetch, a plain last-but-tags field of the Share APIs — and only that field is decoded,
rewritten and re-encoded. The result is a list of chunks that reuses the broker's bytes around
it, so records are never copied. When there are no endpoints (the common case) nothing changes.
"""

from __future__ import annotations

from dataclasses import Field, fields, replace
from functools import cache


from ..broker_addresses import BrokerInfo
from .context import Chunks, RewriteContext
from .kio_adapter import load_response_schema, encoded, get_field_reader, get_field_tag, get_field_writer
from .schema_walk import read_tags, tag_section_offsets, top_level_offsets, write_tags

FIELD = "node_endpoints"


@cache
def _endpoint_field(api_key: int, api_version: int) -> tuple[type, Field, int | None]:
    schema = load_response_schema(api_key, api_version)
    (field,) = [f for f in fields(schema) if f.name == FIELD]
    return schema, field, get_field_tag(field)


def _rewrite_endpoints(endpoints: tuple, ctx: RewriteContext) -> tuple:
    rewritten = []
    for endpoint in endpoints:
        target = ctx.report(BrokerInfo(int(endpoint.node_id), endpoint.host, int(endpoint.port), endpoint.rack))
        if target is not None:
            rewritten.append(replace(endpoint, host=target[0], port=type(endpoint.port)(target[1])))
    return tuple(rewritten)


def _encode_field(field: Field, is_tag: bool, value: tuple) -> bytes:
    return encoded(get_field_writer(field, flexible=True, is_request_header=False, is_tag=is_tag), value)


def rewrite_node_endpoints(api_key: int, body: memoryview, api_version: int, ctx: RewriteContext) -> Chunks | None:
    """Chunks of the rewritten body, or None when the body has no endpoints to rewrite."""
    schema, field, tag = _endpoint_field(api_key, api_version)
    if tag is None:
        start, end = top_level_offsets(schema, body)[FIELD]
        endpoints, _ = get_field_reader(schema, field, False, False)(body, start)
        if not endpoints:
            return None
        return body[:start], _encode_field(field, False, _rewrite_endpoints(endpoints, ctx)), body[end:]
    start, end = tag_section_offsets(schema, body)
    if end - start == 1:  # a tag section with no tags (the byte is the count, 0): nothing to rewrite
        return None
    tags, _ = read_tags(body[start:end], 0)
    for index, (item_tag, value) in enumerate(tags):
        if item_tag == tag:
            tags[index] = (tag, rewritten_tag(api_key, api_version, value, ctx))
            return body[:start], write_tags(tags)
    return None


def endpoints_tag(api_key: int, api_version: int) -> int | None:
    """The tag of `node_endpoints` in the top-level tag section of this response version (None: not a tag)."""
    return _endpoint_field(api_key, api_version)[2]


def rewritten_tag(api_key: int, api_version: int, value: memoryview | bytes, ctx: RewriteContext) -> bytes:
    """The value of a `node_endpoints` tagged field, its brokers replaced by their gateway addresses."""
    schema, field, _ = _endpoint_field(api_key, api_version)
    endpoints, _ = get_field_reader(schema, field, False, True)(memoryview(value), 0)
    return _encode_field(field, True, _rewrite_endpoints(endpoints, ctx))

"""Rewrite the broker list of Metadata and DescribeCluster without decoding the rest of the response.

Every broker entry of these responses starts id (int32), host (string), port (int32), then rack and
whatever a version adds (is_fenced, tagged fields). Only host and port change, so each entry is rebuilt
from the broker's own bytes: its id, the gateway's host and port, and everything after port as it
came; the fields before and after the list (topics, cluster id, ...) are not even looked at. Decoding
and re-encoding a whole Metadata response with kio cost ~40 µs, which capped one gateway core at
~20k Metadata answers a second.

A broker whose id has no gateway port is left out of the list (the context logs and counts it), as
the kio-based rewriters do. The brokers send the same list nearly every time, so the last one read is
kept: a response that carries it again is not read, only its brokers reported and their endpoints asked.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from functools import cache, lru_cache

from kio.serial.readers import (
    read_compact_string,
    read_compact_string_nullable,
    read_int32,
    read_legacy_string,
    read_nullable_legacy_string,
    read_unsigned_varint,
)
from kio.serial.writers import write_compact_string, write_legacy_string, write_unsigned_varint

from ..broker_addresses import BrokerInfo
from .context import RewriteContext
from .kio_adapter import load_response_schema, EntityTupleField, classify_field, encoded, get_field_tag
from .schema_walk import Skip, WalkError, entity_skip, skip_to_field

INT32 = struct.Struct(">i")
LIST_FIELD = "brokers"


@dataclass(frozen=True, slots=True)
class BrokerListLayout:
    to_list: Skip  # message start -> start of the broker list
    entry: Skip  # entry start -> entry end
    flexible: bool
    has_rack: bool


@cache
def broker_list_layout(api_key: int, api_version: int, id_field: str) -> BrokerListLayout:
    schema = load_response_schema(api_key, api_version)
    (field,) = [f for f in fields(schema) if f.name == LIST_FIELD]
    kind = classify_field(field)
    if not isinstance(kind, EntityTupleField):
        raise WalkError(f"{schema.__name__}.{LIST_FIELD} is not a list of entities")
    names = [f.name for f in fields(kind.type_) if get_field_tag(f) is None]
    if names[:3] != [id_field, "host", "port"]:
        raise WalkError(f"{kind.type_.__name__} does not start {id_field}, host, port: {names}")
    return BrokerListLayout(skip_to_field(schema, LIST_FIELD), entity_skip(kind.type_), schema.__flexible__,
                            len(names) > 3 and names[3] == "rack")


@lru_cache(maxsize=256)  # gateway hosts: a handful
def _encoded_host(host: str, flexible: bool) -> bytes:
    return encoded(write_compact_string if flexible else write_legacy_string, host)


@dataclass(frozen=True, slots=True)
class _BrokerList:
    """One broker list as it came: its bytes, and per entry the broker and the bytes kept around host and port."""
    raw: bytes  # count to the end of the last entry
    brokers: tuple[BrokerInfo, ...]
    kept_bytes: tuple[tuple[bytes, bytes], ...]  # (id, everything after port) of each entry
    flexible: bool


@dataclass(frozen=True, slots=True)
class _Rewritten:
    brokers: _BrokerList
    endpoints: tuple[tuple[str, int] | None, ...]  # what the context answered for each broker, in order
    rewritten: bytes


# The last list rewritten for each layout. The brokers answer with the same broker list nearly every time, so a
# response whose bytes at the list's place start with that list is not read again: its brokers are reported (and
# their endpoints asked, the topology may have moved one) and, with the same endpoints, the last rewrite is reused.
# A list is read from its own bytes only, so equal bytes are an equal list; nothing a client sends reaches this.
_last: dict[tuple[BrokerListLayout, bool], _Rewritten] = {}


def rewrite_broker_list(layout: BrokerListLayout, body: memoryview, ctx: RewriteContext,
                        report: bool) -> tuple[memoryview, bytes, memoryview]:
    """(bytes before the list, the rewritten list, bytes after it) of one response body."""
    try:
        start = layout.to_list(body, 0)
        last = _last.get((layout, report))
        if last is not None and body[start:start + len(last.brokers.raw)] == last.brokers.raw:
            listed = last.brokers
        else:
            listed = _read(layout, body, start)
        endpoints = tuple(ctx.report(broker) if report else ctx.endpoint(broker.broker_id) for broker in listed.brokers)
        if last is None or last.brokers is not listed or last.endpoints != endpoints:
            last = _last[(layout, report)] = _Rewritten(listed, endpoints, _rewritten(listed, endpoints))
        return body[:start], last.rewritten, body[start + len(listed.raw):]
    except WalkError:
        raise
    except Exception as error:  # kio readers raise their own errors on truncated bytes
        raise WalkError(f"broker list: {error!r}") from error


def _read(layout: BrokerListLayout, body: memoryview, start: int) -> _BrokerList:
    flexible = layout.flexible
    read_host = read_compact_string if flexible else read_legacy_string
    read_rack = read_compact_string_nullable if flexible else read_nullable_legacy_string
    offset = start
    if flexible:
        count, size = read_unsigned_varint(body, offset)
        count -= 1
    else:
        count, size = read_int32(body, offset)
    offset += size
    if count < 0 or count > len(body) - offset:
        raise WalkError(f"broker list of {count} entries cannot fit")
    brokers: list[BrokerInfo] = []
    kept_bytes: list[tuple[bytes, bytes]] = []
    for _ in range(count):
        entry_start, entry_end = offset, layout.entry(body, offset)
        if entry_end > len(body):  # skips add lengths without reading past them
            raise WalkError(f"broker entry ends at {entry_end}, past the {len(body)} bytes of the body")
        broker_id, _ = read_int32(body, offset)
        host, size = read_host(body, offset + 4)
        offset += 4 + size
        port, _ = read_int32(body, offset)
        offset += 4
        rack = read_rack(body, offset)[0] if layout.has_rack else None
        brokers.append(BrokerInfo(broker_id, host, port, rack))
        kept_bytes.append((bytes(body[entry_start:entry_start + 4]), bytes(body[offset:entry_end])))
        offset = entry_end
    return _BrokerList(bytes(body[start:offset]), tuple(brokers), tuple(kept_bytes), flexible)


def _rewritten(listed: _BrokerList, endpoints: tuple[tuple[str, int] | None, ...]) -> bytes:
    """The list with each broker's gateway host and port; a broker without an endpoint is left out."""
    entries: list[bytes] = []
    for (broker_id, after_port), endpoint in zip(listed.kept_bytes, endpoints):
        if endpoint is not None:
            entries += (broker_id, _encoded_host(endpoint[0], listed.flexible), INT32.pack(endpoint[1]), after_port)
    kept = len(entries) // 4
    header = encoded(write_unsigned_varint, kept + 1) if listed.flexible else INT32.pack(kept)
    return b"".join([header, *entries])

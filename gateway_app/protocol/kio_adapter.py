"""The one door to kio's internals: every name the project takes from kio's private modules
(`kio.serial._introspect`, `_parse`, `_serialize`), and the encode/decode helpers built on kio.

kio promises nothing about its private modules, and the schema walks (schema_walk.py, broker_lists.py,
node_endpoints.py) lean on them; tests/unit/test_kio_adapter.py checks every name and signature taken
here and fails loudly when a kio upgrade changes one, instead of a rewriter failing on live traffic.
"""

from __future__ import annotations

import io
from typing import Any, Callable

from functools import cache

from kio.index import load_response_schema as _kio_response_schema
from kio.schema.index import api_key_map, schema_name_map
from kio.serial import entity_reader, entity_writer
from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveField,
    PrimitiveTupleField,
    classify_field,
    get_field_tag,
    get_schema_field_type,
    is_optional,
)
from kio.serial._parse import get_field_reader
from kio.serial._serialize import get_field_writer
from kio.static.protocol import Entity

from .message_specs import RESPONSE, layout, lookup

__all__ = [
    "EntityField", "EntityTupleField", "PrimitiveField", "PrimitiveTupleField", "classify_field", "get_field_tag",
    "get_schema_field_type", "is_optional", "get_field_reader", "get_field_writer",
    "decode_response", "encode", "encoded", "load_response_schema", "decodable_version",
]


def _kio_versions(api_key: int) -> frozenset[int]:
    name = api_key_map.get(api_key)
    return frozenset(schema_name_map[name]) if name is not None else frozenset()


@cache
def decodable_version(api_key: int, api_version: int) -> int | None:
    """The version whose kio schema reads this response version: itself if kio has it, else the newest
    version kio has whose layout (message_specs.layout, from Kafka's definitions) is the same, since a
    newer Kafka often raises a version for a change of meaning alone (ApiVersions v5 answers as v4 does).
    None when kio has no schema that reads it: the relay policy does not let such a version through."""
    known = _kio_versions(api_key)
    if api_version in known:
        return api_version
    wanted = lookup(RESPONSE, api_key, api_version)
    if wanted is None:
        return None
    for candidate in sorted((v for v in known if v < api_version), reverse=True):
        found = lookup(RESPONSE, api_key, candidate)
        if found is not None and layout(found) == layout(wanted):
            return candidate
    return None


def load_response_schema(api_key: int, api_version: int) -> type[Entity]:
    """kio's schema that reads this response version (see decodable_version); KeyError if none does."""
    version = decodable_version(api_key, api_version)
    if version is None:
        raise KeyError(f"no kio schema reads response api key {api_key} v{api_version}")
    return _kio_response_schema(api_key, version)


def decode_response(api_key: int, api_version: int, body: memoryview) -> Entity:
    schema = load_response_schema(api_key, api_version)
    message, _ = entity_reader(schema)(body, 0)
    return message


def encoded(write: Callable[[io.BytesIO, Any], None], value: Any) -> bytes:
    """The bytes a kio writer (a primitive's, a field's or an entity's) produces for one value."""
    buffer = io.BytesIO()
    write(buffer, value)
    return buffer.getvalue()


def encode(message: Entity) -> bytes:
    return encoded(entity_writer(type(message)), message)

"""The one door to kio's internals: every name the project takes from kio's private modules
(`kio.serial._introspect`, `_parse`, `_serialize`), and the encode/decode helpers built on kio.

kio promises nothing about its private modules, and the schema walks (schema_walk.py, broker_lists.py,
node_endpoints.py) lean on them; tests/unit/test_kio_adapter.py checks every name and signature taken
here and fails loudly when a kio upgrade changes one, instead of a rewriter failing on live traffic.
"""

from __future__ import annotations

import io
from typing import Any, Callable

from kio.index import load_response_schema
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

__all__ = [
    "EntityField", "EntityTupleField", "PrimitiveField", "PrimitiveTupleField", "classify_field", "get_field_tag",
    "get_schema_field_type", "is_optional", "get_field_reader", "get_field_writer",
    "decode_response", "encode", "encoded",
]


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

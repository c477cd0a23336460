"""kio decode/encode helpers shared by the rewriters."""

from __future__ import annotations

import io
from typing import TypeVar

from kio.index import load_response_schema
from kio.serial import entity_reader, entity_writer
from kio.static.protocol import Entity

E = TypeVar("E", bound=Entity)


def decode_response(api_key: int, api_version: int, body: memoryview) -> Entity:
    schema = load_response_schema(api_key, api_version)
    message, _ = entity_reader(schema)(body, 0)
    return message


def encode(message: Entity) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(message))(buffer, message)
    return buffer.getvalue()

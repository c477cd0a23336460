"""Read and write whole messages by Kafka's message definitions (message_specs.py), within a budget.

The relay never decodes a request to pass it on (reserved.py's compiled checkers read only the names);
this codec is for the rare message the gateway answers itself (refusal.py) and for the tests that build
requests of every API and version. A message is a dict of snake_case field names; a struct array is a
list of such dicts. Reading is bounded by `budget`: every array item, string and byte run counts one,
and a message of more items than that raises TooLarge before any more work is done, so what a client
writes decides neither how much is allocated nor how long the loop is busy. Tagged fields are read by
their type as Kafka reads them; unknown tags are skipped.
"""

from __future__ import annotations

import struct
import uuid
from typing import Any

from .message_specs import FieldSpec, MessageSpec
from .wire import I8, I16, I32, WireError, compact_length, uvarint, write_uvarint

_INT = {"int8": (">b", 1), "int16": (">h", 2), "uint16": (">H", 2), "int32": (">i", 4), "uint32": (">I", 4),
        "int64": (">q", 8), "float64": (">d", 8)}
_ZERO: dict[str, Any] = {"bool": False, "string": "", "bytes": b"", "records": b"", "uuid": uuid.UUID(int=0),
                         "float64": 0.0}


class TooLarge(ValueError):
    """The message holds more items than the budget allows."""


class _Reader:
    __slots__ = ("buffer", "offset", "budget")

    def __init__(self, buffer: memoryview, offset: int, budget: int) -> None:
        self.buffer, self.offset, self.budget = buffer, offset, budget

    def spend(self, count: int) -> None:
        self.budget -= count
        if self.budget < 0:
            raise TooLarge("message holds more items than the budget allows")

    def take(self, size: int) -> memoryview:
        if size < 0 or self.offset + size > len(self.buffer):
            raise IndexError("value runs past the end of the message")
        value = self.buffer[self.offset:self.offset + size]
        self.offset += size
        return value

    def length(self, flexible: bool, wide: bool) -> int:
        if flexible:
            value, size = compact_length(self.buffer, self.offset)
        elif wide:
            (value,), size = I32.unpack_from(self.buffer, self.offset), 4
        else:
            (value,), size = I16.unpack_from(self.buffer, self.offset), 2
        self.offset += size
        return value

    def varint(self) -> int:
        value, size = uvarint(self.buffer, self.offset)
        self.offset += size
        return value


def _read_value(spec: FieldSpec, reader: _Reader) -> Any:
    kind = spec.type
    if kind == "struct":
        return _read_struct(spec, reader)
    if kind in _INT:
        fmt, size = _INT[kind]
        return struct.unpack(fmt, reader.take(size))[0]
    if kind == "bool":
        return reader.take(1)[0] != 0
    if kind == "uuid":
        return uuid.UUID(bytes=bytes(reader.take(16)))
    if kind == "string":
        size = reader.length(spec.flexible, wide=False)
        if size < 0:
            if not spec.nullable:
                raise WireError(f"non-nullable field {spec.name} was serialized as null")
            return None
        if size > 0x7FFF:
            raise WireError(f"string field {spec.name} had invalid length {size}")
        reader.spend(1)
        return bytes(reader.take(size)).decode("utf-8", "replace")
    if kind in ("bytes", "records"):
        size = reader.length(spec.flexible, wide=True)
        if size < 0:
            if not spec.nullable:
                raise WireError(f"non-nullable field {spec.name} was serialized as null")
            return None
        reader.spend(1)
        return bytes(reader.take(size))
    raise WireError(f"unknown Kafka type {kind!r}")


def _read_field(spec: FieldSpec, reader: _Reader) -> Any:
    if spec.array:
        count = reader.length(spec.flexible, wide=True)
        if count < 0:
            if not spec.nullable:
                raise WireError(f"non-nullable field {spec.name} was serialized as null")
            return None
        if count > len(reader.buffer) - reader.offset:
            raise WireError(f"an array of {count} items cannot fit in the bytes left")
        reader.spend(count)
        element = spec.element()
        return [_read_value(element, reader) for _ in range(count)]
    if spec.type == "struct" and spec.nullable:
        marker = I8.unpack_from(reader.buffer, reader.offset)[0]
        reader.offset += 1
        if marker < 0:
            return None
    return _read_value(spec, reader)


def _read_struct(spec: FieldSpec, reader: _Reader) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for child in spec.untagged():
        values[child.snake] = _read_field(child, reader)
    if spec.flexible:
        tagged = {child.tag: child for child in spec.tagged()}
        count = reader.varint()
        if count < 0:
            raise WireError("negative tagged field count")
        for _ in range(count):
            tag, size = reader.varint(), reader.varint()
            end = reader.offset + size
            if size < 0 or end > len(reader.buffer):
                raise IndexError("tagged field runs past the end of the message")
            known = tagged.get(tag)
            if known is None:
                reader.offset = end
                continue
            values[known.snake] = _read_field(known, reader)
            if reader.offset != end:
                raise WireError(f"tagged field {known.name} declared {size} bytes")
    return values


def decode(message: MessageSpec, buffer: memoryview, offset: int = 0, budget: int = 1 << 30) -> tuple[dict, int]:
    """(the message as a dict, the offset after it). Raises TooLarge, WireError, IndexError, struct.error."""
    reader = _Reader(buffer, offset, budget)
    return _read_struct(message.root, reader), reader.offset


def decode_field(field: FieldSpec, buffer: memoryview, offset: int, budget: int = 1 << 30) -> tuple[Any, int]:
    """(one field's value, the offset after it) at offset."""
    reader = _Reader(buffer, offset, budget)
    return _read_field(field, reader), reader.offset


def decode_until(message: MessageSpec, name: str, buffer: memoryview, offset: int = 0, budget: int = 1 << 30) -> int:
    """The offset where the untagged top-level field `name` starts (the fields before it read, within budget)."""
    reader = _Reader(buffer, offset, budget)
    for child in message.untagged():
        if child.snake == name:
            return reader.offset
        _read_field(child, reader)
    raise KeyError(f"{message.name} v{message.version} has no untagged field {name}")


# --- writing -------------------------------------------------------------------------------------

def _write_length(out: bytearray, value: int, flexible: bool, wide: bool) -> None:
    if flexible:
        write_uvarint(out, value + 1)
    else:
        out += (I32 if wide else I16).pack(value)


def write_scalar(out: bytearray, spec: FieldSpec, value: Any) -> None:
    """Append a fixed-size value (an integer type, bool or uuid); ValueError for any other type."""
    kind = spec.type
    if kind in _INT:
        out += struct.pack(_INT[kind][0], value)
    elif kind == "bool":
        out.append(1 if value else 0)
    elif kind == "uuid":
        out += value.bytes if isinstance(value, uuid.UUID) else bytes(value)
    else:
        raise ValueError(f"{kind!r} is not a fixed-size Kafka type")


def _write_value(out: bytearray, spec: FieldSpec, value: Any) -> None:
    kind = spec.type
    if kind == "struct":
        _write_struct(out, spec, value or {})
    elif kind in _INT or kind in ("bool", "uuid"):
        write_scalar(out, spec, value)
    elif kind in ("string", "bytes", "records"):
        if value is None:
            _write_length(out, -1, spec.flexible, wide=kind != "string")
            return
        data = value.encode() if isinstance(value, str) else bytes(value)
        _write_length(out, len(data), spec.flexible, wide=kind != "string")
        out += data
    else:
        raise ValueError(f"unknown Kafka type {kind!r}")


def _write_field(out: bytearray, spec: FieldSpec, value: Any) -> None:
    if spec.array:
        if value is None:
            _write_length(out, -1, spec.flexible, wide=True)
            return
        _write_length(out, len(value), spec.flexible, wide=True)
        element = spec.element()
        for item in value:
            _write_value(out, element, item)
        return
    if spec.type == "struct" and spec.nullable:
        if value is None:
            out += I8.pack(-1)
            return
        out += I8.pack(1)
    _write_value(out, spec, value)


def default_value(spec: FieldSpec) -> Any:
    """What a field holds when nothing was said: null where it may be, else empty or zero."""
    if spec.nullable:
        return None
    if spec.array:
        return []
    if spec.type == "struct":
        return {}
    return _ZERO.get(spec.type, 0)


def _write_struct(out: bytearray, spec: FieldSpec, values: dict[str, Any]) -> None:
    for child in spec.untagged():
        _write_field(out, child, values.get(child.snake, default_value(child)))
    if spec.flexible:
        present = [child for child in spec.tagged() if values.get(child.snake) is not None]
        write_uvarint(out, len(present))
        for child in sorted(present, key=lambda c: c.tag):
            field = bytearray()
            _write_field(field, child, values[child.snake])
            write_uvarint(out, child.tag)
            write_uvarint(out, len(field))
            out += field


def encode_field(field: FieldSpec, value: Any) -> bytes:
    """One field's bytes, as it sits in its message."""
    out = bytearray()
    _write_field(out, field, value)
    return bytes(out)


def encode(message: MessageSpec, values: dict[str, Any]) -> bytes:
    out = bytearray()
    _write_struct(out, message.root, values)
    return bytes(out)

"""Walk an encoded message by its kio schema without materialising it.

Produce and Fetch responses carry record batches; decoding them just to reach the KIP-951
`NodeEndpoints` at the very end would copy every record twice. Instead we compile, per kio entity
class, a plan of skip steps (fixed-width runs merged, lengths read, records jumped over) and only
report byte offsets of the top-level fields, so a rewriter can splice one field and keep every
other byte as the broker sent it.
"""

from __future__ import annotations

from dataclasses import Field, fields
from functools import cache
from typing import Callable

import io

from kio.serial.readers import read_int8, read_int16, read_int32, read_unsigned_varint
from kio.serial.writers import write_unsigned_varint
from kio.static.protocol import Entity

from .wire import uvarint
from .kio_adapter import (EntityField, EntityTupleField, PrimitiveField, PrimitiveTupleField, classify_field,
                          get_field_tag, get_schema_field_type, is_optional)

Skip = Callable[[memoryview, int], int]  # (buffer, offset) -> offset after the item


class WalkError(ValueError):
    """The bytes do not match the schema (truncated, negative length, ...)."""


_FIXED_WIDTH = {
    "bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "error_code": 2,
    "int32": 4, "uint32": 4, "timedelta_i32": 4, "int64": 8, "uint64": 8,
    "float64": 8, "timedelta_i64": 8, "datetime_i64": 8, "uuid": 16,
}
_LENGTH_PREFIXED = {"string", "bytes", "records"}


def read_tags(buffer: memoryview, offset: int) -> tuple[list[tuple[int, memoryview]], int]:
    """The (tag, value) pairs of the tag section at offset, and the offset after it. Varints are read as
    Kafka reads them (wire.uvarint); a count or size that is negative or runs past the buffer raises."""
    count, size = uvarint(buffer, offset)
    offset += size
    tags = []
    for _ in range(count):
        tag, size = uvarint(buffer, offset)
        offset += size
        length, size = uvarint(buffer, offset)
        offset += size
        if length < 0 or offset + length > len(buffer):
            raise IndexError("tagged field runs past the buffer")
        tags.append((tag, buffer[offset:offset + length]))
        offset += length
    return tags, offset


def write_tags(tags: list[tuple[int, bytes | memoryview]]) -> bytes:
    buffer = io.BytesIO()
    write_unsigned_varint(buffer, len(tags))
    for tag, value in tags:
        write_unsigned_varint(buffer, tag)
        write_unsigned_varint(buffer, len(value))
        buffer.write(value)
    return buffer.getvalue()


def skip_tagged_fields(buffer: memoryview, offset: int) -> int:
    if buffer[offset] == 0:  # no tags, nearly always: one byte
        return offset + 1
    return read_tags(buffer, offset)[1]


# Skip functions are generated as straight-line Python per entity (one call per nested item instead of
# one per field): a Fetch partition costs ~1/3 of a closure-per-field walk. Bounds are not checked per
# field: a read past the end raises, array counts are checked against the bytes left, and the caller
# checks that the top level ends exactly at the end of the message.
_NAMESPACE: dict[str, object] = {
    "uvarint": read_unsigned_varint, "i8": read_int8, "i16": read_int16, "i32": read_int32, "WalkError": WalkError,
}
_LENGTH = {  # (kafka type, flexible) -> lines that skip one length-prefixed value at o
    ("compact", True): ["n, s = uvarint(b, o)", "o += s + (n - 1 if n > 0 else 0)"],
    ("string", False): ["n, _ = i16(b, o)", "o += 2 + (n if n > 0 else 0)"],
    ("bytes", False): ["n, _ = i32(b, o)", "o += 4 + (n if n > 0 else 0)"],
}
_TAG_LINES = [
    "n, s = uvarint(b, o)", "o += s",
    "for _ in range(n):", "    _, s = uvarint(b, o)", "    m, s2 = uvarint(b, o + s)", "    o += s + s2 + m",
]


def value_lines(kafka_type: str, flexible: bool) -> list[str]:
    if kafka_type in _FIXED_WIDTH:
        return [f"o += {_FIXED_WIDTH[kafka_type]}"]
    if kafka_type not in _LENGTH_PREFIXED:
        raise WalkError(f"unsupported kafka type {kafka_type!r}")
    if flexible:
        return _LENGTH[("compact", True)]
    return _LENGTH[("string" if kafka_type == "string" else "bytes", False)]


def _entity_name(entity: type[Entity]) -> str:
    name = f"skip_{entity.__module__.replace('.', '_')}_{entity.__qualname__.replace('.', '_')}"
    _NAMESPACE[name] = entity_skip(entity)
    return name


def array_lines(item: list[str], flexible: bool) -> list[str]:
    count = ["n, s = uvarint(b, o)", "o += s", "n -= 1"] if flexible else ["n, _ = i32(b, o)", "o += 4"]
    guard = ["if n > len(b) - o:", "    raise WalkError(f'array of {n} items cannot fit')"]
    return count + guard + ["for _ in range(n):"] + [f"    {line}" for line in item]


def entity_call_lines(call: str, optional: bool) -> list[str]:
    """Lines that run `call` on a nested entity; a nullable one is preceded by its int8 presence marker."""
    return ["m, _ = i8(b, o)", "o += 1", "if m >= 0:", f"    {call}"] if optional else [call]


def _field_lines(field: Field, flexible: bool) -> list[str]:
    match classify_field(field):
        case PrimitiveField():
            return value_lines(get_schema_field_type(field), flexible)
        case PrimitiveTupleField():
            return array_lines(value_lines(get_schema_field_type(field), flexible), flexible)
        case EntityField(entity):
            return entity_call_lines(f"o = {_entity_name(entity)}(b, o)", is_optional(field))
        case EntityTupleField(entity):
            return array_lines([f"o = {_entity_name(entity)}(b, o)"], flexible)
    raise WalkError(f"unsupported field {field.name}")


def _merge_constants(lines: list[str]) -> list[str]:
    """Collapse consecutive top-level `o += <int>` lines (runs of fixed-width fields) into one."""
    merged: list[str] = []
    run = 0
    for line in lines:
        if line.startswith("o += ") and line[5:].isdigit():
            run += int(line[5:])
            continue
        if run:
            merged.append(f"o += {run}")
            run = 0
        merged.append(line)
    if run:
        merged.append(f"o += {run}")
    return merged


def compile_walk(name: str, lines: list[str], extra: dict[str, object], args: str = "b, o") -> Callable:
    """Compile a walk function `name(args)` from generated lines (built only from kio schemas) that ends
    `return o`; `extra` adds names (other walk functions, constants) to what the lines may use."""
    source = "\n".join([f"def {name}({args}):", *(f"    {line}" for line in _merge_constants(lines)), "    return o"])
    namespace = {**_NAMESPACE, **extra}
    exec(compile(source, f"<schema_walk {name}>", "exec"), namespace)
    return namespace[name]  # type: ignore[return-value]


def _compile(name: str, lines: list[str]) -> Skip:
    return compile_walk(name, lines, {})


def field_skip(field: Field, flexible: bool) -> Skip:
    return _compile(f"skip_field_{field.name}", _field_lines(field, flexible))


def _untagged_lines(entity: type[Entity]) -> list[str]:
    lines: list[str] = []
    for field in fields(entity):
        if get_field_tag(field) is None:  # tagged fields live in the trailing tag section
            lines += _field_lines(field, entity.__flexible__)
    return lines


@cache
def entity_skip(entity: type[Entity]) -> Skip:
    return _compile("skip_entity", _untagged_lines(entity) + (_TAG_LINES if entity.__flexible__ else []))


@cache
def skip_to_field(entity: type[Entity], name: str) -> Skip:
    """(buffer, offset of the message) -> offset where the untagged top-level field `name` starts."""
    lines: list[str] = []
    for field in fields(entity):
        if field.name == name:
            return _compile(f"skip_to_{name}", lines)
        if get_field_tag(field) is None:
            lines += _field_lines(field, entity.__flexible__)
    raise WalkError(f"{entity.__name__} has no untagged field {name!r}")


@cache
def skip_after_field(entity: type[Entity], name: str, tags: bool = True) -> Skip:
    """(buffer, offset where the untagged field `name` ends) -> offset where the entity ends: the untagged fields
    after it, then its tag section (or where that section starts, without `tags`)."""
    names = [field.name for field in fields(entity) if get_field_tag(field) is None]
    if name not in names:
        raise WalkError(f"{entity.__name__} has no untagged field {name!r}")
    lines: list[str] = []
    for field in fields(entity):
        if get_field_tag(field) is None and names.index(field.name) > names.index(name):
            lines += _field_lines(field, entity.__flexible__)
    return _compile(f"skip_after_{name}", lines + (_TAG_LINES if entity.__flexible__ and tags else []))


@cache
def _to_tags_skip(entity: type[Entity]) -> Skip:
    return _compile("skip_to_tags", _untagged_lines(entity))


def tag_section_offsets(entity: type[Entity], buffer: memoryview) -> tuple[int, int]:
    """(start, end) of a flexible message's top-level tag section in one compiled pass (no per-field offsets).

    Raises WalkError when the bytes do not match the schema.
    """
    try:
        start = _to_tags_skip(entity)(buffer, 0)
        end = skip_tagged_fields(buffer, start)
    except WalkError:
        raise
    except Exception as error:  # kio readers raise their own errors on truncation
        raise WalkError(f"{entity.__name__}: {error}") from error
    _check_consumed(entity, buffer, end)
    return start, end


def _check_consumed(entity: type[Entity], buffer: memoryview, end: int) -> None:
    if end != len(buffer):
        raise WalkError(f"{entity.__name__}: {len(buffer) - end} trailing bytes")


@cache
def _top_level_steps(entity: type[Entity]) -> tuple[tuple[str, Skip], ...]:
    flexible = entity.__flexible__
    return tuple(
        (field.name, field_skip(field, flexible))
        for field in fields(entity)
        if get_field_tag(field) is None
    )


def top_level_offsets(entity: type[Entity], buffer: memoryview) -> dict[str, tuple[int, int]]:
    """(start, end) of every untagged top-level field, plus "<tags>" for the tag section if flexible.

    Raises WalkError when the bytes do not match the schema.
    """
    offsets: dict[str, tuple[int, int]] = {}
    offset = 0
    try:
        for name, skip in _top_level_steps(entity):
            end = skip(buffer, offset)
            offsets[name] = (offset, end)
            offset = end
        if entity.__flexible__:
            end = skip_tagged_fields(buffer, offset)
            offsets["<tags>"] = (offset, end)
            offset = end
    except WalkError:
        raise
    except Exception as error:  # kio readers raise their own errors on truncation
        raise WalkError(f"{entity.__name__}: {error}") from error
    _check_consumed(entity, buffer, offset)
    return offsets

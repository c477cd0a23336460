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
from kio.serial.readers import read_int8, read_int16, read_int32, read_unsigned_varint
from kio.static.protocol import Entity

Skip = Callable[[memoryview, int], int]  # (buffer, offset) -> offset after the item


class WalkError(ValueError):
    """The bytes do not match the schema (truncated, negative length, ...)."""


_FIXED_WIDTH = {
    "bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "error_code": 2,
    "int32": 4, "uint32": 4, "timedelta_i32": 4, "int64": 8, "uint64": 8,
    "float64": 8, "timedelta_i64": 8, "datetime_i64": 8, "uuid": 16,
}
_LENGTH_PREFIXED = {"string", "bytes", "records"}


def _checked(buffer: memoryview, end: int) -> int:
    if end > len(buffer):
        raise WalkError(f"field runs past the end of the message ({end} > {len(buffer)})")
    return end


def _skip_compact_bytes(buffer: memoryview, offset: int) -> int:
    length_plus_one, size = read_unsigned_varint(buffer, offset)
    return _checked(buffer, offset + size + max(length_plus_one - 1, 0))


def _skip_int16_bytes(buffer: memoryview, offset: int) -> int:
    length, _ = read_int16(buffer, offset)
    return _checked(buffer, offset + 2 + max(length, 0))


def _skip_int32_bytes(buffer: memoryview, offset: int) -> int:
    length, _ = read_int32(buffer, offset)
    return _checked(buffer, offset + 4 + max(length, 0))


def skip_tagged_fields(buffer: memoryview, offset: int) -> int:
    count, size = read_unsigned_varint(buffer, offset)
    offset += size
    for _ in range(count):
        _, size = read_unsigned_varint(buffer, offset)
        offset += size
        length, size = read_unsigned_varint(buffer, offset)
        offset = _checked(buffer, offset + size + length)
    return offset


def _fixed(width: int) -> Skip:
    return lambda buffer, offset: _checked(buffer, offset + width)


def _primitive_skip(kafka_type: str, flexible: bool) -> Skip:
    if kafka_type in _FIXED_WIDTH:
        return _fixed(_FIXED_WIDTH[kafka_type])
    if kafka_type not in _LENGTH_PREFIXED:
        raise WalkError(f"unsupported kafka type {kafka_type!r}")
    if flexible:
        return _skip_compact_bytes
    return _skip_int16_bytes if kafka_type == "string" else _skip_int32_bytes


def _array(item: Skip, flexible: bool) -> Skip:
    def skip(buffer: memoryview, offset: int) -> int:
        if flexible:
            count_plus_one, size = read_unsigned_varint(buffer, offset)
            count = count_plus_one - 1
        else:
            count, size = read_int32(buffer, offset)
        offset += size
        if count > len(buffer) - offset:  # every item takes at least one byte
            raise WalkError(f"array of {count} items cannot fit")
        for _ in range(max(count, 0)):
            offset = item(buffer, offset)
        return offset

    return skip


def _nullable_struct(struct: Skip) -> Skip:
    def skip(buffer: memoryview, offset: int) -> int:
        marker, _ = read_int8(buffer, offset)
        return offset + 1 if marker < 0 else struct(buffer, offset + 1)

    return skip


def field_skip(field: Field, flexible: bool) -> Skip:
    match classify_field(field):
        case PrimitiveField():
            return _primitive_skip(get_schema_field_type(field), flexible)
        case PrimitiveTupleField():
            return _array(_primitive_skip(get_schema_field_type(field), flexible), flexible)
        case EntityField(entity):
            struct = entity_skip(entity)
            return _nullable_struct(struct) if is_optional(field) else struct
        case EntityTupleField(entity):
            return _array(entity_skip(entity), flexible)
    raise WalkError(f"unsupported field {field.name}")


def _merge_fixed(steps: list[tuple[int | None, Skip]]) -> list[Skip]:
    """Collapse runs of fixed-width fields into one bounds-checked jump."""
    merged: list[Skip] = []
    run = 0
    for width, step in steps:
        if width is not None:
            run += width
            continue
        if run:
            merged.append(_fixed(run))
            run = 0
        merged.append(step)
    if run:
        merged.append(_fixed(run))
    return merged


@cache
def entity_skip(entity: type[Entity]) -> Skip:
    flexible = entity.__flexible__
    steps: list[tuple[int | None, Skip]] = []
    for field in fields(entity):
        if get_field_tag(field) is not None:
            continue  # tagged fields live in the trailing tag section
        kind = classify_field(field)
        kafka_type = field.metadata.get("kafka_type")
        width = _FIXED_WIDTH.get(kafka_type) if isinstance(kind, PrimitiveField) else None
        steps.append((width, field_skip(field, flexible)))
    if flexible:
        steps.append((None, skip_tagged_fields))
    plan = tuple(_merge_fixed(steps))

    def skip(buffer: memoryview, offset: int) -> int:
        for step in plan:
            offset = step(buffer, offset)
        return offset

    return skip


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
    if offset != len(buffer):
        raise WalkError(f"{entity.__name__}: {len(buffer) - offset} trailing bytes")
    return offsets

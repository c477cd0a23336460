"""Names reserved for the gateway: finding them in client requests, and the refusal a client gets.

The gateway cluster keeps its state in the backing Kafka cluster (a compacted members topic and a
consumer group, both named `_gateway_<cluster id>...`, see cluster/membership.py). Through the
gateway those are not the client's to touch: ReservedNames holds them — the group, the topic, and
every name that starts with the group's name and `_` (the reader group). Only this cluster's own
names: a gateway cluster may use another gateway cluster as its backing Kafka.

Finding them. Per request schema, a checker is compiled from kio's schema (like schema_walk's skip
functions) that walks the request and reads only the fields kio types as TopicName or GroupId, the
`resource_name` of config/ACL resources, and `topic_id`s (compared with the ids of reserved topics
the node has seen). Everything else is skipped by length, so a Produce request's record batches are
jumped over, never read; and the walk stops after the last field that can hold a name, so a
one-topic Produce costs a read of one string whatever its size. APIs whose requests cannot name a
topic or group have no checker at all.

Refusing. A request that names a reserved topic or group is never relayed: the client gets the
API's own authorization error, built from the request (every topic/partition/group it named comes
back with TOPIC_AUTHORIZATION_FAILED or GROUP_AUTHORIZATION_FAILED, like a broker whose ACLs deny
it), so clients fail fast instead of retrying. The whole request is refused, even if it also names
ordinary topics: only a client that asked for a reserved name is affected.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from typing import Any, Callable

from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader

from .kio_adapter import encode
from .schema_walk import (
    EntityField,
    EntityTupleField,
    PrimitiveField,
    PrimitiveTupleField,
    array_lines,
    classify_field,
    compile_walk,
    entity_call_lines,
    entity_skip,
    get_field_tag,
    get_schema_field_type,
    is_optional,
    value_lines,
)

RESERVED_MARK = b"_gateway_"  # every reserved name contains it: a cheap first search of a response
MAX_TOPIC_IDS = 1024


@dataclass(slots=True)
class ReservedNames:
    """One gateway cluster's own topic and group names, and the ids of its topics seen in responses."""

    exact: frozenset[bytes]
    prefixes: tuple[bytes, ...]
    topic_ids: set[bytes] = field(default_factory=set)

    @classmethod
    def of(cls, group: str, topic: str) -> "ReservedNames":
        return cls(frozenset({group.encode(), topic.encode()}), (f"{group}_".encode(),))

    def matches(self, name: bytes) -> bool:
        return name in self.exact or name.startswith(self.prefixes)

    def matches_text(self, name: str | None) -> bool:
        return name is not None and self.matches(name.encode())

    def learn_topic_id(self, topic_id: bytes) -> None:
        if len(self.topic_ids) < MAX_TOPIC_IDS:
            self.topic_ids.add(topic_id)

TOPIC, GROUP, RESOURCE = "topic", "group", "resource"
GROUP_RESOURCE_TYPE = 32  # ConfigResource.Type.GROUP (2 = TOPIC)


class Reserved(Exception):
    """A request names a reserved topic or group; `kind` is TOPIC, GROUP or RESOURCE."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


# (buffer, offset of the body, the reserved names) -> None; raises Reserved on a hit and
# IndexError/struct.error/kio's errors if the bytes end before the last name.
Check = Callable[[memoryview, int, ReservedNames], Any]


def _checked_kind(field: Field) -> str | None:
    """Which kind of reserved name this field can hold, or None if it cannot hold one."""
    text = str(field.type)
    if "TopicName" in text:
        return TOPIC
    if "GroupId" in text:
        return GROUP
    if field.name == "resource_name":
        return RESOURCE
    if field.name == "topic_id" and get_schema_field_type(field) == "uuid":
        return TOPIC
    return None


def _holds_names(entity: type) -> bool:
    for field in fields(entity):
        if get_field_tag(field) is not None:
            continue
        match classify_field(field):
            case EntityField(type_) | EntityTupleField(type_):
                if _holds_names(type_):
                    return True
            case _:
                if _checked_kind(field) is not None:
                    return True
    return False


_NAMESPACE: dict[str, object] = {"Reserved": Reserved}


def _string_check(kind: str, flexible: bool) -> list[str]:
    length = ["n, s = uvarint(b, o)", "o += s", "n -= 1"] if flexible else ["n, _ = i16(b, o)", "o += 2"]
    return length + [
        "if n > 0 and o + n > len(b):", "    raise IndexError('name runs past the bytes at hand')",
        f"if n > 0 and names.matches(bytes(b[o:o + n])):", f"    raise Reserved({kind!r})",
        "o += n if n > 0 else 0",
    ]


_UUID_CHECK = [
    "if o + 16 > len(b):", "    raise IndexError('topic id runs past the bytes at hand')",
    "if names.topic_ids and bytes(b[o:o + 16]) in names.topic_ids:", "    raise Reserved('topic')",
    "o += 16",
]


def _field_lines(field: Field, flexible: bool) -> list[str]:
    """Lines that walk one field completely, checking what it can hold."""
    kind = _checked_kind(field)
    match classify_field(field):
        case PrimitiveField():
            if kind is None:
                return value_lines(get_schema_field_type(field), flexible)
            return _UUID_CHECK if get_schema_field_type(field) == "uuid" else _string_check(kind, flexible)
        case PrimitiveTupleField():
            if kind is None:
                return array_lines(value_lines(get_schema_field_type(field), flexible), flexible)
            return array_lines(_string_check(kind, flexible), flexible)
        case EntityField(type_):
            return entity_call_lines(f"o = {_register(type_, last=False)}(b, o, names)", is_optional(field))
        case EntityTupleField(type_):
            return array_lines([f"o = {_register(type_, last=False)}(b, o, names)"], flexible)
    raise TypeError(f"unsupported field {field.name}")


def _last_field_lines(field: Field, flexible: bool) -> list[str]:
    """Lines for the last field that can hold a name: check it, then return without walking further."""
    match classify_field(field):
        case EntityField(type_):
            return entity_call_lines(f"return {_register(type_, last=True)}(b, o, names)", is_optional(field))
        case EntityTupleField(type_):
            count = ["n, s = uvarint(b, o)", "o += s", "n -= 1"] if flexible else ["n, _ = i32(b, o)", "o += 4"]
            return count + [
                "if n > len(b) - o:", "    raise IndexError('array cannot fit')",
                "for _ in range(n - 1):", f"    o = {_register(type_, last=False)}(b, o, names)",
                "if n > 0:", f"    {_register(type_, last=True)}(b, o, names)",
            ]
    return _field_lines(field, flexible)


def _entity_lines(entity: type, last: bool) -> list[str]:
    untagged = [f for f in fields(entity) if get_field_tag(f) is None]
    holding = [i for i, f in enumerate(untagged)
               if _checked_kind(f) is not None
               or isinstance(classify_field(f), (EntityField, EntityTupleField)) and _holds_names(classify_field(f).type_)]
    lines: list[str] = []
    for i, field in enumerate(untagged):
        if last and i == holding[-1]:
            return lines + _last_field_lines(field, entity.__flexible__)
        if i in holding:
            lines += _field_lines(field, entity.__flexible__)
        else:
            lines += _skip_lines(field, entity.__flexible__)
    if entity.__flexible__:
        lines += ["n, s = uvarint(b, o)", "o += s", "for _ in range(n):", "    _, s = uvarint(b, o)",
                  "    m, s2 = uvarint(b, o + s)", "    o += s + s2 + m"]
    return lines


def _skip_lines(field: Field, flexible: bool) -> list[str]:
    """A field that holds no name: skipped like schema_walk does (nested entities by their skip function)."""
    match classify_field(field):
        case EntityField(type_):
            return entity_call_lines(f"o = {_register_skip(type_)}(b, o)", is_optional(field))
        case EntityTupleField(type_):
            return array_lines([f"o = {_register_skip(type_)}(b, o)"], flexible)
        case PrimitiveTupleField():
            return array_lines(value_lines(get_schema_field_type(field), flexible), flexible)
    return value_lines(get_schema_field_type(field), flexible)


def _function_name(entity: type, prefix: str) -> str:
    return f"{prefix}_{entity.__module__.replace('.', '_')}_{entity.__qualname__.replace('.', '_')}"


def _register_skip(entity: type) -> str:
    name = _function_name(entity, "skip")
    _NAMESPACE.setdefault(name, entity_skip(entity))
    return name


def _register(entity: type, last: bool) -> str:
    name = _function_name(entity, "check_last" if last else "check")
    if name not in _NAMESPACE:
        _NAMESPACE[name] = compile_walk(name, _entity_lines(entity, last), _NAMESPACE, args="b, o, names")
    return name


_CHECKERS: dict[tuple[int, int], Check | None] = {}


def request_checker(api_key: int, api_version: int) -> Check | None:
    """The checker of a request version, None if it cannot name a reserved topic or group.

    Only call it for (api_key, api_version) pairs the relay policy allows: the table stays as small
    as that policy (a client choosing unknown keys must not grow it).
    """
    key = (api_key, api_version)
    if key not in _CHECKERS:
        schema = load_request_schema(api_key, api_version)
        _CHECKERS[key] = _NAMESPACE[_register(schema, last=True)] if _holds_names(schema) else None  # type: ignore[assignment]
    return _CHECKERS[key]


# --- the refusal ---------------------------------------------------------------------------------

_ALIASES = {
    "partition_index": ("partition_index", "partition", "index"),
    "index": ("index", "partition_index", "partition"),
    "partition": ("partition", "partition_index", "index"),
    "name": ("name", "topic", "topic_name"),
    "topic": ("topic", "name", "topic_name"),
    "topic_name": ("topic_name", "name", "topic"),
}
_ZERO = {"string": "", "bytes": b"", "bool": False, "uuid": uuid.UUID(int=0), "records": b"",
         "timedelta_i32": datetime.timedelta(0), "timedelta_i64": datetime.timedelta(0)}


def _source_value(source: Any, name: str) -> Any:
    for candidate in _ALIASES.get(name, (name,)):
        if source is not None and hasattr(source, candidate):
            return getattr(source, candidate)
    return MISSING


def _source_items(source: Any, name: str) -> tuple:
    """The request array a response array answers: the same name, else the request's first array."""
    if source is None or not is_dataclass(source):
        return ()
    value = getattr(source, name, None)
    if isinstance(value, tuple):
        return value
    for field in fields(source):
        value = getattr(source, field.name)
        if isinstance(value, tuple) and value and get_field_tag(field) is None:
            return value
    return ()


def _error_code(kind: str, resource_type: Any) -> ErrorCode:
    if kind == GROUP or (kind == RESOURCE and resource_type == GROUP_RESOURCE_TYPE):
        return ErrorCode.group_authorization_failed
    return ErrorCode.topic_authorization_failed


def _mirror(schema: type, source: Any, kind: str) -> Any:
    """A response entity answering `source` (a request entity, an item of one, or a bare name)."""
    if isinstance(source, (str, int)):  # an item of an array of bare names or partition indexes
        wanted = "string" if isinstance(source, str) else "int32"
        first = next((f.name for f in fields(schema) if f.metadata.get("kafka_type") == wanted), None)
        source = None if first is None else _Named(first, source)
    values: dict[str, Any] = {}
    deferred_errors = []
    for field in fields(schema):
        shape = classify_field(field)
        if field.metadata.get("kafka_type") == "error_code":
            deferred_errors.append(field.name)
            continue
        if isinstance(shape, EntityTupleField):
            values[field.name] = tuple(_mirror(shape.type_, item, kind) for item in _source_items(source, field.name))
            continue
        if isinstance(shape, EntityField):
            values[field.name] = None if is_optional(field) else _mirror(shape.type_, None, kind)
            continue
        if isinstance(shape, PrimitiveTupleField):
            values[field.name] = None if is_optional(field) else ()
            continue
        copied = _source_value(source, field.name) if field.name != "throttle_time" else MISSING
        if copied is not MISSING and _fits(field, copied):
            values[field.name] = copied
        elif field.default is not MISSING:
            values[field.name] = field.default
        elif field.default_factory is not MISSING:  # type: ignore[misc]
            values[field.name] = field.default_factory()  # type: ignore[misc]
        elif is_optional(field):
            values[field.name] = None
        else:
            kafka_type = get_schema_field_type(field)
            values[field.name] = _ZERO[kafka_type] if kafka_type in _ZERO else field.type(0)
    for name in deferred_errors:
        values[name] = _error_code(kind, values.get("resource_type"))
    return schema(**values)


_PYTHON_TYPES = {"string": (str,), "uuid": (uuid.UUID,), "bool": (bool,)}


def _fits(field: Field, value: Any) -> bool:
    """May a request value be copied into this response field (same kind of value)?"""
    if value is None:
        return is_optional(field)
    kafka_type = field.metadata.get("kafka_type", "")
    wanted = _PYTHON_TYPES.get(kafka_type, (int,) if kafka_type.startswith(("int", "uint")) else ())
    return isinstance(value, wanted) and not (wanted == (int,) and isinstance(value, bool))


class _Named:
    """A one-attribute stand-in for a request item that was a bare value."""

    def __init__(self, name: str, value: Any) -> None:
        setattr(self, name, value)


def refusal_body(api_key: int, api_version: int, request_body: memoryview, kind: str) -> bytes:
    """The body of the response refusing this request (raises if kio cannot decode or encode it)."""
    request, _ = entity_reader(load_request_schema(api_key, api_version))(request_body, 0)
    return encode(_mirror(load_response_schema(api_key, api_version), request, kind))

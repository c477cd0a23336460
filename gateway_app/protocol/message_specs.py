"""Kafka's message definitions, as the gateway reads requests by them.

`kafka_messages.json` is generated from the JSON definitions in the kafka-clients jar (`python -m
lab.kafka_messages`), the same files Kafka's own Java readers are generated from. So the gateway knows
every API and version of that Kafka release, with each field's type, nullability and tag, without waiting
for the kio schema library to catch up: the request guard (reserved.py), the refusals (refusal.py), the
header layout (headers.py) and the relay policy's version caps (policy.py) read these specs.

`spec(kind, api_key, version)` resolves a message at one version: only the fields that exist at that
version, each marked nullable and/or tagged as it is at that version, nested structs resolved alike.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REQUEST, RESPONSE = "request", "response"
_DATA = Path(__file__).with_name("kafka_messages.json")
_FIXED_WIDTH = {"bool": 1, "int8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "int64": 8, "float64": 8,
                "uuid": 16}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str  # Kafka's name (CamelCase)
    snake: str  # the same in snake_case, as kio and the refusal builder name it
    type: str  # a primitive ("int32", "string", "records", ...) or "struct"
    array: bool
    nullable: bool
    tag: int | None  # a tagged field's tag at this version, None for a field in the fixed layout
    entity: str | None  # Kafka's entityType: "topicName", "groupId", "transactionalId", ...
    fields: "tuple[FieldSpec, ...]"  # a struct's fields (empty for primitives)
    flexible: bool  # the message version is flexible (compact lengths, tag sections)

    @property
    def width(self) -> int | None:
        """Bytes of one value of a fixed-width primitive, None for everything else."""
        return None if self.array else _FIXED_WIDTH.get(self.type)

    def element(self) -> "FieldSpec":
        """One element of an array field: the same type and meaning, never null, never tagged."""
        return FieldSpec(self.name, self.snake, self.type, False, False, None, self.entity, self.fields, self.flexible)

    def untagged(self) -> "tuple[FieldSpec, ...]":
        return tuple(f for f in self.fields if f.tag is None)

    def tagged(self) -> "tuple[FieldSpec, ...]":
        return tuple(f for f in self.fields if f.tag is not None)


@dataclass(frozen=True, slots=True)
class MessageSpec:
    kind: str  # REQUEST or RESPONSE
    api_key: int
    name: str  # "Produce", "ApiVersions", ...
    version: int
    flexible: bool
    root: FieldSpec  # a struct holding the message's top-level fields

    def untagged(self) -> tuple[FieldSpec, ...]:
        return self.root.untagged()


class UnknownMessage(LookupError):
    """No spec for this API key and version (not defined by the Kafka release the specs come from)."""


def _in(window: list | None, version: int) -> bool:
    return window is not None and version >= window[0] and (window[1] is None or version <= window[1])


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])|(?<=[A-Z])([A-Z][a-z])", r"_\1\2", name).lower()


def _resolve(raw: dict, version: int, flexible: bool) -> FieldSpec:
    tagged = _in(raw.get("tagged"), version) and flexible
    children = tuple(_resolve(child, version, flexible) for child in raw.get("fields", ())
                     if _in(child["versions"], version))
    return FieldSpec(raw["name"], _snake(raw["name"]), raw["type"], raw["array"], _in(raw.get("nullable"), version),
                     raw["tag"] if tagged else None, raw.get("entity"), children, flexible)


@cache
def _raw() -> dict:
    return json.loads(_DATA.read_text())


def kafka_version() -> str:
    """The Kafka release the specs were generated from."""
    return _raw()["kafka_version"]


def api_keys() -> tuple[int, ...]:
    """The API keys Kafka defines at least one version of."""
    return tuple(sorted(int(key) for key, raw in _raw()["messages"][REQUEST].items() if raw["valid"] is not None))


def api_name(api_key: int) -> str | None:
    raw = _raw()["messages"][REQUEST].get(str(api_key))
    return None if raw is None else raw["name"]


def api_snake_name(api_key: int) -> str:
    """"produce", "api_versions", ...: the API's name as the metrics and the policy table spell it."""
    name = api_name(api_key)
    return _snake(name) if name is not None else f"api_{api_key}"


def versions(api_key: int, kind: str = REQUEST) -> range:
    """The versions Kafka defines for an API (empty for an unknown key)."""
    raw = _raw()["messages"][kind].get(str(api_key))
    if raw is None or raw["valid"] is None:  # unknown, or an API whose versions were all removed
        return range(0)
    low, high = raw["valid"]
    return range(low, high + 1)


@cache
def spec(kind: str, api_key: int, version: int) -> MessageSpec:
    """One message at one version. Raises UnknownMessage for a key or version Kafka does not define, so a
    client's choice of keys and versions can only ever fill this cache up to the defined ones."""
    raw = _raw()["messages"][kind].get(str(api_key))
    if raw is None or version not in versions(api_key, kind):
        raise UnknownMessage(f"{kind} api key {api_key} v{version}")
    flexible = _in(raw["flexible"], version)
    root = {"name": raw["name"], "type": "struct", "array": False, "versions": [version, version],
            "fields": raw["fields"]}
    return MessageSpec(kind, api_key, raw["name"], version, flexible, _resolve(root, version, flexible))


def lookup(kind: str, api_key: int, version: int) -> MessageSpec | None:
    """spec(), or None for a key or version Kafka does not define."""
    if version not in versions(api_key, kind):
        return None
    return spec(kind, api_key, version)


def is_flexible(kind: str, api_key: int, version: int) -> bool | None:
    """Whether this message version uses compact encodings and tag sections; None if it is not defined.
    Asked per frame with whatever a client sends: a lookup in a table of the defined versions only."""
    return _flexible_table().get((kind, api_key, version))


@cache
def _flexible_table() -> dict[tuple[str, int, int], bool]:
    return {(kind, int(key), version): _in(raw["flexible"], version)
            for kind, messages in _raw()["messages"].items() for key, raw in messages.items()
            for version in versions(int(key), kind)}


def layout(message: MessageSpec) -> tuple:
    """What a reader of the bytes depends on, names included: two versions with equal layouts are read
    (and written) the same way, so a reader that knows one can read the other."""
    def of(field: FieldSpec) -> tuple:
        return (field.snake, field.type, field.array, field.nullable, field.tag, tuple(of(f) for f in field.fields))
    return (message.flexible, of(message.root))

"""The answer to a request that names a reserved topic or group (reserved.py finds them).

Such a request is never relayed: the client gets the API's own authorization error, built from the
request (every topic/partition/group it named comes back with TOPIC_AUTHORIZATION_FAILED or
GROUP_AUTHORIZATION_FAILED, like a broker whose ACLs deny it), so clients fail fast instead of retrying.
The whole request is refused, even if it also names ordinary topics: only a client that asked for a
reserved name is affected.

The request is read by Kafka's definitions (codec.py) within REFUSAL_BUDGET items: a request too large to
answer at that cost is not answered but closed (CloseReason.UNANSWERABLE), so no count a client wrote
sizes an allocation and no refusal holds the event loop for long.
"""

from __future__ import annotations

from typing import Any

from .codec import TooLarge, decode, default_value, encode
from .message_specs import REQUEST, RESPONSE, FieldSpec, lookup
from .reserved import GROUP, GROUP_RESOURCE_TYPE, RESOURCE

REFUSAL_BUDGET = 2048  # array items, strings and byte runs of a request we answer ourselves
TOPIC_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED = 29, 30

_ALIASES = {
    "partition_index": ("partition_index", "partition", "index"),
    "index": ("index", "partition_index", "partition"),
    "partition": ("partition", "partition_index", "index"),
    "name": ("name", "topic", "topic_name"),
    "topic": ("topic", "name", "topic_name"),
    "topic_name": ("topic_name", "name", "topic"),
}


class Unanswerable(ValueError):
    """The gateway cannot build this refusal (too large, or a version it has no response definition of)."""


def _source_value(source: dict | None, name: str) -> Any:
    for candidate in _ALIASES.get(name, (name,)):
        if source is not None and candidate in source:
            return source[candidate]
    return None


def _source_items(source: dict | None, name: str, request: FieldSpec | None) -> list:
    """The request array a response array answers: the same name, else the request's first array."""
    if source is None:
        return []
    value = source.get(name)
    if isinstance(value, list):
        return value
    for child in request.untagged() if request is not None else ():
        value = source.get(child.snake)
        if child.array and isinstance(value, list) and value:
            return value
    return []


def _item_source(response_item: FieldSpec, item: Any) -> dict | None:
    """An element of a request array of bare names or indexes, as a one-field source for the response item."""
    if isinstance(item, dict) or item is None:
        return item
    wanted = "string" if isinstance(item, str) else "int32"
    first = next((f.snake for f in response_item.untagged() if f.type == wanted and not f.array), None)
    return None if first is None else {first: item}


def _fits(spec: FieldSpec, value: Any) -> bool:
    if value is None:
        return spec.nullable
    if spec.type == "string":
        return isinstance(value, str)
    if spec.type in ("int8", "int16", "uint16", "int32", "uint32", "int64"):
        return isinstance(value, int) and not isinstance(value, bool)
    if spec.type == "bool":
        return isinstance(value, bool)
    return spec.type == "uuid" and hasattr(value, "bytes")


def _request_child(request: FieldSpec | None, name: str) -> FieldSpec | None:
    if request is None:
        return None
    return next((f for f in request.fields if f.snake == name), None) or \
        next((f for f in request.untagged() if f.array and f.type == "struct"), None)


def _mirror(response: FieldSpec, source: dict | None, request: FieldSpec | None, error: int) -> dict:
    values: dict[str, Any] = {}
    for child in response.untagged():
        if child.name.endswith("ErrorCode") and child.type == "int16":
            values[child.snake] = error
        elif child.type == "struct" and child.array:
            nested = _request_child(request, child.snake)
            values[child.snake] = [_mirror(child, _item_source(child, item), nested, error)
                                   for item in _source_items(source, child.snake, request)]
        elif child.type == "struct":
            values[child.snake] = None if child.nullable else _mirror(child, None, None, error)
        elif child.array or child.name == "ThrottleTimeMs":
            values[child.snake] = default_value(child)
        else:
            copied = _source_value(source, child.snake)
            values[child.snake] = copied if copied is not None and _fits(child, copied) else default_value(child)
    if GROUP_RESOURCE_TYPE == values.get("resource_type") and error == TOPIC_AUTHORIZATION_FAILED:
        return _mirror(response, source, request, GROUP_AUTHORIZATION_FAILED)
    return values


def refusal_body(api_key: int, api_version: int, request_body: memoryview, kind: str,
                 budget: int = REFUSAL_BUDGET) -> bytes:
    """The body of the response refusing this request. Raises Unanswerable."""
    request_spec = lookup(REQUEST, api_key, api_version)
    response_spec = lookup(RESPONSE, api_key, api_version)
    if request_spec is None or response_spec is None:
        raise Unanswerable(f"no definition of api key {api_key} v{api_version}")
    try:
        request, _ = decode(request_spec, request_body, 0, budget)
    except TooLarge as error:
        raise Unanswerable(f"{error} ({budget})") from None
    except Exception as error:  # bytes Kafka would refuse as well
        raise Unanswerable(f"request cannot be read: {error!r}") from None
    error = GROUP_AUTHORIZATION_FAILED if kind == GROUP else TOPIC_AUTHORIZATION_FAILED
    return encode(response_spec, _mirror(response_spec.root, request, request_spec.root, error))

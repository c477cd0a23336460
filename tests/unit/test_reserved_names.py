"""Reserved names in requests (protocol/reserved.py) and in responses (protocol/hiding.py), at every version.

Requests are built from kio's own schemas with one item in every array and the name under test in every
field that can hold a topic or group, so every API and version the gateway relays is covered, and a kio
upgrade that adds an API or a name-bearing field is covered without editing this file.
"""

from __future__ import annotations

import io
import struct
import uuid
from dataclasses import MISSING, fields, replace

import pytest
from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer
from kio.serial.errors import SerialError

from gateway_app.protocol import reserved
from gateway_app.protocol.kio_adapter import encode
from gateway_app.protocol.hiding import REDACTED_CONFIGS, hide_reserved_topics, rewrite_describe_configs, rewrite_list_groups
from gateway_app.protocol.policy import _HANDLING, POLICIES
from gateway_app.protocol.schema_walk import (
    EntityField, EntityTupleField, PrimitiveTupleField, classify_field, get_field_tag, get_schema_field_type, is_optional,
)

RESERVED = "_gateway_lab_members"
RESERVED_ID = uuid.uuid4()


def names() -> reserved.ReservedNames:
    """The names of gateway cluster `lab` (cluster/membership.py), knowing one of its topic ids."""
    own = reserved.ReservedNames.of("_gateway_lab", "_gateway_lab_members")
    own.learn_topic_id(RESERVED_ID.bytes)
    return own
AUTHORIZATION_ERRORS = {ErrorCode.topic_authorization_failed, ErrorCode.group_authorization_failed}


def sample(schema: type, name: str, topic_id: uuid.UUID):
    """A request of this schema with `name`/`topic_id` in every field that can hold a reserved name."""
    values = {}
    for field in fields(schema):
        shape = classify_field(field)
        kind = reserved._checked_kind(field)
        kafka_type = field.metadata.get("kafka_type")
        if isinstance(shape, EntityTupleField):
            values[field.name] = (sample(shape.type_, name, topic_id),)
        elif isinstance(shape, EntityField):
            values[field.name] = None if is_optional(field) else sample(shape.type_, name, topic_id)
        elif isinstance(shape, PrimitiveTupleField):
            values[field.name] = (name,) if kind else (0,) if get_schema_field_type(field) == "int32" else ()
        elif kind:
            values[field.name] = topic_id if kafka_type == "uuid" else name
        elif field.default is not MISSING:
            values[field.name] = field.default
        elif field.default_factory is not MISSING:  # type: ignore[misc]
            values[field.name] = field.default_factory()  # type: ignore[misc]
        elif is_optional(field):
            values[field.name] = None
        else:
            values[field.name] = reserved._ZERO.get(kafka_type, None) if kafka_type in reserved._ZERO else field.type(0)
    return schema(**values)


def encoded(schema: type, message) -> memoryview:
    buffer = io.BytesIO()
    entity_writer(schema)(buffer, message)
    return memoryview(buffer.getvalue())


def relayed_versions():
    return [(api_key, version) for (api_key, version), (allowed, _) in sorted(_HANDLING.items()) if allowed]


def checked_versions():
    for api_key, version in relayed_versions():
        if reserved.request_checker(api_key, version) is not None:
            yield pytest.param(api_key, version, id=f"{POLICIES[api_key].name}-v{version}")


def error_codes(entity) -> set:
    found = set()
    for field in fields(entity):
        value = getattr(entity, field.name)
        if field.metadata.get("kafka_type") == "error_code":
            found.add(value)
        for item in value if isinstance(value, tuple) else (value,):
            if hasattr(item, "__dataclass_fields__"):
                found |= error_codes(item)
    return found


@pytest.mark.parametrize(("api_key", "version"), list(checked_versions()))
def test_a_request_naming_a_reserved_name_is_found_and_answered_with_an_authorization_error(api_key, version):
    schema = load_request_schema(api_key, version)
    check = reserved.request_checker(api_key, version)
    body = encoded(schema, sample(schema, RESERVED, RESERVED_ID))
    with pytest.raises(reserved.Reserved) as hit:
        check(body, 0, names())
    answer = reserved.refusal_body(api_key, version, body, hit.value.kind)
    response, end = entity_reader(load_response_schema(api_key, version))(memoryview(answer), 0)
    assert end == len(answer)
    assert error_codes(response) & AUTHORIZATION_ERRORS, response


@pytest.mark.parametrize(("api_key", "version"), list(checked_versions()))
def test_ordinary_names_pass_and_truncation_is_never_mistaken_for_clean(api_key, version):
    schema = load_request_schema(api_key, version)
    check = reserved.request_checker(api_key, version)
    body = encoded(schema, sample(schema, "orders", uuid.uuid4()))
    check(body, 0, names())  # no exception: relayed
    bad = encoded(schema, sample(schema, RESERVED, RESERVED_ID))
    for cut in range(len(bad)):  # every prefix still finds the name or says it needs more bytes: never "clean"
        with pytest.raises((reserved.Reserved, IndexError, ValueError, struct.error, SerialError)):
            check(bad[:cut], 0, names())


def test_no_reserved_name_can_hide_in_a_tagged_field():
    """Tagged fields are skipped unread; if kio ever types one as a topic or group, this must be revisited."""
    def walk(entity):
        for field in fields(entity):
            shape = classify_field(field)
            if get_field_tag(field) is not None and reserved._checked_kind(field) in (reserved.TOPIC, reserved.GROUP):
                yield f"{entity.__name__}.{field.name}"
            if isinstance(shape, (EntityField, EntityTupleField)):
                yield from walk(shape.type_)
    tagged = [name for k, v in relayed_versions() for name in walk(load_request_schema(k, v))]
    assert tagged == []


def test_a_one_topic_produce_is_checked_without_reading_its_records():
    schema = load_request_schema(0, 11)
    message = sample(schema, "orders", uuid.uuid4())
    body = bytes(encoded(schema, message))
    # Cut the request right after the topic name: the checker must not need the partitions that follow.
    name_end = body.index(b"orders") + len(b"orders")
    reserved.request_checker(0, 11)(memoryview(body[:name_end]), 0, names())


class _Context:
    def __init__(self) -> None:
        self.reserved = reserved.ReservedNames.of("_gateway_lab", "_gateway_lab_members")
        self.names_reserved = False
        self.hidden_count = 0
        self.redacted_count = 0

    def hidden(self, count: int) -> None:
        self.hidden_count += count

    def redacted(self, count: int) -> None:
        self.redacted_count += count


@pytest.mark.parametrize("version", range(1, 13))
def test_metadata_leaves_reserved_topics_out_and_learns_their_ids(version):
    schema = load_response_schema(3, version)
    topic_type = classify_field(next(f for f in fields(schema) if f.name == "topics")).type_
    template = sample(topic_type, "orders", uuid.uuid4())
    hidden_topic = replace(template, name=RESERVED, **({"topic_id": RESERVED_ID} if hasattr(template, "topic_id") else {}))
    response = sample(schema, "x", uuid.uuid4())
    response = replace(response, topics=(template, hidden_topic))
    ctx = _Context()
    out = hide_reserved_topics(encode(response), 3, version, ctx)
    decoded, _ = entity_reader(schema)(memoryview(out), 0)
    assert [t.name for t in decoded.topics] == ["orders"] and ctx.hidden_count == 1
    assert ctx.reserved.topic_ids == ({RESERVED_ID.bytes} if hasattr(template, "topic_id") else set())
    assert hide_reserved_topics(encode(replace(response, topics=(template,))), 3, version, _Context()) is None


def test_list_groups_leaves_reserved_groups_out():
    schema = load_response_schema(16, 4)
    group_type = classify_field(next(f for f in fields(schema) if f.name == "groups")).type_
    groups = (sample(group_type, "app", uuid.uuid4()), sample(group_type, RESERVED, uuid.uuid4()))
    response = replace(sample(schema, "x", uuid.uuid4()), groups=groups)
    decoded, _ = entity_reader(schema)(memoryview(rewrite_list_groups(memoryview(encode(response)), 4, _Context())), 0)
    assert [g.group_id for g in decoded.groups] == ["app"]


@pytest.mark.parametrize("version", range(1, 5))
def test_describe_configs_never_shows_a_broker_endpoint(version):
    schema = load_response_schema(32, version)
    result_type = classify_field(next(f for f in fields(schema) if f.name == "results")).type_
    config_type = classify_field(next(f for f in fields(result_type) if f.name == "configs")).type_
    configs = tuple(replace(sample(config_type, "x", uuid.uuid4()), name=name, value="PLAINTEXT://198.18.1.11:9092")
                    for name in sorted(REDACTED_CONFIGS | {"log.retention.ms"}))
    if hasattr(configs[0], "synonyms") and configs[0].synonyms:
        configs = tuple(replace(c, synonyms=tuple(replace(s, value=c.value) for s in c.synonyms)) for c in configs)
    response = replace(sample(schema, "x", uuid.uuid4()),
                       results=(replace(sample(result_type, "1", uuid.uuid4()), configs=configs),))
    ctx = _Context()
    out = rewrite_describe_configs(memoryview(encode(response)), version, ctx)
    assert b"198.18.1.11" in out  # log.retention.ms keeps its (here odd) value: only endpoint configs go
    decoded, _ = entity_reader(schema)(memoryview(out), 0)
    for config in decoded.results[0].configs:
        if config.name in REDACTED_CONFIGS:
            assert config.value is None and config.is_sensitive
            assert all(s.value is None for s in getattr(config, "synonyms", ()))
    assert ctx.redacted_count == len(REDACTED_CONFIGS)


@pytest.mark.parametrize("version", [4, 9, 12])
def test_metadata_asked_for_a_reserved_topic_by_name_answers_it_denied(version):
    schema = load_response_schema(3, version)
    topic_type = classify_field(next(f for f in fields(schema) if f.name == "topics")).type_
    topic = replace(sample(topic_type, RESERVED, RESERVED_ID), error_code=ErrorCode.none)
    ctx = _Context()
    ctx.names_reserved = True
    out = hide_reserved_topics(encode(replace(sample(schema, "x", uuid.uuid4()), topics=(topic,))), 3, version, ctx)
    decoded, _ = entity_reader(schema)(memoryview(out), 0)
    assert [(t.name, t.error_code, t.partitions) for t in decoded.topics] == \
        [(RESERVED, ErrorCode.topic_authorization_failed, ())]


def test_only_the_clusters_own_names_are_reserved():
    own = reserved.ReservedNames.of("_gateway_lab", "_gateway_lab_members")
    assert own.matches_text("_gateway_lab") and own.matches_text("_gateway_lab_members")
    assert own.matches_text("_gateway_lab_reader")  # the members reader's group
    assert not own.matches_text("_gateway_lab2_members")  # another gateway cluster (e.g. one chained behind)
    assert not own.matches_text("orders") and not own.matches_text(None)

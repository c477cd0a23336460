"""Reserved names in requests (protocol/reserved.py, refusal.py) and in responses (protocol/hiding.py), at every version.

Requests are built from Kafka's own message definitions (message_specs.py) with one item in every array
and the name under test in every field that can hold a topic or group (tagged ones too), so every API and
version the gateway relays is covered, and a new Kafka release's APIs are covered without editing this file.
"""

from __future__ import annotations

import datetime
import struct
import uuid
from dataclasses import MISSING, fields, replace

import pytest
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader

from gateway_app.protocol import reserved
from gateway_app.protocol.codec import decode as codec_decode, default_value, encode as codec_encode
from gateway_app.protocol.hiding import (
    REDACTED_CONFIGS, hide_reserved_topics, rewrite_create_topics, rewrite_describe_configs, rewrite_describe_log_dirs,
    rewrite_list_config_resources, rewrite_list_groups,
)
from gateway_app.protocol.kio_adapter import encode, load_response_schema
from gateway_app.protocol.message_specs import FieldSpec, spec
from gateway_app.protocol.policy import _HANDLING, POLICIES
from gateway_app.protocol.refusal import Unanswerable, refusal_body
from gateway_app.protocol.reserved import TagSizeMismatch
from gateway_app.protocol.schema_walk import (
    EntityField, EntityTupleField, PrimitiveTupleField, classify_field, get_schema_field_type, is_optional,
)
from gateway_app.protocol.wire import WireError, write_uvarint

RESERVED = "_gateway_lab_members"
RESERVED_ID = uuid.uuid4()


def names() -> reserved.ReservedNames:
    """The names of gateway cluster `lab` (cluster/membership.py), knowing one of its topic ids."""
    own = reserved.ReservedNames.of("_gateway_lab", "_gateway_lab_members")
    own.learn_topic_id(RESERVED_ID.bytes)
    return own
AUTHORIZATION_ERRORS = {ErrorCode.topic_authorization_failed, ErrorCode.group_authorization_failed}


def request_sample(spec: FieldSpec, name: str, topic_id: uuid.UUID) -> dict:
    """Values for a request struct with `name`/`topic_id` in every field that can hold a reserved name
    (tagged ones too), one item in every array of structs."""
    values = {}
    for field in spec.fields:
        kind = reserved.checked_kind(field)
        if field.type == "struct":
            item = request_sample(field, name, topic_id)
            values[field.snake] = [item] if field.array else item
        elif kind is not None:
            value = topic_id if field.type == "uuid" else name
            values[field.snake] = [value] if field.array else value
        elif field.array and field.type == "int32":
            values[field.snake] = [0]
        elif field.tag is None:
            values[field.snake] = default_value(field)
    return values


def request_body(api_key: int, version: int, name: str, topic_id: uuid.UUID) -> memoryview:
    message = spec("request", api_key, version)
    return memoryview(codec_encode(message, request_sample(message.root, name, topic_id)))


def relayed_versions():
    return [(api_key, version) for (api_key, version), (allowed, _) in sorted(_HANDLING.items()) if allowed]


def checked_versions():
    for api_key, version in relayed_versions():
        if reserved.request_checker(api_key, version) is not None:
            yield pytest.param(api_key, version, id=f"{POLICIES[api_key].name}-v{version}")


def response_error_codes(values) -> set:
    found = set()
    for key, value in values.items():
        if key.endswith("error_code"):
            found.add(value)
        for item in value if isinstance(value, list) else (value,):
            if isinstance(item, dict):
                found |= response_error_codes(item)
    return found


@pytest.mark.parametrize(("api_key", "version"), list(checked_versions()))
def test_a_request_naming_a_reserved_name_is_found_and_answered_with_an_authorization_error(api_key, version):
    check = reserved.request_checker(api_key, version)
    body = request_body(api_key, version, RESERVED, RESERVED_ID)
    with pytest.raises(reserved.Reserved) as hit:
        check(body, 0, names())
    answer = refusal_body(api_key, version, body, hit.value.kind)
    response, end = codec_decode(spec("response", api_key, version), memoryview(answer))
    assert end == len(answer)
    assert response_error_codes(response) & {29, 30}, response


@pytest.mark.parametrize(("api_key", "version"), list(checked_versions()))
def test_ordinary_names_pass_and_truncation_is_never_mistaken_for_clean(api_key, version):
    check = reserved.request_checker(api_key, version)
    check(request_body(api_key, version, "orders", uuid.uuid4()), 0, names())  # no exception: relayed
    reserved.request_reader(api_key, version)(request_body(api_key, version, "orders", uuid.uuid4()), 0, names())
    bad = request_body(api_key, version, RESERVED, RESERVED_ID)
    for cut in range(len(bad)):  # every prefix still finds the name or says it needs more bytes: never "clean"
        with pytest.raises((reserved.Reserved, IndexError, WireError, struct.error)):
            check(bad[:cut], 0, names())


def test_a_one_topic_produce_is_checked_without_reading_its_records():
    body = bytes(request_body(0, 11, "orders", uuid.uuid4()))
    # Cut the request right after the topic name: the checker must not need the partitions that follow.
    name_end = body.index(b"orders") + len(b"orders")
    reserved.request_checker(0, 11)(memoryview(body[:name_end]), 0, names())


def _fetch_v17(topic_ids: list[uuid.UUID], directory_tag: bytes | None) -> bytes:
    """A Fetch v17 body whose first partition carries tag 0 (replica_directory_id) as the bytes given."""
    message = spec("request", 1, 17)
    topics = [{"topic_id": t, "partitions": [{"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1024}]}
              for t in topic_ids]
    body = bytearray(codec_encode(message, {"max_wait_ms": 100, "topics": topics, "rack_id": ""}))
    if directory_tag is not None:  # replace the first partition's empty tag section
        partition_tags = body.index(bytes(16)[:0] + topic_ids[0].bytes) + 16 + 1 + 4 + 4 + 8 + 4 + 8 + 4
        assert body[partition_tags] == 0
        body[partition_tags:partition_tags + 1] = b"\x01\x00" + bytes([len(directory_tag)]) + directory_tag
    return bytes(body)


def test_a_known_tagged_field_is_read_by_its_type_and_a_wrong_declared_size_is_refused():
    """Kafka reads tag 0 of a Fetch partition as a uuid whatever size it declares; a reader that skipped by
    the declared size would read different bytes from there on (a reserved topic id slipped past that way)."""
    check = reserved.request_checker(1, 17)
    ordinary = uuid.uuid4()
    check(memoryview(_fetch_v17([ordinary], uuid.uuid4().bytes)), 0, names())  # the right size: fine
    for wrong in (bytes(15), bytes(17), uuid.uuid4().bytes + RESERVED_ID.bytes):
        with pytest.raises(TagSizeMismatch):
            check(memoryview(_fetch_v17([ordinary], wrong)), 0, names())


def test_until_the_reserved_ids_are_known_every_topic_id_is_refused():
    own = reserved.ReservedNames.of("_gateway_lab", "_gateway_lab_members")
    own.ids_known = False
    body = request_body(1, 13, "orders", uuid.uuid4())
    with pytest.raises(reserved.Reserved):
        reserved.request_checker(1, 13)(body, 0, own)
    own.know_topic_ids([RESERVED_ID.bytes])
    reserved.request_checker(1, 13)(body, 0, own)
    with pytest.raises(reserved.Reserved):
        reserved.request_checker(1, 13)(request_body(1, 13, "orders", RESERVED_ID), 0, own)


@pytest.mark.parametrize("pattern", ["_gateway.*", ".*", "_gateway_lab_members", "(_gateway|x)_lab.*", "(?i)_GATEWAY.*",
                                     "[[:print:]]*", "\\p{L}.*", "(a+)+b", "(", "\\Q_gateway\\E.*"])
def test_a_topic_regex_that_may_reach_a_reserved_topic_is_refused(pattern):
    assert names().regex_reaches(pattern.encode())


@pytest.mark.parametrize("pattern", ["orders.*", "orders-[0-9]+", "_gateway_other_.*", "a|b"])
def test_a_topic_regex_that_cannot_reach_a_reserved_topic_passes(pattern):
    assert not names().regex_reaches(pattern.encode())


def test_a_refusal_too_large_to_answer_cheaply_is_not_built():
    """The 59-byte frame: a reserved name, then an array count far beyond the bytes. No allocation follows it."""
    prefix = bytes(request_body(0, 9, RESERVED, RESERVED_ID))
    name_end = prefix.index(RESERVED.encode()) + len(RESERVED)
    for count in (2**35 - 2, 2**31 - 2, 1000):
        body = bytearray(prefix[:name_end])
        write_uvarint(body, count + 1)
        with pytest.raises(Unanswerable):
            refusal_body(0, 9, memoryview(bytes(body)), reserved.TOPIC)
    many = [{"index": i, "records": None} for i in range(5000)]  # a well-formed, large refused Produce
    big = codec_encode(spec("request", 0, 9), {"acks": 1, "timeout_ms": 1, "topic_data": [{"name": RESERVED, "partition_data": many}]})
    with pytest.raises(Unanswerable):
        refusal_body(0, 9, memoryview(big), reserved.TOPIC)


def kio_sample(schema: type, name: str, topic_id: uuid.UUID):
    """A kio response entity with `name`/`topic_id` in every field that can hold a reserved name."""
    values = {}
    for field in fields(schema):
        shape = classify_field(field)
        text = str(field.type)
        kind = "TopicName" in text or "GroupId" in text or (field.name == "topic_id" and get_schema_field_type(field) == "uuid")
        kafka_type = field.metadata.get("kafka_type")
        if isinstance(shape, EntityTupleField):
            values[field.name] = (kio_sample(shape.type_, name, topic_id),)
        elif isinstance(shape, EntityField):
            values[field.name] = None if is_optional(field) else kio_sample(shape.type_, name, topic_id)
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
            values[field.name] = _KIO_ZERO[kafka_type] if kafka_type in _KIO_ZERO else field.type(0)
    return schema(**values)


_KIO_ZERO = {"string": "", "bytes": b"", "bool": False, "uuid": uuid.UUID(int=0), "records": b"",
             "timedelta_i32": datetime.timedelta(0), "timedelta_i64": datetime.timedelta(0)}


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
    template = kio_sample(topic_type, "orders", uuid.uuid4())
    hidden_topic = replace(template, name=RESERVED, **({"topic_id": RESERVED_ID} if hasattr(template, "topic_id") else {}))
    response = kio_sample(schema, "x", uuid.uuid4())
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
    groups = (kio_sample(group_type, "app", uuid.uuid4()), kio_sample(group_type, RESERVED, uuid.uuid4()))
    response = replace(kio_sample(schema, "x", uuid.uuid4()), groups=groups)
    decoded, _ = entity_reader(schema)(memoryview(rewrite_list_groups(memoryview(encode(response)), 4, _Context())), 0)
    assert [g.group_id for g in decoded.groups] == ["app"]


@pytest.mark.parametrize("version", range(1, 5))
def test_describe_configs_never_shows_a_broker_endpoint(version):
    schema = load_response_schema(32, version)
    result_type = classify_field(next(f for f in fields(schema) if f.name == "results")).type_
    config_type = classify_field(next(f for f in fields(result_type) if f.name == "configs")).type_
    configs = tuple(replace(kio_sample(config_type, "x", uuid.uuid4()), name=name, value="PLAINTEXT://198.18.1.11:9092")
                    for name in sorted(REDACTED_CONFIGS | {"log.retention.ms"}))
    if hasattr(configs[0], "synonyms") and configs[0].synonyms:
        configs = tuple(replace(c, synonyms=tuple(replace(s, value=c.value) for s in c.synonyms)) for c in configs)
    response = replace(kio_sample(schema, "x", uuid.uuid4()),
                       results=(replace(kio_sample(result_type, "1", uuid.uuid4()), configs=configs),))
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
    topic = replace(kio_sample(topic_type, RESERVED, RESERVED_ID), error_code=ErrorCode.none)
    ctx = _Context()
    ctx.names_reserved = True
    out = hide_reserved_topics(encode(replace(kio_sample(schema, "x", uuid.uuid4()), topics=(topic,))), 3, version, ctx)
    decoded, _ = entity_reader(schema)(memoryview(out), 0)
    assert [(t.name, t.error_code, t.partitions) for t in decoded.topics] == \
        [(RESERVED, ErrorCode.topic_authorization_failed, ())]


def test_only_the_clusters_own_names_are_reserved():
    own = reserved.ReservedNames.of("_gateway_lab", "_gateway_lab_members")
    assert own.matches_text("_gateway_lab") and own.matches_text("_gateway_lab_members")
    assert own.matches_text("_gateway_lab_reader")  # the members reader's group
    assert not own.matches_text("_gateway_lab2_members")  # another gateway cluster (e.g. one chained behind)
    assert not own.matches_text("orders") and not own.matches_text(None)


# --- listings beyond Metadata: paging cursors, log dirs, config resources, error messages -------------

def _dtp_page(topics: list[tuple[str, int]], cursor: tuple[str, int] | None, limit: int) -> bytes:
    """A broker's DescribeTopicPartitions v0 page of all topics (Kafka's DescribeTopicPartitionsRequestHandler):
    the topics whose name sorts at or after the cursor's, from its partition on, up to `limit` partitions."""
    schema = load_response_schema(75, 0)
    topic_type = classify_field(next(f for f in fields(schema) if f.name == "topics")).type_
    partition_type = classify_field(next(f for f in fields(topic_type) if f.name == "partitions")).type_
    cursor_type = classify_field(next(f for f in fields(schema) if f.name == "next_cursor")).type_
    start_name, start_partition = cursor or ("", 0)
    page, left, next_cursor = [], limit, None
    for name, count in sorted(t for t in topics if t[0] >= start_name):
        first = start_partition if name == start_name else 0
        if left == 0:
            next_cursor = cursor_type(topic_name=name, partition_index=first)
            break
        taken = list(range(first, min(count, first + left)))
        left -= len(taken)
        page.append(replace(kio_sample(topic_type, name, uuid.uuid4()),
                            partitions=tuple(replace(kio_sample(partition_type, "p", uuid.uuid4()), partition_index=p)
                                             for p in taken)))
        if first + len(taken) < count:
            next_cursor = cursor_type(topic_name=name, partition_index=first + len(taken))
            break
    return encode(replace(kio_sample(schema, "x", uuid.uuid4()), topics=tuple(page), next_cursor=next_cursor))


@pytest.mark.parametrize("limit", [1, 2, 3, 5])
def test_paging_all_topics_past_the_reserved_ones_loses_no_other_topic(limit):
    topics = [("_gateway_lab", 1), ("_gateway_lab-x", 2), ("_gateway_lab.y", 1), ("_gateway_labZ", 1),
              ("_gateway_lab_members", 3), ("_gateway_lab_reader", 2), ("_gateway_laba", 2), ("_gateway_lab2_members", 1),
              ("__consumer_offsets", 3), ("orders", 4), ("zeta", 1)]
    schema = load_response_schema(75, 0)
    ctx, cursor, seen = _Context(), None, []
    for _ in range(100):
        body = _dtp_page(topics, cursor, limit)
        out = hide_reserved_topics(body, 75, 0, ctx)
        decoded, _ = entity_reader(schema)(memoryview(out if out is not None else body), 0)
        seen += [(t.name, p.partition_index) for t in decoded.topics for p in t.partitions]
        if decoded.next_cursor is None:
            break
        assert not ctx.reserved.matches_text(decoded.next_cursor.topic_name), decoded.next_cursor
        cursor = (decoded.next_cursor.topic_name, decoded.next_cursor.partition_index)
    expected = [(name, p) for name, count in sorted(topics) if not ctx.reserved.matches_text(name) for p in range(count)]
    assert seen == expected


def test_the_first_name_after_a_reserved_name_sorts_past_its_whole_range():
    own = reserved.ReservedNames.of("_gateway_lab", "_gateway_lab_members")
    assert own.first_name_after("_gateway_lab") == "_gateway_lab-"  # '-' is the smallest character of a topic name
    assert own.first_name_after("_gateway_lab_members") == own.first_name_after("_gateway_lab_x") == "_gateway_laba"
    assert reserved.ReservedNames.of("_gateway_z", "_gateway_z_members").first_name_after("_gateway_z_a") == "_gateway_za"


@pytest.mark.parametrize("version", range(1, 6))
def test_describe_log_dirs_leaves_reserved_topics_out(version):
    schema = load_response_schema(35, version)
    result_type = classify_field(next(f for f in fields(schema) if f.name == "results")).type_
    topic_type = classify_field(next(f for f in fields(result_type) if f.name == "topics")).type_
    topics = tuple(kio_sample(topic_type, name, uuid.uuid4()) for name in ("orders", RESERVED, "_gateway_lab_reader"))
    result = replace(kio_sample(result_type, "/data", uuid.uuid4()), topics=topics)
    response = replace(kio_sample(schema, "x", uuid.uuid4()), results=(result, result))
    ctx = _Context()
    decoded, _ = entity_reader(schema)(memoryview(rewrite_describe_log_dirs(memoryview(encode(response)), version, ctx)), 0)
    assert [[t.name for t in r.topics] for r in decoded.results] == [["orders"], ["orders"]] and ctx.hidden_count == 4
    only_ordinary = replace(response, results=(replace(result, topics=topics[:1]),))
    assert rewrite_describe_log_dirs(memoryview(encode(only_ordinary)), version, _Context()) is None


def test_list_config_resources_leaves_reserved_topics_and_groups_out():
    schema = load_response_schema(74, 1)
    resource_type = classify_field(next(f for f in fields(schema) if f.name == "config_resources")).type_
    listed = [("orders", 2), (RESERVED, 2), ("_gateway_lab", 32), ("app", 32), ("1", 4)]
    resources = tuple(replace(kio_sample(resource_type, name, uuid.uuid4()), resource_name=name, resource_type=kind)
                      for name, kind in listed)
    ctx = _Context()
    out = rewrite_list_config_resources(memoryview(encode(replace(kio_sample(schema, "x", uuid.uuid4()),
                                                                  config_resources=resources))), 1, ctx)
    decoded, _ = entity_reader(schema)(memoryview(out), 0)
    assert [(r.resource_name, r.resource_type) for r in decoded.config_resources] == [("orders", 2), ("app", 32), ("1", 4)]
    assert ctx.hidden_count == 2


@pytest.mark.parametrize("version", range(2, 8))
def test_a_create_topics_collision_does_not_name_the_reserved_topic(version):
    schema = load_response_schema(19, version)
    topic_type = classify_field(next(f for f in fields(schema) if f.name == "topics")).type_
    collision = replace(kio_sample(topic_type, ".gateway.lab.members", uuid.uuid4()), error_code=ErrorCode.invalid_topic_exception,
                        error_message=f"Topic '.gateway.lab.members' collides with existing topic: {RESERVED}")
    ordinary = replace(kio_sample(topic_type, "orders", uuid.uuid4()), error_message=None)
    ctx = _Context()
    out = rewrite_create_topics(memoryview(encode(replace(kio_sample(schema, "x", uuid.uuid4()),
                                                          topics=(collision, ordinary)))), version, ctx)
    decoded, _ = entity_reader(schema)(memoryview(out), 0)
    assert [(t.name, t.error_code, t.error_message) for t in decoded.topics] == [
        (".gateway.lab.members", ErrorCode.invalid_topic_exception,
         "Topic '.gateway.lab.members' collides with existing topic: (a topic reserved by the gateway)"),
        ("orders", ordinary.error_code, None)]
    assert RESERVED.encode() not in out and ctx.hidden_count == 1

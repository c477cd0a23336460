"""protocol.endpoints_in_place: KIP-951 node endpoints rewritten in a tag section that keeps its size, for a Fetch
response whose size prefix went out before its tag section was read. Every outcome, every padding size across the
varint boundaries, and the result read back by kio as a client reads it (the padding an unknown tag)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from gateway_app.protocol.api_keys import FETCH, PRODUCE
from gateway_app.protocol.endpoints_in_place import PADDING_TAGS, Outcome, padded, rewrite_in_place
from gateway_app.protocol.kio_adapter import get_field_reader, load_response_schema
from gateway_app.protocol.message_specs import _DATA as KAFKA_MESSAGES
from gateway_app.protocol.schema_walk import read_tags, tag_section_offsets, write_tags
from tests.unit.test_fetch_stream import fetch_response, frame_of, records
from tests.unit.test_protocol_rewrite import GATEWAY, OUT_OF_RANGE, Context, encode, nested, sample



def with_endpoints(version: int, hosts: dict[int, str]) -> tuple[bytes, object]:
    """The encoded body of a Fetch response whose node endpoints name these brokers, and the message."""
    cls = load_response_schema(FETCH, version)
    endpoint = nested(cls, "node_endpoints")
    message = fetch_response(version, [[records(2000, 9)]])
    endpoints = tuple(sample(endpoint, node_id=i, host=host, port=9092, rack="rack-c") for i, host in hosts.items())
    message = replace(message, node_endpoints=endpoints)
    return encode(message), message


def tag_section(body: bytes, version: int) -> tuple[int, bytes]:
    start, end = tag_section_offsets(load_response_schema(FETCH, version), memoryview(body))
    return start, body[start:end]


def client_read(version: int, body: bytes, start: int) -> tuple[tuple, bytes]:
    """(the node endpoints, the bytes before the tag section) as a client reads them: the tags it knows decoded,
    any other skipped (KIP-482; kio's own reader refuses unknown tags, Kafka's clients do not)."""
    schema = load_response_schema(FETCH, version)
    tags, end = read_tags(memoryview(body), start)
    assert end == len(body)
    assert [tag for tag, _ in tags] == sorted(tag for tag, _ in tags)  # ascending, as Kafka writes them
    found = [value for tag, value in tags if tag == 0]
    if not found:
        return (), body[:start]
    field = [f for f in schema.__dataclass_fields__.values() if f.name == "node_endpoints"][0]
    endpoints, _ = get_field_reader(schema, field, False, True)(found[0].toreadonly(), 0)
    return endpoints, body[:start]


def in_place(version: int, hosts: dict[int, str]) -> tuple[Outcome, list[tuple], Context]:
    """(the outcome, the endpoints as the client reads them after the rewrite, the context), the rest of the body
    checked to be as the broker sent it."""
    body, _ = with_endpoints(version, hosts)
    start, section = tag_section(body, version)
    ctx = Context()
    rewritten, outcome = rewrite_in_place(FETCH, version, section, ctx)
    assert len(rewritten) == len(section)
    read, before = client_read(version, body[:start] + rewritten, start)
    assert before == body[:start]
    return outcome, [(e.node_id, e.host, e.port, e.rack) for e in read], ctx


@pytest.mark.parametrize("version", [16, 17, 18])
def test_endpoints_of_the_same_size_are_rewritten(version: int) -> None:
    broker_host = "x" * len(GATEWAY)
    outcome, read, ctx = in_place(version, {2: broker_host, 3: broker_host})
    assert outcome is Outcome.REWRITTEN
    assert read == [(2, GATEWAY, 6971, "rack-c"), (3, GATEWAY, 6972, "rack-c")]
    assert ctx.learned[2].host == broker_host


@pytest.mark.parametrize("longer_by", [2, 3, 200])
def test_shorter_endpoints_are_padded(longer_by: int) -> None:
    outcome, read, _ = in_place(16, {2: "x" * (len(GATEWAY) + longer_by)})
    assert outcome is Outcome.PADDED
    assert read == [(2, GATEWAY, 6971, "rack-c")]


def test_an_endpoint_out_of_the_port_plan_leaves_room_for_padding() -> None:
    outcome, read, ctx = in_place(16, {2: "x" * len(GATEWAY), OUT_OF_RANGE: "x" * len(GATEWAY)})
    assert outcome is Outcome.PADDED and ctx.out_of_range == [OUT_OF_RANGE]
    assert read == [(2, GATEWAY, 6971, "rack-c")]


@pytest.mark.parametrize("broker_host", ["10.0.0.2", "x" * (len(GATEWAY) + 1)])
def test_endpoints_that_would_grow_or_shrink_by_one_byte_are_dropped(broker_host: str) -> None:
    outcome, read, _ = in_place(16, {2: broker_host})
    assert outcome is Outcome.DROPPED and read == []


@pytest.mark.parametrize("version", [16, 18])
def test_a_section_without_endpoints_is_unchanged(version: int) -> None:
    body = encode(fetch_response(version, [[records(100, 1)]]))
    _, section = tag_section(body, version)
    assert rewrite_in_place(FETCH, version, section, Context()) == (section, Outcome.UNCHANGED)
    other = write_tags([(5, b"abc")])  # a tag this version does not know, no endpoints
    assert rewrite_in_place(FETCH, version, other, Context()) == (other, Outcome.UNCHANGED)


def test_other_tags_are_kept_in_ascending_order_before_the_padding() -> None:
    endpoints_value = encode_endpoints({2: "x" * 30})
    section = write_tags([(0, endpoints_value), (3, b"keep")])
    rewritten, outcome = rewrite_in_place(FETCH, 16, section, Context())
    assert outcome is Outcome.PADDED
    tags, end = read_tags(memoryview(rewritten), 0)
    assert end == len(section)
    assert [tag for tag, _ in tags] == [0, 3, PADDING_TAGS[0]]
    assert bytes(tags[1][1]) == b"keep"


def encode_endpoints(hosts: dict[int, str]) -> bytes:
    body, _ = with_endpoints(16, hosts)
    _, section = tag_section(body, 16)
    (tag, value), = read_tags(memoryview(section), 0)[0]
    return bytes(value)


@pytest.mark.parametrize("existing", [[], [(0, b"abc")], [(3, bytes(300))], [(i, b"") for i in range(126)]])
def test_padding_fills_every_size_exactly(existing: list) -> None:
    smallest = len(write_tags(existing)) + 2
    for size in [*range(smallest, smallest + 300), *range(16_300, 16_500), 2_097_160]:
        section = padded(existing, size)
        assert section is not None and len(section) == size, size
        tags, end = read_tags(memoryview(section), 0)
        assert end == size and [t for t, _ in tags][:-1] == [t for t, _ in existing]
        assert tags[-1][0] in PADDING_TAGS
    assert padded(existing, smallest - 1) is None


def test_padding_after_a_tag_above_both_padding_tags_is_impossible() -> None:
    assert padded([(PADDING_TAGS[1], b"")], 50) is None
    section = padded([(PADDING_TAGS[0], b"")], 50)  # the two-byte tag still comes after it
    assert section is not None and len(section) == 50
    assert [tag for tag, _ in read_tags(memoryview(section), 0)[0]] == list(PADDING_TAGS)


def test_no_kafka_message_uses_a_padding_tag() -> None:
    tags: set[int] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("tag"), int):
                tags.add(node["tag"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(KAFKA_MESSAGES.read_text()))
    assert tags and max(tags) < PADDING_TAGS[0]


def test_produce_responses_are_rewritten_in_place_too() -> None:
    section = write_tags([(0, encode_endpoints({2: "x" * 20}))])  # Produce v10 encodes endpoints as Fetch v16 does
    rewritten, outcome = rewrite_in_place(PRODUCE, 10, section, Context())
    assert outcome is Outcome.PADDED and len(rewritten) == len(section)
    (_, value), _ = read_tags(memoryview(rewritten), 0)[0]
    assert b"gw.example" in bytes(value)


def test_the_relayed_frame_keeps_its_size() -> None:
    body, message = with_endpoints(16, {2: "x" * 40})
    frame = frame_of(message)
    start, section = tag_section(body, 16)
    rewritten, _ = rewrite_in_place(FETCH, 16, section, Context())
    relayed = frame[:-len(section)] + rewritten
    assert len(relayed) == len(frame) and relayed[:4] == frame[:4]

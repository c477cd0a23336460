"""protocol.fetch_stream: a Fetch response (v12+, encoded by kio) read as it arrives, its record sets moved unread.

Whatever the chunking, the bytes handed back, the record bytes moved and the tag section kept back put together are
the frame as the broker sent it; the record sets are moved (few of their bytes read); bytes that do not match the
schema are a WalkError once the frame is complete."""

from __future__ import annotations

import io
import random
import struct
import uuid
from typing import Any

import pytest
from kio.schema.errors import ErrorCode
from kio.serial import entity_writer

from gateway_app.protocol.api_keys import FETCH
from gateway_app.protocol.fetch_stream import HEAD_READ, FetchResponseReader
from gateway_app.protocol.kio_adapter import load_response_schema
from gateway_app.protocol.policy import POLICIES
from gateway_app.protocol.schema_walk import WalkError
from tests.unit.test_protocol_rewrite import endpoints_of, nested, sample

VERSIONS = list(range(12, POLICIES[FETCH].max_version + 1))


def records(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def fetch_response(version: int, sets: list[list[bytes | None]], with_endpoints: bool = False,
                   aborted: int = 0, tagged: bool = False) -> Any:
    """A Fetch response with one topic per entry of `sets`, one partition per record set in it."""
    cls = load_response_schema(FETCH, version)
    topic_cls = nested(cls, "responses")
    partition_cls = nested(topic_cls, "partitions")
    aborted_cls = nested(partition_cls, "aborted_transactions")
    topics = []
    for t, partition_sets in enumerate(sets):
        partitions = []
        for p, record_set in enumerate(partition_sets):
            extra: dict[str, Any] = {}
            if tagged:  # a partition tag section that is not empty (KIP-595 diverging epoch)
                extra["diverging_epoch"] = sample(nested(partition_cls, "diverging_epoch"), epoch=3, end_offset=9)
            partitions.append(sample(
                partition_cls, partition_index=p, error_code=ErrorCode.none, records=record_set,
                aborted_transactions=tuple(sample(aborted_cls, producer_id=i, first_offset=i) for i in range(aborted)),
                **extra))
        topic_key = {"topic_id": uuid.UUID(int=t + 1)} if "topic_id" in {f for f in topic_cls.__dataclass_fields__} \
            else {"topic": f"topic-{t}"}
        topics.append(sample(topic_cls, partitions=tuple(partitions), **topic_key))
    extra = {"node_endpoints": endpoints_of(cls)} if with_endpoints else {}
    return sample(cls, responses=tuple(topics), **extra)


def frame_of(message: Any, correlation_id: int = 77) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(message))(buffer, message)
    body = struct.pack(">i", correlation_id) + b"\0" + buffer.getvalue()  # response header v1: id, no tags
    return struct.pack(">i", len(body)) + body


def relay(frame: bytes, version: int, read_sizes: list[int] | None = None) -> tuple[bytes, bytes, list[int], int]:
    """Run a reader over `frame` as an owner would: read what want() asks (or less, per `read_sizes`), move what
    records_left says. Returns (what the client gets, the tag section, the sizes moved, record bytes read)."""
    reader = FetchResponseReader(version)
    out, moved, pos, fed = bytearray(), [], 0, 0
    sizes = iter(read_sizes or [])
    while not reader.done:
        if reader.records_left:
            moved.append(reader.records_left)
            out += frame[pos:pos + reader.records_left]
            pos += reader.records_left
            reader.moved(reader.records_left)
            continue
        want = reader.want()
        assert want > 0
        take = min(want, next(sizes, want))
        for chunk in reader.feed(frame[pos:pos + take]):
            out += chunk
        pos += take
        fed += take
    assert reader.remaining == 0 and pos == len(frame)
    return bytes(out), reader.tags, moved, fed


@pytest.mark.parametrize("version", VERSIONS)
def test_a_response_comes_out_as_it_came_its_record_sets_moved(version: int) -> None:
    sets = [[records(300_000, 1), None, b""], [records(5000, 2)]]
    frame = frame_of(fetch_response(version, sets, with_endpoints=version >= 16, aborted=2, tagged=True))
    out, tags, moved, fed = relay(frame, version)
    assert out + tags == frame
    assert sum(moved) + fed == len(frame)
    assert sum(moved) > 300_000 + 5000 - 2 * HEAD_READ  # at most a read's worth of each set passes through Python
    assert fed < 4 * HEAD_READ + len(tags)


@pytest.mark.parametrize("version", [12, 16, VERSIONS[-1]])
def test_the_tag_section_is_kept_back_whole(version: int) -> None:
    with_endpoints = version >= 16
    frame = frame_of(fetch_response(version, [[records(1000, 3)]], with_endpoints=with_endpoints))
    _, tags, _, _ = relay(frame, version)
    assert frame.endswith(tags)
    assert (tags != b"\0") == with_endpoints
    assert tags[0] == (1 if with_endpoints else 0)  # the count of tagged fields


@pytest.mark.parametrize("seed", range(20))
def test_any_chunking_gives_the_same_bytes(seed: int) -> None:
    rng = random.Random(seed)
    version = rng.choice(VERSIONS)
    sets = [[rng.choice([None, b"", records(rng.randrange(1, 3000), seed)]) for _ in range(rng.randrange(1, 5))]
            for _ in range(rng.randrange(1, 4))]
    frame = frame_of(fetch_response(version, sets, with_endpoints=version >= 16 and rng.random() < 0.5,
                                    aborted=rng.randrange(0, 40), tagged=rng.random() < 0.5))
    out, tags, moved, fed = relay(frame, version, [rng.randrange(1, 50) for _ in range(10_000)])
    assert out + tags == frame
    assert sum(moved) + fed == len(frame)


def test_a_response_without_topics() -> None:
    frame = frame_of(fetch_response(16, []))
    out, tags, moved, _ = relay(frame, 16)
    assert out + tags == frame and moved == []


def test_reading_stops_at_each_record_set() -> None:
    first_set = records(10_000, 4)
    frame = frame_of(fetch_response(13, [[first_set, records(20_000, 5)]]))
    reader = FetchResponseReader(13)
    assert reader.want() == 4 and reader.feed(frame[:4]) == []
    assert reader.want() == HEAD_READ
    (out,) = reader.feed(frame[4:4 + HEAD_READ])
    assert out == frame[:4 + HEAD_READ]  # a read that ends inside a record set is handed back whole
    assert reader.records_left == frame.index(first_set) + len(first_set) - len(out)
    assert reader.want() == 0
    with pytest.raises(ValueError):
        reader.feed(b"x")  # the record set is to be moved first
    with pytest.raises(ValueError):
        reader.moved(reader.records_left + 1)
    reader.moved(reader.records_left)
    assert reader.want() == HEAD_READ


@pytest.mark.parametrize("cut", [1, 5, 40])
def test_a_frame_that_ends_inside_its_content_is_a_walk_error(cut: int) -> None:
    message = fetch_response(16, [[records(500, 6)]], with_endpoints=True)
    frame = frame_of(message)
    body = frame[4:len(frame) - cut]
    with pytest.raises(WalkError):
        relay(struct.pack(">i", len(body)) + body, 16)


def test_bytes_after_the_tag_section_are_a_walk_error() -> None:
    frame = frame_of(fetch_response(16, [[records(500, 7)]]))
    body = frame[4:] + b"\0\0"
    with pytest.raises(WalkError):
        relay(struct.pack(">i", len(body)) + body, 16)


def test_a_null_topic_array_is_a_walk_error() -> None:
    frame = bytearray(frame_of(fetch_response(16, [])))
    count_at = 4 + 4 + 1 + 4 + 2 + 4  # size, correlation id, header tags, throttle, error, session
    assert frame[count_at] == 1
    frame[count_at] = 0
    with pytest.raises(WalkError):
        relay(bytes(frame), 16)


def test_versions_before_12_are_refused() -> None:
    with pytest.raises(ValueError):
        FetchResponseReader(11)


def test_more_than_the_frame_is_refused() -> None:
    frame = frame_of(fetch_response(16, []))
    with pytest.raises(WalkError):
        FetchResponseReader(16).feed(frame + b"\0")

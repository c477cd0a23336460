"""protocol.produce_stream: a Produce request (v3-13) read as it arrives from the client, its records moved unread.

Whatever the chunking, the bytes handed back and the bytes moved put together are the frame as the client sent it;
the records are moved (few of their bytes read); each topic name and id is checked before the bytes that carry it are
handed back; bytes Kafka refuses, or any length that runs past the frame, are a WireError as soon as they are read."""

from __future__ import annotations

import random
import struct
import uuid

import pytest

from gateway_app.protocol.api_keys import PRODUCE
from gateway_app.protocol.produce_stream import HEAD_READ, ProduceRequestReader
from gateway_app.protocol.reserved import Reserved, ReservedNames
from gateway_app.protocol.wire import WireError, write_uvarint
from lab.frames import request_frame

VERSIONS = list(range(3, 14))
RESERVED = ReservedNames.of("_gateway_test", "_gateway_test_members")
RESERVED_ID = uuid.UUID(int=0xDEAD)
RESERVED.learn_topic_id(RESERVED_ID.bytes)


def batch(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def produce_body(version: int, topics: list[list[bytes | None]], names: list[str] | None = None,
                 transactional_id: str | None = None, acks: int = -1) -> dict:
    """One topic per entry of `topics`, one partition per record batch in it."""
    topic_data = []
    for t, batches in enumerate(topics):
        topic: dict = {"topic_id": uuid.UUID(int=t + 1)} if version >= 13 else {"name": (names or [])[t] if names
                                                                                  else f"topic-{t}"}
        topic["partition_data"] = [{"index": p, "records": records} for p, records in enumerate(batches)]
        topic_data.append(topic)
    return {"transactional_id": transactional_id, "acks": acks, "timeout_ms": 30000, "topic_data": topic_data}


def produce_frame(version: int, topics: list[list[bytes | None]], **kwargs) -> bytes:
    return request_frame(PRODUCE, version, 41, produce_body(version, topics, **kwargs))


def drive(frame: bytes, version: int, chunk: int, reserved: ReservedNames = RESERVED) -> tuple[bytes, int, int]:
    """Feed `frame` as the splice does, `chunk` bytes at most a call; returns what went out in order, the bytes
    moved, and the most bytes the reader was fed at once."""
    reader = ProduceRequestReader(version, reserved)
    out: list[bytes] = []
    position = moved = most = 0
    while not reader.done:
        if reader.records_left:
            count = min(reader.records_left, chunk)
            out.append(frame[position:position + count])
            reader.moved(count)
            moved += count
        else:
            count = min(reader.want(), chunk)
            assert count > 0, "the reader wants nothing and is not done"
            out += reader.feed(frame[position:position + count])
            most = max(most, count)
        position += count
    assert position == len(frame) and reader.remaining == 0
    return b"".join(out), moved, most


SHAPES = {
    "one topic, one partition": [[batch(70_000, 1)]],
    "one topic, three partitions": [[batch(20_000, 2), batch(5, 3), batch(300_000, 4)]],
    "three topics": [[batch(1000, 5)], [batch(50_000, 6), None], [batch(2, 7), b"", batch(40_000, 8)]],
    "no records at all": [[None, b""]],
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("chunk", [1, 7, HEAD_READ, 1 << 20])
def test_the_frame_goes_out_as_the_client_sent_it_its_records_moved(version: int, shape: str, chunk: int) -> None:
    topics = SHAPES[shape]
    frame = produce_frame(version, topics)
    out, moved, _ = drive(frame, version, chunk)
    assert out == frame
    records = sum(len(b) for partitions in topics for b in partitions if b)
    read = len(frame) - moved
    runs = sum(1 for partitions in topics for b in partitions if b)
    assert read <= len(frame) - records + runs * HEAD_READ, "records are moved, at most a read's worth of each fed"
    reader = ProduceRequestReader(version, RESERVED)
    reader.feed(frame[:4])
    assert reader.remaining == len(frame) - 4


@pytest.mark.parametrize("version", VERSIONS)
def test_record_bytes_counts_every_partition(version: int) -> None:
    topics = SHAPES["three topics"]
    frame = produce_frame(version, topics)
    reader = ProduceRequestReader(version, RESERVED)
    position = 0
    while not reader.done:
        if reader.records_left:
            count = reader.records_left
            reader.moved(count)
        else:
            count = reader.want()
            reader.feed(frame[position:position + count])
        position += count
    assert reader.record_bytes == sum(len(b) for partitions in topics for b in partitions if b)


@pytest.mark.parametrize("version", [v for v in VERSIONS if v < 13])
@pytest.mark.parametrize("name", ["_gateway_test_members", "_gateway_test", "_gateway_test_readers"])
def test_a_reserved_name_stops_the_request_before_its_bytes_go_out(version: int, name: str) -> None:
    frame = produce_frame(version, [[batch(30_000, 1)], [batch(30_000, 2)]], names=["orders", name])
    reader = ProduceRequestReader(version, RESERVED)
    out: list[bytes] = []
    position = 0
    with pytest.raises(Reserved):
        while True:
            if reader.records_left:
                count = reader.records_left
                reader.moved(count)
            else:
                count = reader.want()
                out += reader.feed(frame[position:position + count])
            position += count
    assert name.encode() not in b"".join(out), "no byte of the reserved name went out"
    assert b"orders" in b"".join(out), "the topic before it did"


@pytest.mark.parametrize("known", [True, False])
def test_a_reserved_topic_id_stops_the_request(known: bool) -> None:
    names = ReservedNames.of("_gateway_test", "_gateway_test_members")
    names.learn_topic_id(uuid.UUID(int=2).bytes)  # the second topic's id (produce_body numbers them from 1)
    names.ids_known = known
    frame = produce_frame(13, [[batch(10_000, 1)], [batch(10_000, 2)]])
    with pytest.raises(Reserved):
        drive(frame, 13, HEAD_READ, names)
    names.topic_ids.clear()
    if known:
        assert drive(frame, 13, HEAD_READ, names)[0] == frame, "other ids pass once the reserved ones are known"
    else:
        with pytest.raises(Reserved):  # until the node knows its topics' ids, every id is refused
            drive(frame, 13, HEAD_READ, names)


def test_a_transactional_id_and_a_long_client_id_are_read_past() -> None:
    body = produce_body(9, [[batch(100_000, 1)]], transactional_id="tx-" + "t" * 5000)
    frame = request_frame(PRODUCE, 9, 3, body, client_id="c" * 3000)
    out, moved, most = drive(frame, 9, 1 << 20)
    assert out == frame and moved >= 100_000 - HEAD_READ


def flexible_frame(body: bytes, version: int = 9) -> bytes:
    """A Produce request of `version` whose body (after the header) is `body`, bytes as given."""
    payload = struct.pack(">hhih", PRODUCE, version, 9, 1) + b"c" + b"\0" + body
    return struct.pack(">i", len(payload)) + payload


def varint(value: int) -> bytes:
    out = bytearray()
    write_uvarint(out, value)
    return bytes(out)


HEAD = b"\0" + struct.pack(">hi", -1, 30000)  # a null transactional id, acks, timeout


def topic(name: bytes, partitions: bytes, count: int = 1) -> bytes:
    return varint(2) + varint(len(name) + 1) + name + varint(count + 1) + partitions


def test_unknown_tagged_fields_are_moved_unread() -> None:
    tag_value = batch(200_000, 9)
    partition = struct.pack(">i", 0) + varint(11) + batch(10, 1) + varint(1) + varint(7) + varint(len(tag_value)) \
        + tag_value
    frame = flexible_frame(HEAD + topic(b"orders", partition) + b"\0" + b"\0")
    out, moved, most = drive(frame, 9, 1 << 20)
    assert out == frame and moved > 190_000


def test_what_follows_the_last_records_moves_with_them_unread() -> None:
    """Tag sections (which can name nothing in a Produce request) and bytes after them: one run with the last
    records, even malformed (Kafka refuses those itself); records longer than the frame are still refused."""
    last = struct.pack(">i", 0) + varint(5_001) + batch(5_000, 1)
    frame = flexible_frame(HEAD + topic(b"orders", last) + b"\xff\xff\xff\xff\x0f" + batch(100, 2))
    out, moved, most = drive(frame, 9, 1 << 20)
    reader = ProduceRequestReader(9, RESERVED)
    reader.feed(frame[:HEAD_READ])
    assert out == frame and reader.records_left == len(frame) - HEAD_READ and reader.record_bytes == 5_000
    too_long = flexible_frame(HEAD + topic(b"orders", struct.pack(">i", 0) + varint(5_002) + batch(5_000, 1)))
    assert isinstance(first_error(too_long, 9, len(too_long)), WireError)


def test_bytes_after_the_last_field_are_moved_as_kafka_leaves_them() -> None:
    frame = produce_frame(9, [[batch(5_000, 1)]])
    tail = batch(50_000, 2)
    frame = struct.pack(">i", len(frame) - 4 + len(tail)) + frame[4:] + tail
    out, moved, _ = drive(frame, 9, 1 << 20)
    assert out == frame and moved >= 50_000


def first_error(frame: bytes, version: int, fed: int) -> Exception | None:
    """Feed the first `fed` bytes only (the rest never comes): the error raised, if any."""
    reader = ProduceRequestReader(version, RESERVED)
    try:
        position = 0
        while position < fed and not reader.done:
            if reader.records_left:
                return None
            count = min(reader.want(), fed - position)
            reader.feed(frame[position:position + count])
            position += count
    except (WireError, Reserved) as error:
        return error
    return None


LAST = struct.pack(">i", 1) + varint(3) + b"cd" + b"\0" + b"\0" + b"\0"  # a partition, its topic's and request's tags

HOSTILE = {
    # records longer than the frame: refused at their length, not waited for
    "records past the frame": HEAD + topic(b"orders", struct.pack(">i", 0) + varint(10_000_000)) + b"\0\0",
    # the 59-byte frame's shape: an array count far beyond the bytes
    "topic count past the frame": b"\0" + struct.pack(">hi", -1, 30000) + varint(0x7FFFFFF0),
    "partition count past the frame": HEAD + varint(2) + varint(7) + b"orders" + varint(0x7FFFFFF0),
    "null topic array": HEAD[:-1] + struct.pack(">i", 30000) + varint(0),
    "null topic name": HEAD + varint(2) + varint(0),
    "topic name longer than Kafka allows": HEAD + varint(2) + varint(40_000) + b"o" * 100,
    "transactional id past the frame": varint(20_000) + b"tx",
    "varint of six bytes": HEAD + b"\xff\xff\xff\xff\xff\x01",
    # (tag sections of a partition before the request's last records: those after them move unread)
    "tagged field of negative size": HEAD + topic(b"orders", struct.pack(">i", 0) + varint(3) + b"ab" + varint(1)
                                                  + varint(0) + b"\xff\xff\xff\xff\x0f" + LAST, count=2),
    "tagged field past the frame": HEAD + topic(b"orders", struct.pack(">i", 0) + varint(3) + b"ab" + varint(1)
                                                + varint(0) + varint(1 << 20) + LAST, count=2),
    "negative tag count": HEAD + topic(b"orders", struct.pack(">i", 0) + varint(3) + b"ab" + b"\xff\xff\xff\xff\x0f"
                                       + LAST, count=2),
    "a structure longer than its frame": HEAD + topic(b"orders", struct.pack(">i", 0) + varint(3) + b"ab", count=3),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_bytes_are_refused_as_soon_as_they_are_read(case: str) -> None:
    frame = flexible_frame(HOSTILE[case])
    error = first_error(frame, 9, len(frame))
    assert isinstance(error, WireError), f"{case}: {error!r}"
    with pytest.raises(WireError):  # with the bytes fed any way they come
        drive(frame, 9, 3)


def test_non_flexible_lengths_past_the_frame_are_refused() -> None:
    frame = produce_frame(8, [[batch(1000, 1)]])
    at = frame.index(batch(1000, 1)) - 4  # the records' int32 length
    hostile = frame[:at] + struct.pack(">i", 5_000_000) + frame[at + 4:]
    assert isinstance(first_error(hostile, 8, at + 4), WireError), "refused at the length, before any record byte"
    negative_count = frame[:frame.index(b"topic-0") - 2 - 4] + struct.pack(">i", -1) + frame[frame.index(b"topic-0") - 2:]
    assert isinstance(first_error(negative_count, 8, len(negative_count)), WireError)


def test_a_frame_that_ends_inside_a_field_is_refused_when_its_end_is_known() -> None:
    frame = produce_frame(9, [[batch(1000, 1)]])
    cut = frame.index(b"topic-0") + 3
    truncated = struct.pack(">i", cut - 4) + frame[4:cut]
    with pytest.raises(WireError):
        drive(truncated, 9, 1)


def test_the_reader_never_holds_more_than_a_piece() -> None:
    """A long tagged value or long records are never buffered: what the reader is fed at once stays small."""
    tag_value = batch(1 << 20, 3)
    partition = struct.pack(">i", 0) + varint(1 << 20) + batch((1 << 20) - 1, 4) + varint(1) + varint(5) \
        + varint(len(tag_value)) + tag_value
    frame = flexible_frame(HEAD + topic(b"orders", partition) + b"\0\0")
    out, moved, most = drive(frame, 9, 1 << 22)
    assert out == frame and most <= HEAD_READ


def test_feeding_past_the_frame_or_during_a_run_is_refused() -> None:
    frame = produce_frame(9, [[batch(10_000, 1)]])
    reader = ProduceRequestReader(9, RESERVED)
    reader.feed(frame[:HEAD_READ])
    assert reader.records_left
    with pytest.raises(ValueError):
        reader.feed(b"x")
    with pytest.raises(ValueError):
        reader.moved(reader.records_left + 1)
    with pytest.raises(ValueError):
        ProduceRequestReader(9, RESERVED).feed(frame + b"extra")

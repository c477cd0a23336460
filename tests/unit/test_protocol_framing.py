"""Frame splitting, request headers and size limits: pure logic, property-tested."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.schema.metadata.v12.request import MetadataRequest
from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.serial import entity_writer

from gateway_app.protocol.headers import MalformedFrame, frame_size, read_request_header
from gateway_app.proxy.framing import Decision, FrameStream

LIMIT = 4096


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


class Recorder:
    """Drives a FrameStream: passes frames whose first payload byte is even, collects the others."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.collected: list[bytes] = []
        self.decided = 0
        self.stream = FrameStream(LIMIT, 1, self.decide, self.out.extend, self.on_frame)

    def decide(self, prefix: memoryview, size: int) -> Decision:
        self.decided += 1
        if size == 0:
            return Decision.PASS
        return Decision.PASS if prefix[4] % 2 == 0 else Decision.COLLECT

    def on_frame(self, whole: bytearray) -> None:
        self.collected.append(bytes(whole))
        self.out.extend(whole)


payloads = st.lists(st.binary(min_size=0, max_size=600), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(payloads, st.lists(st.integers(0, 10_000), max_size=12))
def test_frames_survive_any_chunking_byte_for_byte(items: list[bytes], cuts: list[int]) -> None:
    data = b"".join(frame(p) for p in items)
    recorder = Recorder()
    for chunk in chunked(data, cuts):
        recorder.stream.feed(chunk)
    assert bytes(recorder.out) == data
    assert recorder.decided == len(items)
    assert recorder.collected == [frame(p) for p in items if p and p[0] % 2]
    assert recorder.stream.at_boundary()


@settings(max_examples=300, deadline=None)
@given(payloads, st.lists(st.integers(0, 10_000), max_size=12))
def test_pending_is_the_rest_of_the_current_frame(items: list[bytes], cuts: list[int]) -> None:
    """pending() drives the socket's read low-water mark: it must never exceed what the frame still owes."""
    data = b"".join(frame(p) for p in items)
    ends = [sum(4 + len(p) for p in items[:i + 1]) for i in range(len(items))]
    recorder, fed = Recorder(), 0
    for chunk in chunked(data, cuts):
        recorder.stream.feed(chunk)
        fed += len(chunk)
        owed = next((end - fed for end in ends if end > fed), 0)
        frame_start = max([0] + [end for end in ends if end <= fed])
        size_known = fed - frame_start >= 4
        assert recorder.stream.pending() == (owed if size_known else 0)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=2000), st.lists(st.integers(0, 10_000), max_size=8))
def test_garbage_only_ever_raises_malformed_frame(data: bytes, cuts: list[int]) -> None:
    recorder = Recorder()
    try:
        for chunk in chunked(data, cuts):
            recorder.stream.feed(chunk)
    except MalformedFrame as error:
        assert error.reason in {"negative_size", "oversized"}


@pytest.mark.parametrize(("size", "reason"), [(-1, "negative_size"), (LIMIT + 1, "oversized")])
def test_frame_size_limits(size: int, reason: str) -> None:
    with pytest.raises(MalformedFrame) as raised:
        frame_size(struct.pack(">i", size), LIMIT)
    assert raised.value.reason == reason
    assert frame_size(struct.pack(">i", LIMIT), LIMIT) == LIMIT


def encoded_request(header: object, body: object) -> memoryview:
    buffer = io.BytesIO()
    entity_writer(type(header))(buffer, header)
    entity_writer(type(body))(buffer, body)
    return memoryview(buffer.getvalue())


def test_flexible_request_header_with_tags_and_client_id() -> None:
    header = RequestHeaderV2(request_api_key=3, request_api_version=12, correlation_id=77, client_id="rdkafka")
    body = MetadataRequest(topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False)
    data = encoded_request(header, body)
    api_key, api_version, correlation_id, body_offset = read_request_header(data)
    assert (api_key, api_version, correlation_id) == (3, 12, 77)
    assert body_offset == 8 + 2 + len("rdkafka") + 1  # fixed fields, client id, an empty tag section
    written = io.BytesIO()
    entity_writer(type(body))(written, body)
    assert bytes(data[body_offset:]) == written.getvalue()  # the body as it was written


def test_legacy_request_header_and_unknown_versions() -> None:
    header = RequestHeaderV1(request_api_key=18, request_api_version=2, correlation_id=5, client_id=None)
    assert read_request_header(memoryview(encoded_request(header, header)[:10])) == (18, 2, 5, 10)
    unknown = read_request_header(memoryview(struct.pack(">hhih", 3, 99, 1, -1)))
    assert unknown[3] is None  # relayed by correlation id alone


@pytest.mark.parametrize("data", [b"\x00\x03\x00", struct.pack(">hhih", 3, 1, 1, 50) + b"short", struct.pack(">hhih", -1, 0, 1, -1)])
def test_bad_request_headers(data: bytes) -> None:
    with pytest.raises(MalformedFrame):
        read_request_header(memoryview(data))


def test_non_utf8_client_id_is_tolerated_like_kafka() -> None:
    assert read_request_header(memoryview(struct.pack(">hhih", 18, 0, 1, 2) + b"\xff\xfe")) == (18, 0, 1, 12)


class RewritingRecorder:
    """Responses as the connection handles them (frames_as_views): frames whose first payload byte is 1 are
    rewritten (payload reversed, emitted in two chunks), those starting 3 are answered out of turn (flush, then a
    write of its own, as refusals are), other odd ones go out unchanged (on_frame returns True), even ones pass.
    Every sink or sink_lines call is one write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.stream = FrameStream(LIMIT, 1, self.decide, self.write, self.on_frame, frames_as_views=True,
                                  sink_lines=self.write_lines)

    def write(self, chunk) -> None:
        self.writes.append(bytes(chunk))

    def write_lines(self, chunks) -> None:
        self.writes.append(b"".join(chunks))

    def decide(self, prefix: memoryview, size: int) -> Decision:
        return Decision.PASS if size == 0 or prefix[4] % 2 == 0 else Decision.COLLECT

    def on_frame(self, whole) -> bool:
        if whole[4] == 1:
            reversed_frame = frame(bytes(whole[4:])[::-1])
            self.stream.emit([reversed_frame[:4], reversed_frame[4:]])
            return False
        if whole[4] == 3:
            self.stream.flush()
            self.write(bytes(whole))
            return False
        return True


def rewritten(payload: bytes) -> bytes:
    return frame(payload[::-1] if payload and payload[0] == 1 else payload)


@settings(max_examples=300, deadline=None)
@given(payloads, st.lists(st.integers(0, 10_000), max_size=12))
def test_rewritten_frames_keep_their_place_among_frames_written_together(items: list[bytes], cuts: list[int]) -> None:
    recorder = RewritingRecorder()
    for chunk in chunked(b"".join(frame(p) for p in items), cuts):
        recorder.stream.feed(chunk)
    assert b"".join(recorder.writes) == b"".join(rewritten(p) for p in items)


def test_pipelined_frames_read_at_once_are_written_at_once() -> None:
    """Five passing frames and an unchanged collected one in one read: one write, not six (one send() each)."""
    items = [bytes([2, n]) for n in range(3)] + [bytes([7, 9])] + [bytes([4, n]) for n in range(2)]
    data = b"".join(frame(p) for p in items)
    recorder = RewritingRecorder()
    recorder.stream.feed(data)
    assert recorder.writes == [data]


def test_a_rewritten_frame_joins_the_write_around_it() -> None:
    items = [b"\x02a", b"\x01bc", b"\x02d"]
    recorder = RewritingRecorder()
    recorder.stream.feed(b"".join(frame(p) for p in items))
    assert recorder.writes == [frame(b"\x02a") + frame(b"cb\x01") + frame(b"\x02d")]


def test_a_frame_answered_out_of_turn_comes_after_what_passed_before_it() -> None:
    items = [b"\x02a", b"\x03b", b"\x02c"]
    recorder = RewritingRecorder()
    recorder.stream.feed(b"".join(frame(p) for p in items))
    assert recorder.writes == [frame(b"\x02a"), frame(b"\x03b"), frame(b"\x02c")]


class Detacher(Recorder):
    """Detaches every frame whose first payload byte is 0xDD: the owner moves it (here: takes it from the detached
    bytes) and feeds the stream again from its end."""

    def __init__(self) -> None:
        super().__init__()
        self.moved: list[bytes] = []

    def decide(self, prefix: memoryview, size: int) -> Decision:
        if size and prefix[4] == 0xDD:
            return Decision.DETACH
        return super().decide(prefix, size)

    def feed(self, chunk: bytes, rest: list[bytes]) -> None:
        self.stream.feed(chunk)
        detached = self.stream.take_detached()
        if detached is None:
            return
        whole = detached + b"".join(rest)  # the owner reads the rest of the frame itself
        rest.clear()
        end = 4 + struct.unpack_from(">i", whole)[0]
        self.moved.append(whole[:end])
        self.out.extend(whole[:end])
        if whole[end:]:
            self.feed(whole[end:], rest)


@settings(max_examples=300, deadline=None)
@given(payloads, st.lists(st.booleans(), min_size=8, max_size=8), st.lists(st.integers(0, 10_000), max_size=12))
def test_detached_frames_leave_the_stream_and_the_frames_around_them_stay_in_order(
        items: list[bytes], detach: list[bool], cuts: list[int]) -> None:
    items = [b"\xdd" + p if d else p.lstrip(b"\xdd") for p, d in zip(items, detach)]
    data = b"".join(frame(p) for p in items)
    detacher = Detacher()
    chunks = chunked(data, cuts)
    while chunks:
        detacher.feed(chunks.pop(0), chunks)
    assert bytes(detacher.out) == data
    assert detacher.moved == [frame(p) for p in items if p[:1] == b"\xdd"]
    assert detacher.stream.at_boundary() and detacher.stream.take_detached() is None

"""proxy.splice.ClientReading on real sockets, under uvloop and asyncio: a client, a gateway pair and a stand-in broker
on loopback. Produce requests large enough reach the broker byte for byte with their records spliced (never read into
the gateway's memory), pipelined with other requests; a request that names a reserved topic is refused as it always
was, whatever its size; acks=0 requests take no response slot; bytes Kafka would refuse close the pair; TLS pairs and
GATEWAY_SPLICE=false keep the copying path."""

from __future__ import annotations

import asyncio
import struct

import pytest

from gateway_app.close_reasons import CloseReason
from gateway_app.protocol.api_keys import PRODUCE
from gateway_app.protocol.codec import decode, encode
from gateway_app.protocol.message_specs import REQUEST, RESPONSE, spec
from gateway_app.protocol.policy import POLICIES
from gateway_app.proxy import connection
from gateway_app.proxy.connection import PRODUCE_SPLICE_MIN_BYTES, ConnectionPair
from gateway_app.protocol.produce_stream import HEAD_READ
from gateway_app.proxy.framing import HEAD_LIMIT
from gateway_app.proxy.splice import PIPES, READ_SIZE, REQUEST_HEAD_READ
from gateway_app.metrics import Metrics
from lab.frames import request_frame
from tests.unit.test_produce_stream import batch, produce_body
from tests.unit.test_splice import LOOPS, gateway, heartbeat, read_frames

RESERVED_TOPIC = "_gateway_test_members"  # test_splice.gateway's reserved names
SMALL_THRESHOLD = 32 * 1024


@pytest.fixture(autouse=True)
def splice_from_32_kib(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mechanics at sizes cheap to send: requests of 32 KiB on are spliced here (the node's threshold is where
    splicing starts to cost less CPU than copying, test_the_threshold_is_the_nodes shows it applies)."""
    monkeypatch.setattr(connection, "PRODUCE_SPLICE_MIN_BYTES", SMALL_THRESHOLD)


def produce(version: int, correlation_id: int, topics: list[list[bytes | None]], **kwargs) -> bytes:
    return request_frame(PRODUCE, version, correlation_id, produce_body(version, topics, **kwargs))


def produce_answer(version: int, correlation_id: int) -> bytes:
    body = encode(spec(RESPONSE, PRODUCE, version), {})
    header = struct.pack(">i", correlation_id) + (b"\0" if version >= 9 else b"")
    return struct.pack(">i", len(header) + len(body)) + header + body


class RecordingBroker:
    """Keeps every request frame it reads; answers each in order (a Produce with an empty Produce response, any other
    request with an empty body), except Produce requests with acks=0."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.closed = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(4)
                request = await reader.readexactly(struct.unpack(">i", head)[0])
                self.received.append(head + request)
                api_key, version, correlation_id = struct.unpack_from(">hhi", request)
                if api_key == PRODUCE:
                    body, _ = decode(spec(REQUEST, PRODUCE, version), memoryview(request), body_offset(request))
                    if body["acks"] == 0:
                        continue
                    writer.write(produce_answer(version, correlation_id))
                else:
                    writer.write(struct.pack(">iih", 6, correlation_id, 0))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            self.closed.set()


def body_offset(request: bytes) -> int:
    (client_id,) = struct.unpack_from(">h", request, 8)
    flexible = struct.unpack_from(">h", request, 2)[0] >= 9
    return 10 + max(client_id, 0) + (1 if flexible else 0)


class Relay:
    """A stand-in broker, a gateway and a client connection whose first request (a heartbeat) was answered: the broker
    connection is up before the requests under test."""

    async def __aenter__(self) -> "Relay":
        self.broker = RecordingBroker()
        self._broker_server = await asyncio.start_server(self.broker.handle, "127.0.0.1", 0)
        self._server, self._pairs, self.metrics = await gateway(self._broker_server.sockets[0].getsockname()[1],
                                                                self.splice, self.client_tls)
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1",
                                                                 self._server.sockets[0].getsockname()[1])
        self.writer.write(heartbeat(100))
        await read_frames(self.reader, 1)
        return self

    def __init__(self, splice: bool = True, client_tls: bool = False) -> None:
        self.splice, self.client_tls = splice, client_tls

    @property
    def pair(self) -> ConnectionPair:
        (pair,) = self._pairs
        return pair

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()
        self._server.close()
        self._broker_server.close()
        await asyncio.sleep(0.05)


async def relay(requests: list[bytes], answered: int, splice: bool = True, client_tls: bool = False,
                piece: int | None = None) -> tuple[list[bytes], RecordingBroker, ConnectionPair, Metrics]:
    """Send `requests` (all at once, or `piece` bytes at a time), read `answered` responses; what the client read,
    the broker, the pair and the metrics."""
    async with Relay(splice, client_tls) as relayed:
        data = b"".join(requests)
        for start in range(0, len(data), piece or len(data)):
            relayed.writer.write(data[start:start + (piece or len(data))])
            await relayed.writer.drain()
            await asyncio.sleep(0)
        frames = await asyncio.wait_for(read_frames(relayed.reader, answered), 20)
    return frames, relayed.broker, relayed.pair, relayed.metrics


def mixed() -> tuple[list[bytes], int]:
    """Pipelined requests: large Produce requests of every flexibility and with topic ids, an acks=0 one, small
    ones between; the record bytes of those spliced."""
    requests = [
        produce(9, 1, [[batch(10_000, 1)], [batch(300_000, 2), batch(50_000, 3)]]),  # every name in the head
        heartbeat(2),
        produce(13, 3, [[batch(100_000, 4)]]),
        produce(8, 4, [[None, batch(40_000, 5)], [batch(2_000_000, 6)]]),  # v8: not flexible
        produce(11, 5, [[batch(200_000, 7)]], acks=0),  # no response
        produce(9, 6, [[batch(100_000, 8)], [batch(20_000, 9)]]),  # a name past the head: held whole, as before
        heartbeat(7),
        produce(9, 8, [[batch(64, 10)]]),  # small: copied
    ]
    return requests, 10_000 + 300_000 + 50_000 + 100_000 + 40_000 + 2_000_000 + 200_000


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("splice", [True, False])
def test_produce_requests_reach_the_broker_as_the_client_sent_them(loop: str, splice: bool) -> None:
    requests, records = mixed()
    frames, broker, pair, metrics = LOOPS[loop]().run_until_complete(relay(requests, len(requests) - 1, splice))
    assert broker.received[1:] == requests, "every request, byte for byte, in order"
    assert [struct.unpack_from(">i", f, 4)[0] for f in frames] == [1, 2, 3, 4, 6, 7, 8], "acks=0 is not answered"
    spliced = metrics.spliced_produce_bytes._value.get()
    if splice:
        # read into memory: the transport's read that met the first large request (the transport reads for no
        # splice), the v8 request's head (its second name is 40 kB in), a head read and a partition header's read
        assert 0 < records - spliced <= READ_SIZE + HEAD_LIMIT + 6 * (REQUEST_HEAD_READ + HEAD_READ)
        assert pair._client_reading is not None and not pair._client_reading.busy
        assert pair._client_reading._pipe is None, "between requests a pair holds no pipe"
    else:
        assert spliced == 0 and pair._client_reading is None
    assert metrics.api(PRODUCE).request_bytes == sum(len(r) for r in requests if r[4:6] == b"\0\0")
    assert not pair.in_flight, "the acks=0 request left no slot"


@pytest.mark.parametrize("loop", LOOPS)
def test_a_produce_request_that_trickles_in_is_spliced_whole(loop: str) -> None:
    requests = [produce(9, 1, [[batch(500_000, 1)]]), heartbeat(2), produce(10, 3, [[batch(90_000, 2)]])]
    frames, broker, _, metrics = LOOPS[loop]().run_until_complete(relay(requests, 3, piece=7_001))
    assert broker.received[1:] == requests
    assert metrics.spliced_produce_bytes._value.get() > 500_000


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("version", [8, 9, 12])
@pytest.mark.parametrize("names", [["orders", RESERVED_TOPIC], [RESERVED_TOPIC, "orders"]])
def test_a_spliced_size_produce_naming_a_reserved_topic_is_refused_and_never_relayed(loop: str, version: int,
                                                                                   names: list[str]) -> None:
    """Its name past the request's head (the request is held whole, as before) or in it."""
    hostile = produce(version, 1, [[batch(100_000, 1)], [batch(150_000, 2)]], names=names)
    assert len(hostile) > SMALL_THRESHOLD
    later = produce(version, 3, [[batch(200_000, 3)]])
    frames, broker, pair, metrics = LOOPS[loop]().run_until_complete(relay([hostile, heartbeat(2), later], 3))
    refusal, _, answer = frames
    body, _ = decode(spec(RESPONSE, PRODUCE, version), memoryview(refusal), 8 + (1 if version >= 9 else 0))
    errors = {p["error_code"] for t in body["responses"] for p in t["partition_responses"]}
    assert errors == {29}, "TOPIC_AUTHORIZATION_FAILED, as a broker that denies it answers"
    assert all(RESERVED_TOPIC.encode() not in frame for frame in broker.received), "no byte of it reached the broker"
    assert broker.received[1:] == [heartbeat(2), later], "the connection goes on; the next request is relayed"
    assert metrics.reserved_refused.labels("produce", "topic")._value.get() == 1
    assert metrics.spliced_produce_bytes._value.get() > 0, "the later request was spliced (what the transport had not read)"


@pytest.mark.parametrize("loop", LOOPS)
def test_records_that_run_past_the_frame_close_the_pair(loop: str) -> None:
    async def run() -> tuple[RecordingBroker, ConnectionPair, Metrics]:
        good = produce(9, 1, [[batch(100_000, 1), batch(100_000, 2)]])  # one name: checked at the head, spliced
        at = good.index(batch(100_000, 2)) - 3  # the second partition's records' length (a 3-byte varint)
        hostile = good[:at] + b"\xff\xff\xff\x7f" + good[at + 3:]  # a length far past the frame's end
        hostile = struct.pack(">i", len(hostile) - 4) + hostile[4:]
        async with Relay() as relayed:
            relayed.writer.write(hostile)
            try:
                assert await asyncio.wait_for(relayed.reader.read(), 10) == b"", "the gateway closed the connection"
            except ConnectionResetError:
                pass  # aborted: as a malformed frame's pair always was
            await asyncio.wait_for(relayed.broker.closed.wait(), 10)
        return relayed.broker, relayed.pair, relayed.metrics

    broker, pair, metrics = LOOPS[loop]().run_until_complete(run())
    assert pair.closed
    assert metrics.malformed_frames.labels(CloseReason.BAD_REQUEST)._value.get() == 1
    assert len(broker.received) == 1, "the broker read no whole frame of it"
    assert pair._client_reading.closed and pair._client_reading._pipe is None


@pytest.mark.parametrize("loop", LOOPS)
def test_a_spliced_size_produce_at_a_version_past_the_policy_is_closed_unread(loop: str) -> None:
    """A client (newer, or hostile) sends a Produce version the gateway's schemas stop short of: the pair closes at
    its header, as for any API version not relayed, before any name is read or byte spliced."""
    newest = POLICIES[PRODUCE].max_version
    known = produce(newest, 1, [[batch(200_000, 1)]])
    newer = known[:6] + struct.pack(">h", newest + 1) + known[8:]  # the header's api_version, nothing else changed

    async def run() -> tuple[RecordingBroker, ConnectionPair, Metrics]:
        async with Relay() as relayed:
            relayed.writer.write(newer)
            try:
                assert await asyncio.wait_for(relayed.reader.read(), 10) == b"", "the gateway closed the connection"
            except ConnectionResetError:
                pass  # aborted, as a malformed frame's pair is
            return relayed.broker, relayed.pair, relayed.metrics

    broker, pair, metrics = LOOPS[loop]().run_until_complete(run())
    assert pair.closed and pair._client_reading is None, "closed before a splice began"
    assert metrics.malformed_frames.labels(CloseReason.API_NOT_ALLOWED)._value.get() == 1
    assert metrics.spliced_produce_bytes._value.get() == 0
    assert all(batch(200_000, 1) not in frame for frame in broker.received), "no record of it reached the broker"


@pytest.mark.parametrize("loop", LOOPS)
def test_a_tls_client_connection_copies_produce_requests(loop: str) -> None:
    requests = [produce(9, 1, [[batch(300_000, 1)]])]
    frames, broker, pair, metrics = LOOPS[loop]().run_until_complete(relay(requests, 1, client_tls=True))
    assert broker.received[1:] == requests
    assert metrics.spliced_produce_bytes._value.get() == 0 and pair._client_reading is None


def test_pipes_come_back_to_the_pool() -> None:
    in_use = PIPES.in_use
    LOOPS["uvloop"]().run_until_complete(relay(mixed()[0], len(mixed()[0]) - 1))
    assert PIPES.in_use == in_use


@pytest.mark.parametrize("loop", LOOPS)
def test_a_spliced_request_that_stops_mid_frame_runs_the_frame_deadline(loop: str) -> None:
    """The pair's FrameStream is at a boundary while the splice moves a request: the frame deadline (server.sweep
    reads requests.started) must run all the same, and the pair is not idle."""
    async def run() -> tuple[float | None, bool, bool, bool, float | None]:
        async with Relay() as relayed:
            frame = produce(9, 1, [[batch(500_000, 1)]], acks=0)  # acks=0: nothing in flight, so only busy says so
            relayed.writer.write(frame[:200_000])
            await asyncio.sleep(0.3)
            pair = relayed.pair
            stalled = pair.requests.started, pair._client_reading.busy, pair.idle(), pair.reading_paused()
            relayed.writer.write(frame[200_000:])
            relayed.writer.write(heartbeat(2))
            await read_frames(relayed.reader, 1)
            return (*stalled, pair.requests.started)

    started, busy, idle, paused, after = LOOPS[loop]().run_until_complete(run())
    assert started is not None and busy and not idle and not paused
    assert after is None, "the deadline stops with the frame"


@pytest.mark.parametrize("loop", LOOPS)
def test_the_threshold_is_the_nodes(loop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the node's own threshold: a request just below it is copied, one at it spliced."""
    monkeypatch.setattr(connection, "PRODUCE_SPLICE_MIN_BYTES", PRODUCE_SPLICE_MIN_BYTES)
    below = produce(9, 1, [[batch(PRODUCE_SPLICE_MIN_BYTES - 200, 1)]])
    at = produce(9, 2, [[batch(PRODUCE_SPLICE_MIN_BYTES, 2)]])
    assert len(below) - 4 < PRODUCE_SPLICE_MIN_BYTES <= len(at) - 4
    frames, broker, pair, metrics = LOOPS[loop]().run_until_complete(relay([below, heartbeat(3), at], 3, piece=1024))
    assert broker.received[1:] == [below, heartbeat(3), at]
    spliced = metrics.spliced_produce_bytes._value.get()
    # none of the first request's records (copied), the second's but what the transport's read of its head found
    assert PRODUCE_SPLICE_MIN_BYTES - READ_SIZE <= spliced <= PRODUCE_SPLICE_MIN_BYTES

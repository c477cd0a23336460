"""proxy.splice on real sockets, under uvloop (the node's default loop) and asyncio: a client, a gateway pair and a
stand-in broker on loopback. Fetch responses reach the client byte for byte (record sets spliced, KIP-951 endpoints
rewritten in a tag section of the same size), pipelined with other responses; a client that stops reading stops the
broker's socket being read (no memory grows); TLS pairs and GATEWAY_SPLICE=false keep the copying path."""

from __future__ import annotations

import asyncio
import os
import select
import socket
import struct
from dataclasses import replace

import pytest
import uvloop
from prometheus_client import generate_latest

from gateway_app.broker_addresses import BrokerInfo, PortPlan
from gateway_app.cluster.topology import StaticTopology
from gateway_app.metrics import Metrics
from gateway_app.protocol.api_keys import FETCH
from gateway_app.protocol.kio_adapter import load_response_schema
from gateway_app.protocol.reserved import ReservedNames
from gateway_app.protocol.schema_walk import read_tags, tag_section_offsets
from gateway_app.proxy.connection import FETCH_FIRST_READ, ClientProtocol, ConnectionPair, ReadLowWater, Rules
from gateway_app.proxy.directory import BrokerDirectory
from gateway_app.proxy.incidents import Incidents
from gateway_app.proxy.routes import Routes
from gateway_app.proxy.splice import PIPE_SIZE, PIPES, READ_SIZE, TURN_BYTES, BrokerReading, Pipes, reader_for
from lab.frames import fetch_request, request_frame
from tests.unit.test_fetch_stream import fetch_response, frame_of, records
from tests.unit.test_protocol_rewrite import nested, sample

LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}
GATEWAY_HOST = "198.18.0.9"


def heartbeat(correlation_id: int) -> bytes:
    return request_frame(12, 0, correlation_id, {"group_id": "g", "generation_id": 1, "member_id": "m"})


def fetch_answer(version: int, correlation_id: int, size: int, endpoint_host: str | None = None) -> bytes:
    message = fetch_response(version, [[records(size, correlation_id), None], [records(size // 3, 1)]])
    if endpoint_host is not None:
        endpoint = nested(load_response_schema(FETCH, version), "node_endpoints")
        message = replace(message, node_endpoints=(sample(endpoint, node_id=2, host=endpoint_host, port=9092,
                                                          rack="rack-b"),))
    return frame_of(message, correlation_id)


class Broker:
    """Answers each request in order: a Fetch with `answers[correlation id]`, anything else with an empty body."""

    def __init__(self, answers: dict[int, bytes]) -> None:
        self.answers = answers
        self.server: asyncio.AbstractServer | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = struct.unpack(">i", await reader.readexactly(4))[0]
                request = await reader.readexactly(size)
                correlation_id = struct.unpack_from(">i", request, 4)[0]
                answer = self.answers.get(correlation_id) or struct.pack(">iih", 6, correlation_id, 0)
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def gateway(broker_port: int, splice: bool = True, client_tls: bool = False
                  ) -> tuple[asyncio.AbstractServer, list[ConnectionPair], Metrics]:
    metrics = Metrics()
    directory = BrokerDirectory({}, (), 1.0)
    directory.described([BrokerInfo(1, "127.0.0.1", broker_port, "rack-a")])
    routes = Routes(StaticTopology(PortPlan(6969, 1, 8), GATEWAY_HOST), directory, metrics)
    rules = Rules(max_frame_bytes=64 << 20, max_in_flight=500, max_assembled_bytes=1 << 20,
                  reserved=ReservedNames.of("_gateway_test", "_gateway_test_members"), splice=splice,
                  client_tls=client_tls)
    pairs: list[ConnectionPair] = []

    def protocol() -> ClientProtocol:
        pair = ConnectionPair(routes, rules, Incidents(metrics), 6970, "test")  # broker 1's port
        pairs.append(pair)
        return ClientProtocol(pair)

    server = await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", 0)
    return server, pairs, metrics


async def read_frames(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    frames = []
    for _ in range(count):
        head = await reader.readexactly(4)
        frames.append(head + await reader.readexactly(struct.unpack(">i", head)[0]))
    return frames


def endpoints_in(frame: bytes, version: int) -> list[tuple[int, str, int]]:
    body = memoryview(frame[4 + 4 + 1:])  # size, correlation id, header tags
    start, end = tag_section_offsets(load_response_schema(FETCH, version), body)
    tags, _ = read_tags(body[start:end], 0)
    found = []
    for tag, value in tags:
        if tag == 0:
            schema = load_response_schema(FETCH, version)
            field = schema.__dataclass_fields__["node_endpoints"]
            from gateway_app.protocol.kio_adapter import get_field_reader
            endpoints, _ = get_field_reader(schema, field, False, True)(value.toreadonly(), 0)
            found = [(e.node_id, e.host, int(e.port)) for e in endpoints]
    return found


async def relay_mixed(splice: bool) -> tuple[list[bytes], dict[int, bytes], ConnectionPair, Metrics, bool]:
    """The frames the client read, the broker's answers, the pair, its metrics, and whether the pair held a pipe
    once every frame was out (before it closed)."""
    answers = {
        1: fetch_answer(16, 1, 2_000_000, endpoint_host="broker-host.example"),  # shorter rewritten: padded
        3: fetch_answer(11, 3, 300_000),  # before KIP-951: the whole frame moved
        4: fetch_answer(17, 4, 50),
        5: fetch_answer(18, 5, 5_000_000),
    }
    broker = Broker(answers)
    broker_server = await asyncio.start_server(broker.handle, "127.0.0.1", 0)
    server, pairs, metrics = await gateway(broker_server.sockets[0].getsockname()[1], splice)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    requests = [fetch_request(16, 1), heartbeat(2), fetch_request(11, 3), fetch_request(17, 4), fetch_request(18, 5),
                heartbeat(6)]
    writer.write(b"".join(requests))
    frames = await asyncio.wait_for(read_frames(reader, len(requests)), 20)
    (pair,) = pairs
    held_pipe = pair._broker_reading is not None and pair._broker_reading._pipe is not None
    writer.close()
    server.close()
    broker_server.close()
    await asyncio.sleep(0.05)
    return frames, answers, pair, metrics, held_pipe


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("splice", [True, False])
def test_fetch_responses_reach_the_client_as_the_broker_sent_them(loop: str, splice: bool) -> None:
    frames, answers, pair, metrics, held_pipe = LOOPS[loop]().run_until_complete(relay_mixed(splice))
    assert [struct.unpack_from(">i", f, 4)[0] for f in frames] == [1, 2, 3, 4, 5, 6]
    assert frames[2] == answers[3] and frames[3] == answers[4] and frames[4] == answers[5]
    assert endpoints_in(frames[0], 16) == [(2, GATEWAY_HOST, 6971)], "the endpoints point at the gateway"
    tags_at = len(answers[1]) - 60
    assert frames[0][4:tags_at] == answers[1][4:tags_at], "all before the tag section as the broker sent it"
    if splice:
        assert len(frames[0]) == len(answers[1]), "spliced: the size went out before the endpoints were read"
    else:
        assert len(frames[0]) < len(answers[1]), "copied: the frame is rebuilt at its new size"
    spliced = metrics.spliced_bytes._value.get()
    if splice:
        # at most one read's worth of a frame is read into user space: the read that found its start
        assert spliced >= sum(len(answers[c]) for c in (1, 3, 4, 5)) - 4 * READ_SIZE
        assert metrics.endpoints_in_place.labels("padded")._value.get() == 1
        assert not held_pipe, "between frames a pair holds no pipe"
    else:
        assert spliced == 0 and pair._broker_reading is None
    assert metrics.api(FETCH).response_bytes == sum(len(answers[c]) for c in (1, 3, 4, 5))
    assert not pair.in_flight


async def stalled_client() -> tuple[int, int, bool, bytes, bytes]:
    size = 30_000_000
    answer = fetch_answer(17, 1, size)
    broker_server = await asyncio.start_server(Broker({1: answer}).handle, "127.0.0.1", 0)
    server, pairs, _ = await gateway(broker_server.sockets[0].getsockname()[1])
    client = socket.create_connection(server.sockets[0].getsockname()[:2])
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    client.setblocking(False)
    client.send(fetch_request(17, 1))
    await asyncio.sleep(1.0)  # the client reads nothing meanwhile
    (pair,) = pairs
    reading = pair._broker_reading
    held = len(reading._pending) + reading._in_pipe
    assert reading._pipe is not None and PIPES.in_use >= 1, "a frame under way holds its pipe"
    paused = pair.write_paused_since is not None
    received = bytearray()
    while len(received) < len(answer):
        try:
            chunk = client.recv(1 << 20)
        except BlockingIOError:
            await asyncio.sleep(0.001)
            continue
        assert chunk
        received += chunk
    client.close()
    server.close()
    broker_server.close()
    await asyncio.sleep(0.05)
    return held, size, paused, bytes(received), answer


@pytest.mark.parametrize("loop", LOOPS)
def test_a_client_that_does_not_read_stops_the_broker_being_read(loop: str) -> None:
    held, size, paused, received, answer = LOOPS[loop]().run_until_complete(stalled_client())
    assert held <= PIPE_SIZE + 4096, "no more than a pipe's worth waits in the gateway"
    assert paused, "the client-not-reading deadline runs"
    assert received == answer


def test_pipes_are_reused_empty_kept_to_a_few_and_never_reused_holding_bytes() -> None:
    pipes = Pipes(size=64 * 1024, idle_kept=2)
    first, second, third = pipes.take(), pipes.take(), pipes.take()
    assert pipes.in_use == 3
    pipes.give(first, empty=True)
    assert pipes.take() == first, "an empty pipe is taken again rather than a new one made"
    os.write(second[1], b"left by a pair that closed mid-frame")
    pipes.give(second, empty=False)
    with pytest.raises(OSError):
        os.fstat(second[0])  # closed
    for pipe in (first, third):
        pipes.give(pipe, empty=True)
    extra = pipes.take(), pipes.take(), pipes.take()
    for pipe in extra:
        pipes.give(pipe, empty=True)
    assert pipes.in_use == 0 and len(pipes._idle) == 2, "no more than idle_kept wait"
    for pipe in pipes._idle:
        os.close(pipe[0]), os.close(pipe[1])


def test_the_pool_is_reported_pipes_under_way_and_pipes_refused_their_size() -> None:
    pipes = Pipes(size=(1 << 31) - 1, idle_kept=2)  # above any fs.pipe-max-size: the kernel refuses it, even to root
    metrics = Metrics()
    refused_before = pipes.take()
    pipes.report_to(metrics.splice_pipes_in_use, metrics.splice_pipes_undersized)
    taken = pipes.take(), refused_before
    scraped = generate_latest(metrics.registry).decode()
    assert "gateway_splice_pipes_in_use 2.0" in scraped
    assert "gateway_splice_pipes_undersized_total 2.0" in scraped, "each refused pipe counted, before and after"
    for pipe in taken:
        pipes.give(pipe, empty=True)
    scraped = generate_latest(metrics.registry).decode()
    assert "gateway_splice_pipes_in_use 0.0" in scraped and "gateway_splice_pipes_undersized_total 2.0" in scraped
    for pipe in pipes._idle:
        os.close(pipe[0]), os.close(pipe[1])


@pytest.mark.parametrize("loop", LOOPS)
def test_a_tls_client_connection_copies(loop: str) -> None:
    async def run() -> ConnectionPair:
        broker_server = await asyncio.start_server(Broker({}).handle, "127.0.0.1", 0)
        server, pairs, _ = await gateway(broker_server.sockets[0].getsockname()[1], client_tls=True)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        writer.write(heartbeat(1))
        await read_frames(reader, 1)
        writer.close()
        server.close()
        broker_server.close()
        return pairs[0]

    pair = LOOPS[loop]().run_until_complete(run())
    assert pair._broker_reading is None and pair.upstream is not None


class CutBroker(Broker):
    """Answers the first request with `answer` cut after `keep` bytes, then closes."""

    def __init__(self, answer: bytes, keep: int) -> None:
        super().__init__({})
        self.answer, self.keep = answer, keep

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = struct.unpack(">i", await reader.readexactly(4))[0]
        await reader.readexactly(size)
        writer.write(self.answer[:self.keep])
        await writer.drain()
        writer.close()


async def cut_answer(answer: bytes, keep: int) -> tuple[ConnectionPair, Metrics, bytes]:
    broker_server = await asyncio.start_server(CutBroker(answer, keep).handle, "127.0.0.1", 0)
    server, pairs, metrics = await gateway(broker_server.sockets[0].getsockname()[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    writer.write(fetch_request(17, 1))
    received = await asyncio.wait_for(reader.read(), 10)  # until the gateway closes the connection
    writer.close()
    server.close()
    broker_server.close()
    return pairs[0], metrics, received


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("keep", [100, 1_000_000])
def test_a_broker_that_closes_inside_a_spliced_frame_closes_the_pair(loop: str, keep: int) -> None:
    answer = fetch_answer(17, 1, 3_000_000)
    pair, metrics, received = LOOPS[loop]().run_until_complete(cut_answer(answer, keep))
    assert pair.closed and pair._broker_reading.closed
    assert metrics.upstream_errors.labels("broker_closed")._value.get() == 1
    assert received == answer[:len(received)] and len(received) <= keep


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("size", [5000, 50_000])  # read whole and copied; spliced
def test_a_fetch_response_that_does_not_match_its_schema_closes_the_pair(loop: str, size: int) -> None:
    answer = bytearray(fetch_answer(17, 1, size))
    answer[4 + 4 + 1 + 10] = 0  # the topic array: null, which a Fetch response never has
    pair, metrics, _ = LOOPS[loop]().run_until_complete(cut_answer(bytes(answer), len(answer)))
    assert pair.closed
    assert metrics.upstream_errors.labels("undecodable_response")._value.get() == 1


async def small_then_large() -> tuple[list[bytes], dict[int, bytes], list[float], ConnectionPair]:
    """A Fetch response small enough to come whole in the first read, then one that does not; the spliced byte
    count after each."""
    answers = {1: fetch_answer(17, 1, 600, endpoint_host="broker-host.example"), 2: fetch_answer(17, 2, 400_000)}
    assert len(answers[1]) < FETCH_FIRST_READ < len(answers[2])
    broker_server = await asyncio.start_server(Broker(answers).handle, "127.0.0.1", 0)
    server, pairs, metrics = await gateway(broker_server.sockets[0].getsockname()[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    frames, spliced = [], []
    for correlation_id in answers:
        writer.write(fetch_request(17, correlation_id))
        frames += await asyncio.wait_for(read_frames(reader, 1), 10)
        spliced.append(metrics.spliced_bytes._value.get())
    writer.close()
    server.close()
    broker_server.close()
    await asyncio.sleep(0.05)
    return frames, answers, spliced, pairs[0]


@pytest.mark.parametrize("loop", LOOPS)
def test_a_fetch_response_whole_in_the_first_read_is_relayed_as_read(loop: str) -> None:
    """Splicing a small response costs more syscalls than copying it: it is rewritten and written as any other."""
    frames, answers, spliced, pair = LOOPS[loop]().run_until_complete(small_then_large())
    assert pair._broker_reading is not None, "a splicing pair"
    assert spliced[0] == 0, "nothing of the small response was spliced"
    assert len(frames[0]) < len(answers[1]), "copied: rebuilt at its new size, not padded in place"
    assert endpoints_in(frames[0], 17) == [(2, GATEWAY_HOST, 6971)]
    # the large one: spliced but for its first read and the headers between its record sets
    assert spliced[1] >= len(answers[2]) - FETCH_FIRST_READ - 1024
    assert frames[1] == answers[2]


# Each call of _pump splices out at most this much: the budget is checked before each splice out of the pipe, so
# the last one starts with at least 1 byte of budget left, and the pipe never holds more than PIPE_SIZE (it is
# filled only once empty, with at most PIPE_SIZE). Bytes read into user space (the first read, headers) are sent
# outside the budget.
TURN_BOUND = TURN_BYTES + PIPE_SIZE - 1
BUFFERS = 64 << 20  # socket buffers that hold a whole 12 MiB frame: every _pump call finds all it may move
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33  # Linux's (asm-generic/socket.h); Python's socket module lacks them


def _buffer(sock: socket.socket, option: int, forced: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, forced, BUFFERS)  # root: past net.core.[rw]mem_max
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, option, BUFFERS)


def loopback() -> tuple[socket.socket, socket.socket]:
    """A loopback TCP connection (sending end, receiving end) whose buffers hold a whole large frame unread."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        _buffer(listener, socket.SO_RCVBUF, SO_RCVBUFFORCE)  # before the handshake: the window scale
        sender = socket.create_connection(listener.getsockname()[:2])
        receiver, _ = listener.accept()
    _buffer(sender, socket.SO_SNDBUF, SO_SNDBUFFORCE)
    return sender, receiver


class SplicingPair:
    """The pair's side of one BrokerReading (proxy/connection.py's, cut to what this test needs): every response
    is a Fetch response, started as a spliced frame at its first bytes; what went wrong is kept to be asserted."""

    def __init__(self, name: str, version: int, finished: list[str]) -> None:
        self.name, self.version, self.finished = name, version, finished
        self.write_paused_since: float | None = None
        self.reading: BrokerReading | None = None
        self.trouble: list[str] = []

    def response_read_size(self) -> int:
        return FETCH_FIRST_READ

    def from_upstream(self, data: bytes) -> None:
        self.reading.start(reader_for(self.version), data)

    def spliced_frame_done(self) -> None:
        self.finished.append(self.name)

    def endpoints_in_place(self, tags: bytes) -> bytes:
        return tags

    def broker_lost(self, reason: str) -> None:
        self.trouble.append(f"broker lost: {reason}")

    def bad_response(self, reason: str) -> None:
        self.trouble.append(f"bad response: {reason}")

    def close(self) -> None:
        self.trouble.append("closed")


async def two_pairs_on_one_loop(big: bytes, small: bytes) -> tuple[list[int], list[str], list[bytes], list[str]]:
    """A frame of `big` on pair A; once A's first _pump call is over, `small` on pair B. Returns the bytes A spliced
    in each of its _pump calls, the order the frames finished in, what each client read, and any trouble."""
    loop = asyncio.get_running_loop()
    pipes = Pipes()
    finished: list[str] = []
    pairs, brokers, clients, readings, transports = {}, {}, {}, {}, []
    spliced = {"A": 0, "B": 0}
    for name in ("A", "B"):
        brokers[name], gateway_source = loopback()
        gateway_destination, clients[name] = loopback()
        source, _ = await loop.connect_accepted_socket(asyncio.Protocol, gateway_source)
        destination, _ = await loop.connect_accepted_socket(asyncio.Protocol, gateway_destination)
        transports += [source, destination]
        pairs[name] = SplicingPair(name, 17, finished)

        def tally(count: int, name: str = name) -> None:
            spliced[name] += count

        readings[name] = pairs[name].reading = BrokerReading(pairs[name], source, destination, tally,
                                                             ReadLowWater.of(source, tls=False), pipes)
    per_call: list[int] = []
    pump = readings["A"]._pump

    def counted_pump() -> None:  # the real _pump, its spliced bytes counted per call
        before = spliced["A"]
        pump()
        per_call.append(spliced["A"] - before)
        if len(per_call) == 1:  # B's frame arrives while A is under way, and is there at the loop's next poll
            brokers["B"].sendall(small)
            if not select.select([readings["B"]._source], [], [], 5)[0]:
                pairs["B"].trouble.append("B's frame did not reach the gateway")

    readings["A"]._pump = counted_pump
    brokers["A"].settimeout(5)
    try:
        brokers["A"].sendall(big)  # whole in the kernel's buffers before the loop runs again
    except TimeoutError:
        pytest.fail(f"loopback buffers do not hold {len(big)} bytes: the test needs root (SO_RCVBUFFORCE) "
                    "or net.core.rmem_max and wmem_max of 32 MiB")
    for _ in range(2000):
        if len(finished) == 2 or any(pair.trouble for pair in pairs.values()):
            break
        await asyncio.sleep(0.001)
    received = []
    for name, frame in (("A", big), ("B", small)):
        clients[name].settimeout(5)
        data = bytearray()
        while len(data) < len(frame):
            chunk = clients[name].recv(len(frame) - len(data))
            if not chunk:
                break
            data += chunk
        received.append(bytes(data))
    for name in ("A", "B"):
        readings[name].close()
        brokers[name].close()
        clients[name].close()
    for transport in transports:
        transport.close()
    await asyncio.sleep(0)
    for pipe in pipes._idle:
        os.close(pipe[0]), os.close(pipe[1])
    return per_call, finished, received, [t for pair in pairs.values() for t in pair.trouble]


@pytest.mark.parametrize("loop", LOOPS)
def test_a_large_frame_is_moved_a_turn_at_a_time_and_another_pair_goes_between(loop: str) -> None:
    """TURN_BYTES bounds each wakeup: a 12 MiB Fetch response whose every byte is ready takes several _pump calls,
    none splicing more than TURN_BOUND; a small response on a second pair of the same loop, arriving after the
    first call, is out before the large one ends; both reach their clients byte for byte."""
    big = fetch_answer(17, 1, 9 << 20)  # record sets of 9 and 3 MiB
    small = fetch_answer(17, 2, 300)
    per_call, finished, received, trouble = LOOPS[loop]().run_until_complete(two_pairs_on_one_loop(big, small))
    assert not trouble
    assert received == [big, small], "every byte, in order"
    assert sum(per_call) >= len(big) - FETCH_FIRST_READ - 1024, "spliced but for the first read and headers"
    assert per_call[0] >= TURN_BYTES, "the first call had all it could move: it stopped at its budget"
    assert max(per_call) <= TURN_BOUND, per_call
    assert len(per_call) >= 3, per_call
    assert finished == ["B", "A"], "the small frame got its turn while the large one was under way"

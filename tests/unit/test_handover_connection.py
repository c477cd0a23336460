"""The handover's hooks below the policy: a handed-over connection closes at its first quiet moment (nothing in flight,
nothing of the client's unread in its socket), as a draining one does; one told to stop reading stops at a request
boundary and stays stopped; and the readiness probe of a mapped node (an ApiVersions round trip)."""

from __future__ import annotations

import asyncio
import socket
import struct

from gateway_app.broker_addresses import PortPlan
from gateway_app.cluster.topology import StaticTopology
from gateway_app.metrics import Metrics
from gateway_app.protocol.reserved import ReservedNames
from gateway_app.proxy.connection import ConnectionPair, Rules
from gateway_app.proxy.directory import BrokerDirectory
from gateway_app.proxy.incidents import Incidents
from gateway_app.proxy.routes import Routes
from lab.frames import metadata_request
from gateway_app.proxy.peer_probe import answers_api_versions
from tests.unit.fake_transport import RecordingTransport



def _connected_pair() -> ConnectionPair:
    """A connection on broker 1's port of a single node, its broker connection up."""
    metrics = Metrics()
    routes = Routes(StaticTopology(PortPlan(6969, 1, 8), "198.18.0.9"), BrokerDirectory({}, (), 1.0), metrics)
    rules = Rules(max_frame_bytes=1024 * 1024, max_in_flight=500, max_assembled_bytes=1024 * 1024,
                  reserved=ReservedNames.of("_gateway_test", "_gateway_test_members"))
    pair = ConnectionPair(routes, rules, Incidents(metrics), 6970, "test")
    assert pair.broker_id == 1
    pair.client, pair.upstream = RecordingTransport(), RecordingTransport()  # type: ignore[assignment]
    return pair


def test_a_connection_told_to_stop_reading_finishes_the_request_it_is_reading_then_stops() -> None:
    pair = _connected_pair()
    frame = metadata_request(7)
    pair.from_client(frame[:10])
    pair.stop_reading()
    assert pair.client.reading, "mid-frame: the rest of the request must still be read"
    pair.from_client(frame[10:])
    assert not pair.client.reading
    assert b"".join(pair.upstream.written) == frame, "the whole request went to the broker"
    assert [entry.correlation_id for entry in pair.in_flight] == [7] and not pair.idle()


def test_a_connection_told_to_stop_reading_stops_at_once_when_at_a_boundary_and_flow_control_does_not_resume_it() -> None:
    pair = _connected_pair()
    pair.stop_reading()
    assert not pair.client.reading and pair.idle()
    pair.resume_client()  # the broker side drained its write buffer
    assert not pair.client.reading


def _serve(answer: bytes | None):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = struct.unpack(">i", await reader.readexactly(4))[0]
        request = await reader.readexactly(size)
        if answer is not None:
            correlation = request[4:8]
            writer.write(struct.pack(">i", 4 + len(answer)) + correlation + answer)
            await writer.drain()
        writer.close()

    return handle


async def _probe(answer: bytes | None) -> bool:
    server = await asyncio.start_server(_serve(answer), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await answers_api_versions("127.0.0.1", port, proxy_header=False, tls=None, timeout_s=2)
    finally:
        server.close()


def test_the_probe_wants_an_api_versions_answer_without_error() -> None:
    assert asyncio.run(_probe(struct.pack(">hi", 0, 0)))  # error 0, no api keys
    assert not asyncio.run(_probe(struct.pack(">hi", 35, 0)))  # UNSUPPORTED_VERSION
    assert not asyncio.run(_probe(None))  # closed without answering


def test_the_probe_of_a_port_nobody_listens_on_is_false() -> None:
    async def closed_port() -> bool:
        server = await asyncio.start_server(_serve(None), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        return await answers_api_versions("127.0.0.1", port, proxy_header=False, tls=None, timeout_s=2)

    assert not asyncio.run(closed_port())


class _SocketTransport(RecordingTransport):
    """A client transport over one end of a real socket pair: FIONREAD sees what the other end sent."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock

    def get_extra_info(self, name: str):
        return self.sock if name == "socket" else None


def _heartbeat(correlation_id: int) -> bytes:
    """Heartbeat v0 of group "g": relayed untouched, and so is its answer."""
    body = struct.pack(">hhih", 12, 0, correlation_id, 1) + b"c" + struct.pack(">h", 1) + b"g" + struct.pack(">ih", 1, 1) + b"m"
    return struct.pack(">i", len(body)) + body


def _draining_pair():
    pair = _connected_pair()
    ours, theirs = socket.socketpair()
    pair.client = _SocketTransport(ours)  # type: ignore[assignment]
    return pair, theirs


def test_a_draining_connection_closes_when_the_response_that_leaves_nothing_in_flight_is_written() -> None:
    pair, theirs = _draining_pair()
    pair.from_client(_heartbeat(5))
    assert not pair.close_when_idle() and not pair.closed, "a request in flight is answered first"
    pair.from_upstream(struct.pack(">ii", 6, 5) + struct.pack(">h", 0))
    assert pair.client.written[-1].endswith(struct.pack(">h", 0)) and pair.closed and pair.client.closed
    theirs.close()


def test_a_draining_connection_reads_and_answers_a_request_waiting_in_its_socket_before_closing() -> None:
    pair, theirs = _draining_pair()
    assert pair.idle()
    theirs.sendall(_heartbeat(9))  # written by the client, not yet read by the node
    assert not pair.close_when_idle() and not pair.closed
    pair.from_client(pair.client.sock.recv(65536))  # the event loop reads it
    assert not pair.closed and [entry.correlation_id for entry in pair.in_flight] == [9]
    pair.from_upstream(struct.pack(">ii", 6, 9) + struct.pack(">h", 0))
    assert pair.closed
    theirs.close()


def test_a_draining_connection_with_nothing_unread_closes_at_once_and_one_not_reading_does_not_wait_for_what_it_never_reads() -> None:
    pair, theirs = _draining_pair()
    assert pair.close_when_idle() and pair.closed
    held, other = _draining_pair()
    held.stop_reading()
    other.sendall(_heartbeat(3))
    assert held.close_when_idle() and held.closed
    theirs.close()
    other.close()


def test_a_handed_over_connection_answers_a_request_waiting_in_its_socket_and_closes_at_its_quiet_moment() -> None:
    """The request a client wrote just before its connection was handed over is answered, not lost (stopping reading
    first, as handovers did, lost it: a producer without retries was told NetworkException, one with retries logged
    a warning and sent it again)."""
    pair, theirs = _draining_pair()
    pair.from_client(_heartbeat(4))
    theirs.sendall(_heartbeat(5))  # written by the client, not yet read by the node
    assert not pair.hand_over() and not pair.closed and pair.handing_over
    pair.from_upstream(struct.pack(">ii", 6, 4) + struct.pack(">h", 0))
    assert not pair.closed and not pair.quiet(), "request 5 waits unread: read and answered first"
    pair.from_client(pair.client.sock.recv(65536))  # the event loop goes on reading
    assert [entry.correlation_id for entry in pair.in_flight] == [5]
    pair.from_upstream(struct.pack(">ii", 6, 5) + struct.pack(">h", 0))
    assert pair.closed and pair.client.written[-1].endswith(struct.pack(">ii", 6, 5) + struct.pack(">h", 0))
    quiet, other = _draining_pair()
    assert quiet.hand_over() and quiet.closed, "nothing in flight, nothing unread: closed at once"
    theirs.close()
    other.close()

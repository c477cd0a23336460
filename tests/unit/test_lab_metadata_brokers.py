"""The lab's raw Metadata probe (lab/frames.py metadata_brokers), which `lab up` waits on for its brokers and the
cluster tests ask gateway nodes with: a loopback server answers one request as a broker would, or the way a broker
still starting does (closes, or answers someone else's correlation id)."""

from __future__ import annotations

import datetime
import socket
import struct
import threading

import pytest
from kio.schema.metadata.v12 import response as metadata_response
from kio.static.primitive import i32, i32Timedelta

from gateway_app.protocol.kio_adapter import encode
from lab.frames import metadata_brokers, recv_exactly


def metadata_body(brokers: dict[int, tuple[str, int, str | None]]) -> bytes:
    return encode(metadata_response.MetadataResponse(
        throttle_time=i32Timedelta.parse(datetime.timedelta(0)), cluster_id="lab", controller_id=i32(1), topics=(),
        brokers=tuple(metadata_response.MetadataResponseBroker(node_id=i32(i), host=host, port=i32(port), rack=rack)
                      for i, (host, port, rack) in brokers.items())))


def serve_once(reply) -> tuple[str, int, list[bytes]]:
    """A loopback listener that reads one request frame and sends reply(request) (None: close without a word)."""
    listener = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []

    def handle() -> None:
        with listener, listener.accept()[0] as conn:
            size = struct.unpack(">i", recv_exactly(conn, 4))[0]
            requests.append(recv_exactly(conn, size))
            answer = reply(requests[-1])
            if answer is not None:
                conn.sendall(answer)

    threading.Thread(target=handle, daemon=True).start()
    return "127.0.0.1", listener.getsockname()[1], requests


def framed(correlation_id: int, body: bytes) -> bytes:
    return struct.pack(">ii", 4 + 1 + len(body), correlation_id) + b"\0" + body


def test_it_reads_every_broker_with_its_rack_and_asks_for_no_topic():
    brokers = {1: ("198.18.0.11", 9092, "rack-a"), 2: ("198.18.0.12", 9092, "rack-b"), 3: ("198.18.0.13", 9092, None)}
    host, port, requests = serve_once(lambda request: framed(1, metadata_body(brokers)))
    assert metadata_brokers(host, port, 2.0) == brokers
    api_key, version, correlation_id = struct.unpack(">hhi", requests[0][:8])
    assert (api_key, version, correlation_id) == (3, 12, 1)


def test_a_peer_that_closes_before_answering_is_an_oserror():
    host, port, _ = serve_once(lambda request: None)
    with pytest.raises(OSError):
        metadata_brokers(host, port, 2.0)


def test_an_answer_to_another_request_is_refused():
    host, port, _ = serve_once(lambda request: framed(7, metadata_body({1: ("198.18.0.11", 9092, "rack-a")})))
    with pytest.raises(ConnectionError, match="not ours"):
        metadata_brokers(host, port, 2.0)


def test_nothing_listening_is_an_oserror():
    unused = socket.create_server(("127.0.0.1", 0))
    port = unused.getsockname()[1]
    unused.close()
    with pytest.raises(OSError):
        metadata_brokers("127.0.0.1", port, 2.0)

"""What one read turns into on the other side: pipelined frames written together, in their order."""

from __future__ import annotations

import struct

from bench.hot_path import metadata_response_frame
from gateway_app.broker_addresses import PortPlan
from gateway_app.cluster.topology import StaticTopology
from gateway_app.metrics import Metrics
from gateway_app.protocol.codec import encode as codec_encode
from gateway_app.protocol.message_specs import spec
from gateway_app.protocol.reserved import ReservedNames
from gateway_app.proxy.connection import ConnectionPair, Rules
from gateway_app.proxy.directory import BrokerDirectory
from gateway_app.proxy.incidents import Incidents
from gateway_app.proxy.routes import Routes
from lab.frames import metadata_request
from tests.unit.fake_transport import RecordingTransport



def _connected_pair() -> ConnectionPair:
    metrics = Metrics()
    routes = Routes(StaticTopology(PortPlan(6969, 1, 8), "198.18.0.9"), BrokerDirectory({}, (), 1.0), metrics)
    rules = Rules(max_frame_bytes=1 << 20, max_in_flight=500, max_assembled_bytes=1 << 20,
                  reserved=ReservedNames.of("_gateway_test", "_gateway_test_members"))
    pair = ConnectionPair(routes, rules, Incidents(metrics), 6969, "test")
    pair.client, pair.upstream = RecordingTransport(), RecordingTransport()  # type: ignore[assignment]
    return pair


def _delete_reserved_topic(correlation_id: int) -> bytes:
    """DeleteTopics v5 naming the gateway's own topic: refused by the gateway, answered in its turn."""
    body = codec_encode(spec("request", 20, 5), {"topic_names": ["_gateway_test"], "timeout_ms": 1})
    payload = struct.pack(">hhih", 20, 5, correlation_id, 1) + b"c" + b"\0" + body
    return struct.pack(">i", len(payload)) + payload


def _correlation_ids(stream: bytes, requests: bool = False) -> list[int]:
    """The correlation ids of the frames in `stream` (after api key and version in a request)."""
    ids, offset = [], 0
    while offset < len(stream):
        (size,), (correlation_id,) = struct.unpack_from(">i", stream, offset), \
            struct.unpack_from(">i", stream, offset + (8 if requests else 4))
        ids.append(correlation_id)
        offset += 4 + size
    return ids


def test_pipelined_requests_read_at_once_are_one_write_to_the_broker() -> None:
    pair = _connected_pair()
    requests = b"".join(metadata_request(n) for n in range(16))
    pair.from_client(requests)
    assert pair.upstream.writes == [requests]  # type: ignore[union-attr]


def test_rewritten_responses_read_at_once_are_one_write_to_the_client() -> None:
    pair = _connected_pair()
    pair.from_client(b"".join(metadata_request(n) for n in range(16)))
    pair.from_upstream(b"".join(metadata_response_frame(n, 0) for n in range(16)))
    [written] = pair.client.writes  # type: ignore[union-attr]
    assert _correlation_ids(written) == list(range(16))
    assert b"198.18.0.9" in written and b"198.18.1.11" not in written  # rewritten, not relayed as they came


def test_a_refusal_between_relayed_responses_is_written_in_its_turn() -> None:
    pair = _connected_pair()
    pair.from_client(metadata_request(1) + _delete_reserved_topic(2) + metadata_request(3))
    assert _correlation_ids(b"".join(pair.upstream.writes), requests=True) == [1, 3]  # type: ignore[union-attr]
    pair.from_upstream(metadata_response_frame(1, 0) + metadata_response_frame(3, 0))
    assert _correlation_ids(b"".join(pair.client.writes)) == [1, 2, 3]  # type: ignore[union-attr]

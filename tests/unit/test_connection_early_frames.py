"""Client frames that arrive before the broker connection is up are checked on arrival, not parked raw."""

from __future__ import annotations

import struct

from gateway_app.broker_addresses import PortPlan
from gateway_app.cluster.topology import StaticTopology
from gateway_app.metrics import Metrics
from gateway_app.protocol.reserved import ReservedNames
from gateway_app.protocol.codec import encode as codec_encode
from gateway_app.protocol.message_specs import spec
from gateway_app.proxy.connection import AssemblyBudget, ConnectionPair, Rules
from gateway_app.proxy.directory import BrokerDirectory
from gateway_app.proxy.incidents import Incidents
from gateway_app.proxy.routes import Routes
from lab.frames import metadata_request
from tests.unit.fake_transport import RecordingTransport



def _refused(metrics: Metrics) -> list[str]:
    return [sample.labels["reason"] for family in metrics.malformed_frames.collect() for sample in family.samples
            if sample.name.endswith("_total") and sample.value]


def _pair_still_connecting() -> tuple[ConnectionPair, Metrics, list[ConnectionPair]]:
    metrics = Metrics()
    routes = Routes(StaticTopology(PortPlan(6969, 1, 8), "198.18.0.9"), BrokerDirectory({}, (), 1.0), metrics)
    rules = Rules(max_frame_bytes=1024 * 1024, max_in_flight=500, max_assembled_bytes=1024 * 1024,
                  reserved=ReservedNames.of("_gateway_test", "_gateway_test_members"))
    ended: list[ConnectionPair] = []
    pair = ConnectionPair(routes, rules, Incidents(metrics), 6969, "test", on_close=ended.append)
    pair.client = RecordingTransport()  # type: ignore[assignment]
    pair._connecting = True  # the first request opened the broker connection; the connect has not finished
    return pair, metrics, ended


def test_a_bad_frame_is_refused_before_the_broker_connection_is_up() -> None:
    pair, metrics, ended = _pair_still_connecting()
    pair.from_client(struct.pack(">i", 2 * 1024 * 1024) + b"x" * 64)  # over max_frame_bytes
    assert _refused(metrics) == ["oversized"] and pair.client.aborted and pair.closed
    assert ended == [pair], "the owner is told once that the connection ended"


def test_good_frames_wait_for_the_broker_connection_in_order() -> None:
    pair, metrics, ended = _pair_still_connecting()
    frames = metadata_request(1) + metadata_request(2)
    pair.from_client(frames[:10])
    pair.from_client(frames[10:])
    assert _refused(metrics) == [] and ended == [] and b"".join(pair._early) == frames
    assert [entry.correlation_id for entry in pair.in_flight] == [1, 2]


def _pair_with(rules: Rules) -> tuple[ConnectionPair, Metrics]:
    metrics = Metrics()
    routes = Routes(StaticTopology(PortPlan(6969, 1, 8), "198.18.0.9"), BrokerDirectory({}, (), 1.0), metrics)
    pair = ConnectionPair(routes, rules, Incidents(metrics), 6969, "test")
    pair.client = RecordingTransport()  # type: ignore[assignment]
    pair._connecting = True
    return pair, metrics


def _large_delete_topics(names: int) -> bytes:
    """A DeleteTopics v5 request whose names do not fit the first 70 KB: checked whole, so assembled."""
    message = spec("request", 20, 5)
    body = codec_encode(message, {"topic_names": [f"t{i:05d}" + "x" * 200 for i in range(names)], "timeout_ms": 1})
    payload = struct.pack(">hhih", 20, 5, 7, 1) + b"c" + b"\0" + body
    return struct.pack(">i", len(payload)) + payload


def test_requests_held_whole_share_one_node_wide_budget() -> None:
    budget = AssemblyBudget(150_000)
    rules = Rules(max_frame_bytes=1 << 20, max_in_flight=500, max_assembled_bytes=1 << 20,
                  reserved=ReservedNames.of("_gateway_test", "_gateway_test_members"), assembly=budget)
    frame = _large_delete_topics(500)  # about 104 KB
    first, _ = _pair_with(rules)
    second, metrics = _pair_with(rules)
    first.from_client(frame[:80_000])  # held, waiting for the rest
    assert budget.used == len(frame) - 4 and not first.closed
    second.from_client(frame[:80_000])  # would go over the budget: closed, counted
    assert second.closed and _refused(metrics) == ["node_assembly_budget"]
    first.from_client(frame[80_000:])  # complete: relayed, and the budget is free again
    assert budget.used == 0 and not first.closed and [e.correlation_id for e in first.in_flight] == [7]
    third, _ = _pair_with(rules)
    third.from_client(frame[:80_000])
    third.abort()  # a connection that ends mid-request gives its share back
    assert budget.used == 0


def test_a_partly_sent_request_is_timed_from_its_first_byte() -> None:
    pair, _ = _pair_with(Rules(max_frame_bytes=1 << 20, max_in_flight=500, max_assembled_bytes=1 << 20,
                               reserved=ReservedNames.of("_gateway_test", "_gateway_test_members")))
    request = metadata_request(1)
    pair.from_client(request[:5])
    started = pair.requests.started
    assert started is not None
    pair.from_client(request[5:8])
    assert pair.requests.started == started  # the frame's start, not the last chunk's
    pair.from_client(request[8:])
    assert pair.requests.started is None  # at a boundary: nothing is pending

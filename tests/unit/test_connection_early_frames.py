"""Client frames that arrive before the broker connection is up are checked on arrival, not parked raw."""

from __future__ import annotations

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


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data) -> None:
        self.written.append(bytes(data))

    def writelines(self, chunks) -> None:
        self.written.extend(bytes(chunk) for chunk in chunks)

    def abort(self) -> None:
        self.aborted = True


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
    pair.client = _Transport()  # type: ignore[assignment]
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

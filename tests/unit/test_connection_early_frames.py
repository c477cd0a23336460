"""Client frames that arrive before the broker connection is up are checked on arrival, not parked raw."""

from __future__ import annotations

import struct

from bench.metadata_load import metadata_request
from gateway_app.metrics import Metrics
from gateway_app.protocol.reserved import ReservedNames
from gateway_app.protocol.headers import MalformedFrame
from gateway_app.proxy.connection import ConnectionPair


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


class _Settings:
    max_frame_bytes = 1024 * 1024
    max_in_flight = 500
    max_assembled_bytes = 1024 * 1024


class _Gateway:
    settings = _Settings()

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.refused: list[str] = []
        self.reserved_names = ReservedNames.of("_gateway_test", "_gateway_test_members")

    def malformed(self, pair: ConnectionPair, error: MalformedFrame) -> None:
        self.refused.append(error.reason)

    def unregister(self, pair: ConnectionPair) -> None:
        pass


def _pair_still_connecting() -> tuple[ConnectionPair, _Gateway]:
    gateway = _Gateway()
    pair = ConnectionPair(gateway, 6969, None, "test")  # type: ignore[arg-type]
    pair.client = _Transport()  # type: ignore[assignment]
    pair._connecting = True  # the first request opened the broker connection; the connect has not finished
    return pair, gateway


def test_a_bad_frame_is_refused_before_the_broker_connection_is_up() -> None:
    pair, gateway = _pair_still_connecting()
    pair.from_client(struct.pack(">i", 2 * 1024 * 1024) + b"x" * 64)  # over max_frame_bytes
    assert gateway.refused == ["oversized"] and pair.client.aborted and pair.closed


def test_good_frames_wait_for_the_broker_connection_in_order() -> None:
    pair, gateway = _pair_still_connecting()
    frames = metadata_request(1) + metadata_request(2)
    pair.from_client(frames[:10])
    pair.from_client(frames[10:])
    assert gateway.refused == [] and b"".join(pair._early) == frames
    assert [entry.correlation_id for entry in pair.in_flight] == [1, 2]

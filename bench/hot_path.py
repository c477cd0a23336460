"""``python -m bench.hot_path``: microseconds of gateway Python per relayed frame, no lab needed.

Feeds ProducerPerformance-shaped traffic through a ConnectionPair whose transports only count bytes:
Produce v12 requests of 16 KB (one per ``data_received``, as the lab shows for default batching) and
their one-partition v12 responses (collected and walked for KIP-951 NodeEndpoints). It isolates the
per-frame Python cost from the kernel's share and from the noise of a shared machine; each figure is
the best of several passes. The lab benchmark (``python -m bench``) is what counts for CPU per GB.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import time

from kio.schema.errors import ErrorCode
from kio.schema.produce.v12 import response as produce_response
from kio.schema.request_header.v2.header import RequestHeader
from kio.serial import entity_writer
from kio.static.primitive import i16, i32, i64

from gateway_app.metrics import Metrics
from gateway_app.proxy.connection import ConnectionPair


class _CountingTransport:
    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data) -> None:
        self.bytes += len(data)

    def writelines(self, chunks) -> None:
        for data in chunks:
            self.bytes += len(data)


class _Settings:
    max_frame_bytes = 100 * 1024 * 1024


class _Gateway:
    settings = _Settings()

    def __init__(self) -> None:
        self.metrics = Metrics()

    def learn(self, broker) -> None:
        pass

    def endpoint(self, broker_id: int, rack: str | None) -> tuple[str, int]:
        return "198.18.0.9", 6970 + broker_id


def _encode(schema, value) -> bytes:
    buffer = io.BytesIO()
    entity_writer(schema)(buffer, value)
    return buffer.getvalue()


def _framed(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def produce_request(correlation_id: int, size: int) -> bytes:
    header = _encode(RequestHeader, RequestHeader(request_api_key=i16(0), request_api_version=i16(12),
                                                  correlation_id=i32(correlation_id), client_id="producer-1"))
    body = b"\x00" + struct.pack(">hi", -1, 30_000)  # no transactional id, acks=all, timeout
    return _framed(header + body + bytes(size - len(header) - len(body) - 4))


def produce_response_frame(correlation_id: int) -> bytes:
    partition = produce_response.PartitionProduceResponse(
        index=i32(0), error_code=ErrorCode.none, base_offset=i64(100), log_start_offset=i64(0), record_errors=())
    body = produce_response.ProduceResponse(responses=(produce_response.TopicProduceResponse(
        name="bench-default", partition_responses=(partition,)),))
    return _framed(struct.pack(">i", correlation_id) + b"\x00" + _encode(produce_response.ProduceResponse, body))


def measure(frames: int, passes: int, request_size: int) -> dict[str, float]:
    pair = ConnectionPair(_Gateway(), 6969, None, "bench")  # type: ignore[arg-type]
    pair.client, pair.upstream = _CountingTransport(), _CountingTransport()  # type: ignore[assignment]
    requests = [produce_request(i, request_size) for i in range(frames)]
    responses = [produce_response_frame(i) for i in range(frames)]
    best_request = best_response = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        for data in requests:
            pair.from_client(data)
        middle = time.perf_counter()
        for data in responses:
            pair.from_upstream(data)
        end = time.perf_counter()
        best_request = min(best_request, (middle - start) / frames * 1e6)
        best_response = min(best_response, (end - middle) / frames * 1e6)
    return {"produce_request_us": round(best_request, 2), "produce_response_us": round(best_response, 2),
            "per_pair_us": round(best_request + best_response, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hot_path", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--request-size", type=int, default=16_000)
    args = parser.parse_args()
    print(json.dumps(measure(args.frames, args.passes, args.request_size)))


if __name__ == "__main__":
    main()

"""``python -m bench.hot_path``: microseconds of gateway Python per relayed frame, no lab needed.

Feeds ProducerPerformance-shaped traffic through a ConnectionPair whose transports only count bytes:
Produce v12 requests of 16 KB (one per ``data_received``, as the lab shows for default batching) and
their one-partition v12 responses (collected and walked for KIP-951 NodeEndpoints), and Metadata v12
requests with their responses (three racked brokers, rewritten; ``--metadata-topics`` topics), and consumer Fetch
v12 requests of ``--fetch-partitions`` partitions from a client with no rack and from one in a client network (the
request held whole and relayed with its rack_id filled in: the rack rewrite's cost is the difference). It isolates the
per-frame Python cost from the kernel's share and from the noise of a shared machine; each figure is
the best of several passes. The lab benchmark (``python -m bench``) is what counts for CPU per GB.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import json
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from kio.schema.errors import ErrorCode
from kio.schema.metadata.v12 import response as metadata_response
from kio.schema.produce.v12 import response as produce_response
from kio.schema.request_header.v2.header import RequestHeader
from kio.static.primitive import i16, i32, i32Timedelta, i64

from gateway_app.broker_addresses import PortPlan
from gateway_app.client_networks import RACK_FOLLOWING_SOFTWARE, parse_client_networks
from gateway_app.cluster.topology import StaticTopology
from gateway_app.metrics import Metrics
from gateway_app.protocol.api_keys import API_VERSIONS
from gateway_app.protocol.codec import encode as codec_encode
from gateway_app.protocol.kio_adapter import encode
from gateway_app.protocol.message_specs import spec
from gateway_app.protocol.reserved import ReservedNames
from gateway_app.proxy.connection import ConnectionPair, Rules
from gateway_app.proxy.directory import BrokerDirectory
from gateway_app.proxy.incidents import Incidents
from gateway_app.proxy.routes import Routes
from lab.frames import fetch_request, metadata_request, request_frame

from .metadata_load import PIPELINE_DEPTH


class _CountingTransport:
    """Counts bytes and writes: every write of a real transport is a send() when its buffer is empty."""

    def __init__(self) -> None:
        self.bytes = 0
        self.writes = 0

    def write(self, data) -> None:
        self.bytes += len(data)
        self.writes += 1

    def writelines(self, chunks) -> None:
        self.writes += 1
        for data in chunks:
            self.bytes += len(data)

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def get_extra_info(self, name: str) -> None:
        return None


RULES = Rules(max_frame_bytes=100 * 1024 * 1024, max_in_flight=2**31,  # every request is fed before any response
              max_assembled_bytes=16 * 1024 * 1024, reserved=ReservedNames.of("_gateway_test", "_gateway_test_members"))


def _framed(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def produce_request(correlation_id: int, size: int) -> bytes:
    header = encode(RequestHeader(request_api_key=i16(0), request_api_version=i16(12),
                                                  correlation_id=i32(correlation_id), client_id="producer-1"))
    # acks=all, one topic, one partition whose record bytes fill the request to `size`
    envelope = len(header) + len(_produce_body(0)) + 4
    return _framed(header + _produce_body(size - envelope))


def _produce_body(record_bytes: int) -> bytes:
    records = bytes(max(0, record_bytes - 3))  # the compact length grows by up to 3 bytes with the size
    body = codec_encode(spec("request", 0, 12), {"acks": -1, "timeout_ms": 30_000, "topic_data": [
        {"name": "bench-default", "partition_data": [{"index": 0, "records": records}]}]})
    return body


def produce_response_frame(correlation_id: int) -> bytes:
    partition = produce_response.PartitionProduceResponse(
        index=i32(0), error_code=ErrorCode.none, base_offset=i64(100), log_start_offset=i64(0), record_errors=())
    body = produce_response.ProduceResponse(responses=(produce_response.TopicProduceResponse(
        name="bench-default", partition_responses=(partition,)),))
    return _framed(struct.pack(">i", correlation_id) + b"\x00" + encode(body))


def metadata_response_frame(correlation_id: int, topics: int) -> bytes:
    brokers = tuple(metadata_response.MetadataResponseBroker(
        node_id=i32(n), host=f"198.18.1.{10 + n}", port=i32(9092), rack=f"rack-{'abc'[n - 1]}") for n in (1, 2, 3))
    partition = metadata_response.MetadataResponsePartition(
        error_code=ErrorCode.none, partition_index=i32(0), leader_id=i32(1), leader_epoch=i32(0),
        replica_nodes=(i32(1), i32(2), i32(3)), isr_nodes=(i32(1), i32(2), i32(3)), offline_replicas=())
    body = metadata_response.MetadataResponse(
        throttle_time=i32Timedelta.parse(datetime.timedelta(0)),
        brokers=brokers, cluster_id="lab", controller_id=i32(1),
        topics=tuple(metadata_response.MetadataResponseTopic(
            error_code=ErrorCode.none, name=f"topic-{n}", topic_id=uuid.UUID(int=n + 1), is_internal=False,
            partitions=(partition,) * 3, topic_authorized_operations=i32(-2147483648)) for n in range(topics)))
    return _framed(struct.pack(">i", correlation_id) + b"\x00" + encode(body))


@dataclass(frozen=True)
class Timing:
    """How the feeds are timed: the wall clock (the default), or this thread's CPU time, which a busy machine's
    other work does not inflate (bench.compiled_hot_path); a profiler given records the feeds alone."""
    clock: Callable[[], float] = time.perf_counter
    profiler: cProfile.Profile | None = None


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


def _best_us(frames: int, passes: int, feed_requests, feed_responses, timing: Timing = Timing()) -> tuple[float, float]:
    """The best µs per frame over the passes (a profiler's own cost is in the figures)."""
    if timing.profiler is not None:
        feed_requests, feed_responses = (_profiled(timing.profiler, feed_requests),
                                         _profiled(timing.profiler, feed_responses))
    clock = timing.clock
    best_request = best_response = float("inf")
    for _ in range(passes):
        start = clock()
        feed_requests()
        middle = clock()
        feed_responses()
        end = clock()
        best_request = min(best_request, (middle - start) / frames * 1e6)
        best_response = min(best_response, (end - middle) / frames * 1e6)
    return round(best_request, 2), round(best_response, 2)


def _profiled(profiler: cProfile.Profile, feed):
    def run() -> None:
        profiler.enable()
        try:
            feed()
        finally:
            profiler.disable()
    return run


def _pair() -> ConnectionPair:
    """A bootstrap-port connection of a single node advertised at 198.18.0.9 (broker b on port 6970 + b)."""
    metrics = Metrics()
    routes = Routes(StaticTopology(PortPlan(6969, 0, 16), "198.18.0.9"), BrokerDirectory({}, (), 1.0), metrics)
    pair = ConnectionPair(routes, RULES, Incidents(metrics), 6969, "bench")
    pair.client, pair.upstream = _CountingTransport(), _CountingTransport()  # type: ignore[assignment]
    return pair


FETCH_CLIENT_NETWORKS = parse_client_networks("rack-a=198.18.8.0/24")


def _fetch_pair(source: str) -> ConnectionPair:
    """A broker-port connection admitted from `source`: in rack-a's client network, or in none."""
    metrics = Metrics()
    routes = Routes(StaticTopology(PortPlan(6969, 0, 16), "198.18.0.9"), BrokerDirectory({}, (), 1.0), metrics)
    rules = Rules(RULES.max_frame_bytes, RULES.max_in_flight, RULES.max_assembled_bytes, RULES.reserved,
                  client_networks=FETCH_CLIENT_NETWORKS, rack_software=RACK_FOLLOWING_SOFTWARE)

    def admit(pair: ConnectionPair) -> bool:
        pair.source = source
        return True

    pair = ConnectionPair(routes, rules, Incidents(metrics), 6971, f"{source}:1", on_open=admit)
    pair.client_connected(_CountingTransport())  # type: ignore[arg-type]
    pair.upstream = _CountingTransport()  # type: ignore[assignment]
    # the client names its software first (ApiVersions v3), as every connection of a following client does
    pair.from_client(request_frame(API_VERSIONS, 3, 0, {"client_software_name": "apache-kafka-java",
                                                        "client_software_version": "4.4.0"}))
    pair.in_flight.clear()  # as if the broker had answered it
    return pair


def fetch_response_frame(correlation_id: int, partitions: int, record_bytes: int = 1024) -> bytes:
    body = codec_encode(spec("response", 1, 12), {"responses": [{"topic": "orders", "partitions": [
        {"partition_index": p, "high_watermark": 10_000, "last_stable_offset": 10_000, "log_start_offset": 0,
         "preferred_read_replica": -1, "records": bytes(record_bytes)} for p in range(partitions)]}]})
    return _framed(struct.pack(">i", correlation_id) + b"\x00" + body)


def measure_fetch(frames: int, passes: int, partitions: int,
                  timing: Timing = Timing()) -> dict[str, float]:
    """µs per consumer Fetch v12 request (and its response) without a client rack and with one filled in."""
    figures = {}
    for name, source in (("no_rack", "198.18.0.250"), ("rack", "198.18.8.7")):
        pair = _fetch_pair(source)
        assert (pair.client_rack is not None) == (name == "rack")
        figures[name] = _best_us(frames, passes,
                                 _feeder(pair.from_client, [fetch_request(12, i, partitions) for i in range(frames)]),
                                 _feeder(pair.from_upstream, [fetch_response_frame(i, partitions) for i in range(frames)]),
                                 timing)
        if name == "rack":
            assert pair.metrics.racks.rack_assigned("rack-a").value == frames * passes, "every request was rewritten"
    return {"fetch_partitions": partitions, "fetch_request_us": figures["no_rack"][0],
            "fetch_request_rack_us": figures["rack"][0],
            "fetch_rack_cost_us": round(figures["rack"][0] - figures["no_rack"][0], 2),
            "fetch_response_us": figures["no_rack"][1], "fetch_response_rack_us": figures["rack"][1]}


def _feeder(feed, frames: list[bytes], per_read: int = 1):
    """Feeds the frames `per_read` to a chunk: what one read returns when a client pipelines them."""
    chunks = [b"".join(frames[i:i + per_read]) for i in range(0, len(frames), per_read)]

    def run() -> None:
        for data in chunks:
            feed(data)
    return run


def measure(frames: int, passes: int, request_size: int, metadata_topics: int, pipelined: int,
            fetch_partitions: int, timing: Timing = Timing()) -> dict[str, float]:
    """Every figure; with a profiler, what the timed feeds ran (bench.compiled_hot_path picks its modules by it)."""
    pair = _pair()
    produce = _best_us(frames, passes,
                       _feeder(pair.from_client, [produce_request(i, request_size) for i in range(frames)]),
                       _feeder(pair.from_upstream, [produce_response_frame(i) for i in range(frames)]), timing)
    # 1 KiB requests (batch.size=1024 linger.ms=0) arrive several to a read: the producer pipelines up to
    # max.in.flight.requests.per.connection of them, and the broker answers them together.
    pair = _pair()
    small = _best_us(frames, passes,
                     _feeder(pair.from_client, [produce_request(i, 1163) for i in range(frames)], pipelined),
                     _feeder(pair.from_upstream, [produce_response_frame(i) for i in range(frames)], pipelined),
                     timing)
    writes = (pair.upstream.writes + pair.client.writes) / (2 * frames * passes)  # type: ignore[union-attr]
    pair = _pair()
    metadata_frames = frames // 4
    metadata = _best_us(metadata_frames, passes,
                        _feeder(pair.from_client, [metadata_request(i) for i in range(metadata_frames)]),
                        _feeder(pair.from_upstream,
                                [metadata_response_frame(i, metadata_topics) for i in range(metadata_frames)]), timing)
    # bench.metadata_load's pipelined load: PIPELINE_DEPTH requests a write, their rewritten answers a read
    pair = _pair()
    _feeder(pair.from_client, [metadata_request(i) for i in range(metadata_frames)], PIPELINE_DEPTH)()
    _feeder(pair.from_upstream, [metadata_response_frame(i, metadata_topics) for i in range(metadata_frames)],
            PIPELINE_DEPTH)()
    metadata_writes = (pair.upstream.writes + pair.client.writes) / (2 * metadata_frames)  # type: ignore[union-attr]
    return {"produce_request_us": produce[0], "produce_response_us": produce[1],
            "per_pair_us": round(produce[0] + produce[1], 2),
            "pipelined": pipelined, "pipelined_1k_per_pair_us": round(small[0] + small[1], 2),
            "pipelined_1k_writes_per_frame": round(writes, 3),
            "metadata_topics": metadata_topics, "metadata_response_us": metadata[1],
            "metadata_pipelined_writes_per_frame": round(metadata_writes, 3),
            **measure_fetch(frames // 4, passes, fetch_partitions, timing)}


def options(**parser_args) -> argparse.ArgumentParser:
    """The workload's options (bench.compiled_hot_path takes the same)."""
    parser = argparse.ArgumentParser(**parser_args)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--request-size", type=int, default=16_000)
    parser.add_argument("--metadata-topics", type=int, default=0,
                        help="topics in each Metadata response (0: what the lab benchmark's load asks for)")
    parser.add_argument("--pipelined", type=int, default=5,
                        help="1 KiB Produce requests (and their responses) to a read (default %(default)s: the "
                             "producer's max.in.flight.requests.per.connection)")
    parser.add_argument("--fetch-partitions", type=int, default=8,
                        help="partitions in each consumer Fetch request and its response")
    parser.add_argument("--clock", choices=CLOCKS, default="wall",
                        help="time the feeds by the wall clock (default) or by this thread's CPU time, which other "
                             "work on a busy machine does not inflate")
    return parser


def measured(args: argparse.Namespace, profiler: cProfile.Profile | None = None) -> dict[str, float]:
    return measure(args.frames, args.passes, args.request_size, args.metadata_topics, args.pipelined,
                   args.fetch_partitions, Timing(CLOCKS[args.clock], profiler))


def main() -> None:
    parser = options(prog="python -m bench.hot_path", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    print(json.dumps(measured(parser.parse_args())))


if __name__ == "__main__":
    main()

"""``python -m bench.produce_relay``: gateway CPU per GB of Produce requests, their records copied or spliced, no lab.

The Produce counterpart of bench/fetch_relay.py, whose gateway process it reuses (bench/relay_runs.py runs both): a stand-in broker that reads every
Produce request (v9) whole and answers it with an empty response, one gateway node's listener (uvloop, the node's own
code) and a client that sends ``--requests`` requests of ``--request-kb`` kB each (one topic, one partition: the
benchmark's shape), five in flight as a Kafka producer pipelines them. Each round runs a fresh gateway copying
every Produce request, then one splicing every Produce request whatever its size (the size threshold set to 0; both
with GATEWAY_SPLICE on, the node's default), so the two costs compare at each size; the figure is the gateway process's user+sys CPU (from /proc) over the bytes
relayed. What it says is where splicing starts to pay (PRODUCE_SPLICE_MIN_BYTES in proxy/connection.py); the lab
benchmark (``python -m bench --workload produce_batched``) is what counts.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
from pathlib import Path

from gateway_app.protocol.api_keys import PRODUCE
from gateway_app.protocol.codec import encode
from gateway_app.protocol.message_specs import RESPONSE, spec
from lab.frames import recv_exactly, request_frame

from .fetch_relay import serve_gateway
from .relay_runs import measured, parser, run

VERSION = 9  # flexible, and its response has nothing the gateway rewrites (KIP-951 came with v10)
IN_FLIGHT = 5  # a Kafka producer's max.in.flight.requests.per.connection
MODES = ("copy", "splice")  # every Produce request copied, then every one spliced


def produce_frame(correlation_id: int, record_bytes: int) -> bytes:
    body = {"transactional_id": None, "acks": 1, "timeout_ms": 30000, "topic_data": [
        {"name": "bench-produce", "partition_data": [{"index": 0, "records": os.urandom(record_bytes)}]}]}
    return request_frame(PRODUCE, VERSION, correlation_id, body)


def serve_broker(ready: Path) -> None:
    body = encode(spec(RESPONSE, PRODUCE, VERSION), {})
    server = socket.create_server(("127.0.0.1", 0))
    ready.write_text(str(server.getsockname()[1]))
    while True:
        connection, _ = server.accept()
        try:
            while True:
                size = struct.unpack(">i", recv_exactly(connection, 4))[0]
                correlation = recv_exactly(connection, size)[4:8]
                connection.sendall(struct.pack(">i", 4 + 1 + len(body)) + correlation + b"\0" + body)
        except (OSError, ConnectionError):
            connection.close()


def produce(port: int, count: int, record_bytes: int) -> int:
    """Send `count` requests through the gateway, IN_FLIGHT at a time; the request bytes sent."""
    frame = bytearray(produce_frame(0, record_bytes))
    total = 0
    with socket.create_connection(("127.0.0.1", port)) as client:
        def send(correlation_id: int) -> None:
            frame[8:12] = struct.pack(">i", correlation_id)
            client.sendall(frame)

        for correlation_id in range(min(IN_FLIGHT, count)):
            send(correlation_id)
        for correlation_id in range(count):
            size = struct.unpack(">i", recv_exactly(client, 4))[0]
            recv_exactly(client, size)
            total += len(frame)
            if correlation_id + IN_FLIGHT < count:
                send(correlation_id + IN_FLIGHT)
    return total


def measure(args: argparse.Namespace) -> dict:
    record_bytes = args.request_kb * 1000
    result = measured("bench.produce_relay", (), MODES, args.rounds, lambda port: produce(port, IN_FLIGHT, record_bytes),
                      lambda port: produce(port, args.requests, record_bytes))
    return {**result, "request_kb": args.request_kb, "requests": args.requests}


def serve(role: str, ready: Path, rest: list[str]) -> None:
    if role == "broker":
        serve_broker(ready)
    else:
        from gateway_app.proxy import connection
        # GATEWAY_SPLICE on in both (the node's default: responses are read by the pair itself either way), and
        # every Produce request spliced or none: the cost of splicing them at each size, and nothing else
        connection.PRODUCE_SPLICE_MIN_BYTES = 0 if rest[1] == "splice" else 2**62
        serve_gateway(ready, int(rest[0]), True)


def main() -> None:
    options = parser(__doc__, MODES)
    options.add_argument("--requests", type=int, default=2000, help="requests sent per measured run")
    options.add_argument("--request-kb", type=int, default=128, help="kB of records in each request")
    run(options, serve, measure, lambda args: {"request_kb": args.request_kb})


if __name__ == "__main__":
    main()

"""``python -m bench.fetch_relay``: gateway CPU per GB of Fetch responses, GATEWAY_SPLICE on against off, no lab.

Three processes on loopback: a stand-in broker that answers every Fetch request (v17) with the same response of
``--response-mb`` MB of records (written with sendall, as a broker's sendfile would), one gateway node's listener
(uvloop, one ConnectionPair per client connection, the node's own code) and a client that fetches ``--fetches``
responses one after the other and reads them whole. Each round runs a fresh gateway with splicing off, then on; the
figure is the gateway process's user+sys CPU (from /proc) over the bytes relayed, and the rate the client saw. It
isolates what splicing changes in the gateway's own cost from the lab's brokers and clients; the lab benchmark
(``python -m bench --workload consume``) is what counts.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import io
import os
import socket
import struct
import uuid
from pathlib import Path

from kio.schema.errors import ErrorCode
from kio.schema.fetch.v17 import response as fetch_response
from kio.serial import entity_writer
from kio.static.primitive import i32, i32Timedelta, i64

from gateway_app.broker_addresses import BrokerInfo, PortPlan
from gateway_app.cluster.topology import StaticTopology
from gateway_app.metrics import Metrics
from gateway_app.protocol.reserved import ReservedNames
from gateway_app.proxy.connection import ClientProtocol, ConnectionPair, Rules
from gateway_app.proxy.directory import BrokerDirectory
from gateway_app.proxy.incidents import Incidents
from gateway_app.proxy.routes import Routes
from lab.frames import fetch_request, recv_exactly

from .relay_runs import measured, parser, run

MODES = ("off", "on")  # GATEWAY_SPLICE: the baseline, then the candidate


def response_frame(record_bytes: int) -> bytearray:
    """A Fetch v17 response frame (correlation id 0): one topic, four partitions sharing `record_bytes`."""
    share = record_bytes // 4
    partitions = tuple(fetch_response.PartitionData(
        partition_index=i32(i), error_code=ErrorCode.none, high_watermark=i64(0), aborted_transactions=(),
        records=os.urandom(share)) for i in range(4))
    message = fetch_response.FetchResponse(
        throttle_time=i32Timedelta.parse(datetime.timedelta(0)), error_code=ErrorCode.none, session_id=i32(0),
        responses=(fetch_response.FetchableTopicResponse(topic_id=uuid.UUID(int=1), partitions=partitions),))
    body = io.BytesIO()
    entity_writer(fetch_response.FetchResponse)(body, message)
    payload = struct.pack(">i", 0) + b"\0" + body.getvalue()  # response header v1
    return bytearray(struct.pack(">i", len(payload)) + payload)


def serve_broker(ready: Path, record_bytes: int) -> None:
    answer = response_frame(record_bytes)
    server = socket.create_server(("127.0.0.1", 0))
    ready.write_text(str(server.getsockname()[1]))
    while True:
        connection, _ = server.accept()
        try:
            while True:
                size = struct.unpack(">i", recv_exactly(connection, 4))[0]
                request = recv_exactly(connection, size)
                answer[4:8] = request[4:8]  # the correlation id
                connection.sendall(answer)
        except (OSError, ConnectionError):
            connection.close()


def serve_gateway(ready: Path, broker_port: int, splice: bool) -> None:
    import uvloop

    async def main() -> None:
        metrics = Metrics()
        directory = BrokerDirectory({}, (), 1.0)
        directory.described([BrokerInfo(1, "127.0.0.1", broker_port, None)])
        routes = Routes(StaticTopology(PortPlan(6969, 1, 8), "127.0.0.1"), directory, metrics)
        rules = Rules(max_frame_bytes=100 << 20, max_in_flight=500, max_assembled_bytes=1 << 20,
                      reserved=ReservedNames.of("_gateway_bench", "_gateway_bench_members"), splice=splice)

        def protocol() -> ClientProtocol:
            return ClientProtocol(ConnectionPair(routes, rules, Incidents(metrics), 6970, "bench"))  # broker 1

        server = await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", 0)
        ready.write_text(str(server.sockets[0].getsockname()[1]))
        await asyncio.Event().wait()

    uvloop.run(main())


def fetch(port: int, count: int) -> int:
    """Fetch `count` responses through the gateway, each read whole; the bytes received."""
    total = 0
    buffer = memoryview(bytearray(8 << 20))
    with socket.create_connection(("127.0.0.1", port)) as client:
        for correlation_id in range(1, count + 1):
            client.sendall(fetch_request(17, correlation_id))
            size = struct.unpack(">i", recv_exactly(client, 4))[0]
            left = size
            while left:
                got = client.recv_into(buffer[:min(left, len(buffer))])
                if not got:
                    raise ConnectionError("the gateway closed mid-response")
                left -= got
            total += 4 + size
    return total


def measure(args: argparse.Namespace) -> dict:
    result = measured("bench.fetch_relay", (str(args.response_mb * 1_000_000),), MODES, args.rounds,
                      lambda port: fetch(port, 3), lambda port: fetch(port, args.fetches))
    return {**result, "response_mb": args.response_mb, "fetches": args.fetches}


def serve(role: str, ready: Path, rest: list[str]) -> None:
    if role == "broker":
        serve_broker(ready, int(rest[0]))
    else:
        serve_gateway(ready, int(rest[0]), rest[1] == "on")


def main() -> None:
    options = parser(__doc__, MODES)
    options.add_argument("--fetches", type=int, default=250, help="responses fetched per measured run")
    options.add_argument("--response-mb", type=int, default=4, help="MB of records in each response")
    run(options, serve, measure)


if __name__ == "__main__":
    main()

"""Metadata requests per second one endpoint answers: pipelined raw requests over a few connections.

Run as a separate process so the load generator does not share a core with what it measures.
``python -m bench.metadata_load HOST:PORT SECONDS [CONNECTIONS [DEPTH]]`` prints the request rate and the requests
answered as JSON (4 connections of 16 pipelined requests unless told otherwise).
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys
import time

from lab.frames import metadata_request

CONNECTIONS = 4
PIPELINE_DEPTH = 16


async def _connection(host: str, port: int, deadline: float, depth: int) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    batch = b"".join(metadata_request(i) for i in range(depth))
    answered = 0
    while time.monotonic() < deadline:
        writer.write(batch)
        for _ in range(depth):
            size = struct.unpack(">i", await reader.readexactly(4))[0]
            await reader.readexactly(size)
            answered += 1
    writer.close()
    return answered


async def measure(endpoint: str, seconds: float, connections: int = CONNECTIONS,
                  depth: int = PIPELINE_DEPTH) -> dict[str, float]:
    host, port = endpoint.rsplit(":", 1)
    start = time.monotonic()
    counts = await asyncio.gather(*(_connection(host, int(port), start + seconds, depth) for _ in range(connections)))
    return {"requests_per_s": sum(counts) / (time.monotonic() - start), "requests": sum(counts)}


if __name__ == "__main__":
    endpoint, seconds, *shape = sys.argv[1:]
    print(json.dumps(asyncio.run(measure(endpoint, float(seconds), *(int(value) for value in shape)))))

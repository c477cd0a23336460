"""Metadata requests per second one endpoint answers: pipelined raw requests over a few connections.

Run as a separate process so the load generator does not share a core with what it measures.
``python -m bench.metadata_load HOST:PORT SECONDS`` prints the request rate as JSON.
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


async def _connection(host: str, port: int, deadline: float) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    batch = b"".join(metadata_request(i) for i in range(PIPELINE_DEPTH))
    answered = 0
    while time.monotonic() < deadline:
        writer.write(batch)
        for _ in range(PIPELINE_DEPTH):
            size = struct.unpack(">i", await reader.readexactly(4))[0]
            await reader.readexactly(size)
            answered += 1
    writer.close()
    return answered


async def measure(endpoint: str, seconds: float) -> float:
    host, port = endpoint.rsplit(":", 1)
    start = time.monotonic()
    counts = await asyncio.gather(*(_connection(host, int(port), start + seconds) for _ in range(CONNECTIONS)))
    return sum(counts) / (time.monotonic() - start)


if __name__ == "__main__":
    print(json.dumps({"requests_per_s": asyncio.run(measure(sys.argv[1], float(sys.argv[2])))}))

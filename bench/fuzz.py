"""``python -m bench.fuzz``: throw a million hostile frames at one gateway node and watch it.

Every hostile frame goes over a fresh TCP connection to a random gateway port (a hostile frame closes its
connection, so one frame a connection is what a real attacker gets): garbage, negative and oversized sizes, headers
too short to parse, valid request headers of random API keys and versions with junk bodies, truncated frames, and
well-formed Produce requests to the node's own members topic. Meanwhile one well-behaved connection
sends a Metadata request every 100 ms and must be answered every time, never closed.

It ends with the process alive and ready, the bystander's connection untouched, and the node's resident memory
(VmRSS, and VmHWM: the peak) reported beside its value before the run; `--max-rss-mib` turns the bound into an
exit status. The suite runs a short profile (tests/e2e/test_fuzz_frames.py); the full run is

    .venv/bin/python -m bench.fuzz --frames 1000000 --out bench/results/fuzz.json

and needs a lab (`python -m lab up`). It stops by itself after --frames or --minutes, whichever comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import struct
import sys
import time
from pathlib import Path

from lab.state import LabState

from .__main__ import HTTP_PORT, gateway_node
from lab.frames import metadata_request

PORT_COUNT = 10
FUZZ_CLUSTER = "fuzz"


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def hostile(rng: random.Random, max_frame: int) -> bytes:
    kind = rng.randrange(7)
    if kind == 0:
        return rng.randbytes(rng.randint(1, 200))
    if kind == 1:
        return struct.pack(">i", rng.randint(-2**31, -1))
    if kind == 2:
        return struct.pack(">i", rng.randint(max_frame + 1, 2**31 - 1)) + b"x" * 64
    if kind == 3:
        return frame(rng.randbytes(rng.randint(0, 9)))
    header = struct.pack(">hhih", rng.randint(-5, 100), rng.randint(-2, 20), rng.randint(-2**31, 2**31 - 1), 5) + b"fuzz!"
    if kind == 4:
        return frame(header + rng.randbytes(rng.randint(0, 300)))
    if kind == 5:
        return frame(header + rng.randbytes(rng.randint(0, 50)))[:-3]
    return reserved_produce(rng.randint(0, 2**31 - 1))


def reserved_produce(correlation_id: int) -> bytes:
    """A valid Produce v9 request (acks=1) to a reserved topic: answered TOPIC_AUTHORIZATION_FAILED."""
    topic = f"_gateway_{FUZZ_CLUSTER}_members".encode()
    body = (b"\x00" + struct.pack(">hi", 1, 1000)  # transactional id null (compact), acks, timeout
            + b"\x02" + bytes([len(topic) + 1]) + topic  # one topic
            + b"\x02" + struct.pack(">i", 0) + b"\x00" + b"\x00"  # one partition, null records, tags
            + b"\x00" + b"\x00")  # topic tags, request tags
    header = struct.pack(">hhih", 0, 9, correlation_id, 4) + b"fuzz" + b"\x00"
    return frame(header + body)


async def throw(address: str, port: int, data: bytes) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), 5)
    except (OSError, asyncio.TimeoutError):
        return
    try:
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        await asyncio.wait_for(reader.read(), 3)
    except (OSError, asyncio.TimeoutError):
        pass
    finally:
        writer.close()


async def bystander(address: str, port: int, stop: asyncio.Event, result: dict) -> None:
    reader, writer = await asyncio.open_connection(address, port)
    correlation = 0
    while not stop.is_set():
        correlation += 1
        writer.write(metadata_request(correlation))
        size = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), 10))[0]
        answer = await reader.readexactly(size)
        assert struct.unpack(">i", answer[:4])[0] == correlation
        result["answered"] = correlation
        await asyncio.sleep(0.1)
    writer.close()


def memory(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) // 1024
    return fields


async def attack(address: str, port_start: int, frames: int, minutes: float, workers: int, seed: int,
                 max_frame: int) -> dict:
    rng = random.Random(seed)
    stop = asyncio.Event()
    seen: dict = {"answered": 0}
    watcher = asyncio.ensure_future(bystander(address, port_start, stop, seen))
    deadline = time.monotonic() + 60 * minutes
    sent = 0

    async def worker() -> None:
        nonlocal sent
        while sent < frames and time.monotonic() < deadline and not watcher.done():
            sent += 1
            await throw(address, port_start + rng.randrange(PORT_COUNT), hostile(rng, max_frame))

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(workers)))
    stop.set()
    await watcher  # raises if the bystander's connection broke or an answer was wrong
    return {"frames": sent, "seconds": round(time.monotonic() - started, 1), "bystander_answered": seen["answered"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--minutes", type=float, default=60.0, help="stop after this long whatever the count")
    parser.add_argument("--workers", type=int, default=64, help="hostile connections at once")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-frame", type=int, default=1024 * 1024, help="the node's GATEWAY_MAX_FRAME_BYTES")
    parser.add_argument("--max-rss-mib", type=int, default=0, help="fail if the node's peak RSS exceeds this")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    lab = LabState.load()
    env = {"GATEWAY_MAX_FRAME_BYTES": str(args.max_frame), "GATEWAY_MAX_CONNECTIONS_PER_SOURCE": "2000",
           "GATEWAY_CLUSTER_ID": FUZZ_CLUSTER}  # reserved_produce() names this cluster's members topic
    with gateway_node(lab, env) as (pid, bootstrap):
        address, port = bootstrap.rsplit(":", 1)
        before = memory(pid)
        result = asyncio.run(attack(address, int(port), args.frames, args.minutes, args.workers, args.seed,
                                    args.max_frame))
        after = memory(pid)
        with socket.create_connection((address, HTTP_PORT), timeout=5) as probe:
            probe.sendall(b"GET /health/ready HTTP/1.0\r\n\r\n")
            ready = probe.recv(64).split(b" ")[1] == b"200"
        result.update(rss_mib_before=before["VmRSS"], rss_mib_after=after["VmRSS"], peak_rss_mib=after["VmHWM"],
                      ready=ready)
    print(json.dumps(result, sort_keys=True))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    ok = ready and (not args.max_rss_mib or result["peak_rss_mib"] <= args.max_rss_mib)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

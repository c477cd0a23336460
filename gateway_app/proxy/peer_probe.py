"""Is a peer ready to take a client over? Asked exactly as a client would: through the peer's port for the
broker.

Being a live member only says a peer heartbeats to the gateway group; what a client needs is that the
peer accepts a connection on the broker's port and relays to that broker. So a probe is a Kafka
ApiVersions v0 round trip through that port (with a PROXY v2 LOCAL header and TLS when this cluster's
listeners use them), and `PeerProbes` caches each verdict for PROBE_TTL_S. It needs no HTTP port in the
member record and fails closed: an unreachable peer only means foreign connections stay.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct
import time
from typing import Any, Callable

from ..protocol.api_keys import API_VERSIONS
from .proxy_protocol import LOCAL_HEADER

log = logging.getLogger(__name__)

PROBE_TTL_S = 2.0  # a peer's verdict is reused this long
PROBE_TIMEOUT_S = 2.0


API_VERSIONS_V0 = struct.pack(">hhih", API_VERSIONS, 0, 0x6b67, 8) + b"handover"  # key, version, correlation, client id


async def answers_api_versions(host: str, port: int, proxy_header: bool, tls: ssl.SSLContext | None,
                               timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """True when host:port accepts a connection and relays an ApiVersions v0 answer with no error."""
    async def ask() -> bool:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            if proxy_header:
                writer.write(LOCAL_HEADER)
                await writer.drain()
            if tls is not None:
                await writer.start_tls(tls, server_hostname=host)
            writer.write(struct.pack(">i", len(API_VERSIONS_V0)) + API_VERSIONS_V0)
            size, correlation_id, error_code = struct.unpack(">iih", await reader.readexactly(10))
            return correlation_id == 0x6b67 and error_code == 0 and size >= 6
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(ask(), timeout_s)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ssl.SSLError):
        return False


class PeerProbes:
    """Cached verdicts of the peers' broker ports; probes run in the background, one per (peer, port)."""

    def __init__(self, probe: Callable[[str, int], Any], clock: Callable[[], float] = time.monotonic) -> None:
        self._probe = probe  # async (host, port) -> bool
        self._clock = clock
        self._verdicts: dict[tuple[str, int], tuple[bool, float]] = {}
        self._running: set[tuple[str, int]] = set()

    def ready(self, host: str, port: int) -> bool | None:
        target = (host, port)
        verdict = self._verdicts.get(target)
        if verdict is not None and self._clock() - verdict[1] < PROBE_TTL_S:
            return verdict[0]
        if target not in self._running:
            self._running.add(target)
            asyncio.ensure_future(self._run(target))
        return verdict[0] if verdict is not None and verdict[0] is False else None  # stale "no" stays no

    async def _run(self, target: tuple[str, int]) -> None:
        try:
            ok = await self._probe(*target)
        except Exception as error:  # a probe bug must not stop handovers forever, nor pass as ready
            log.warning("readiness probe of %s:%d failed: %r", *target, error)
            ok = False
        finally:
            self._running.discard(target)
        self._verdicts[target] = (ok, self._clock())

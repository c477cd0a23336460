"""Incidents: why a client connection was refused or closed early, counted in full and logged with a limit.

Every byte from a client is hostile, so a flood of bad frames or refused connections is counted in
full (the metric) but becomes at most one log line per key every LIMIT_LOG_INTERVAL_S.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from ..metrics import Metrics, api_name
from ..protocol.headers import MalformedFrame
from .routes import UpstreamError

log = logging.getLogger(__name__)

LIMIT_LOG_INTERVAL_S = 10.0
MAX_LOG_KEYS = 10_000


class ClientConnection(Protocol):
    """What an incident names of the client connection it happened on (a ConnectionPair)."""

    peer: str | None  # the client's address:port, as the PROXY header or the socket gave it
    port: int  # the listener's port
    source: str  # the client's address, empty until the connection is admitted


class Incidents:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._limit_logged: dict[str, float] = {}  # key -> when it was last logged

    def malformed(self, pair: ClientConnection, error: MalformedFrame) -> None:
        self.metrics.malformed_frames.labels(error.reason).inc()
        self.log_limited(f"malformed:{error.reason}:{pair.source or pair.peer}", "closing client %s on port %d: %s",
                         pair.peer, pair.port, error)

    def upstream_failed(self, pair: ClientConnection, error: UpstreamError) -> None:
        self.metrics.upstream_errors.labels(error.reason).inc()
        log.warning("closing client %s on port %d, broker side failed: %s", pair.peer, pair.port, error)

    def refused_reserved(self, pair: ClientConnection, api_key: int, kind: str) -> None:
        self.metrics.reserved_refused.labels(api_name(api_key), kind).inc()
        self.log_limited(f"reserved:{pair.peer}", "refused %s from %s: it names the gateway cluster's own %s",
                         api_name(api_key), pair.peer, kind)

    def connection_refused(self, pair: ClientConnection, reason: str, detail: str) -> None:
        self.metrics.connections_refused.labels(reason).inc()
        self.log_limited(reason, "closing client %s on port %d: %s (%s)", pair.peer, pair.port, reason, detail)

    def log_limited(self, key: str, message: str, *args: object) -> None:
        """One line per key and LIMIT_LOG_INTERVAL_S."""
        now = time.monotonic()
        if now - self._limit_logged.get(key, -LIMIT_LOG_INTERVAL_S) >= LIMIT_LOG_INTERVAL_S:
            if len(self._limit_logged) >= MAX_LOG_KEYS:
                self._limit_logged.clear()
            self._limit_logged[key] = now
            log.warning(message, *args)

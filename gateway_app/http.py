"""The node's HTTP port: liveness, readiness (named checks), Prometheus metrics, and the cluster view."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import Metrics
from .readiness import Readiness

log = logging.getLogger(__name__)

MAX_REQUEST_HEAD = 8192
READ_TIMEOUT_S = 5.0

Response = tuple[int, str, bytes]


def _json(status: int, body: Any) -> Response:
    return status, "application/json", json.dumps(body, indent=2, sort_keys=True).encode() + b"\n"


class HttpServer:
    def __init__(self, readiness: Readiness, metrics: Metrics, cluster_view: Callable[[], dict[str, Any]]) -> None:
        self._routes: dict[str, Callable[[], Response]] = {
            "/health/live": lambda: (200, "text/plain", b"live\n"),
            "/health/ready": self._ready,
            "/metrics": lambda: (200, CONTENT_TYPE_LATEST, generate_latest(metrics.registry)),
            "/cluster": lambda: _json(200, cluster_view()),
        }
        self._readiness = readiness
        self._server: asyncio.AbstractServer | None = None

    def _ready(self) -> Response:
        results = self._readiness.evaluate()
        ready = all(r.ok for r in results.values())
        checks = {name: {"ok": r.ok, "detail": r.detail} for name, r in results.items()}
        return _json(200 if ready else 503, {"ready": ready, "checks": checks})

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port, reuse_address=True)
        log.info("HTTP on %s:%d", host, port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            route = self._routes.get(path.split("?", 1)[0])
            if method not in ("GET", "HEAD"):
                status, content_type, body = 405, "text/plain", b"method not allowed\n"
            elif route is None:
                status, content_type, body = 404, "text/plain", b"not found\n"
            else:
                status, content_type, body = route()
            writer.write(
                f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + (body if method == "GET" else b""))
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                ConnectionError):
            pass  # a broken HTTP client only loses its own connection
        except Exception:
            log.exception("HTTP handler failed")
        finally:
            writer.close()

"""The node's HTTP port, an operator's port: liveness, readiness (named checks), Prometheus metrics, and the
cluster view.

Served by aiohttp's low-level server (its HTTP/1.1 parser and response writer) with limits of our own around
it: a few open connections at most, each one answering a single request and gone within a deadline, small
request lines and headers, GET/HEAD only. Sources outside GATEWAY_HTTP_ADMIN_NETWORKS get MAX_PER_SOURCE
connections each and never the last RESERVED_FOR_ADMIN: clients that can reach the port cannot fill it, and
readiness checks and scrapes from the operator's networks are still answered. /cluster names the backing brokers' addresses only to an operator:
a request from GATEWAY_HTTP_ADMIN_NETWORKS, or with `Authorization: Bearer <GATEWAY_HTTP_ADMIN_TOKEN>`.
Everything refused (or answered without the addresses) is counted in gateway_http_refused_total by reason.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from typing import Any, Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .client_networks import contains
from .config import Settings
from .metrics import Metrics
from .readiness import Readiness

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 32  # Prometheus, a load balancer's checks and an operator need a handful
MAX_PER_SOURCE = 4  # open connections from one address outside the admin networks
RESERVED_FOR_ADMIN = 8  # of MAX_CONNECTIONS, kept for the admin networks (scrapes, readiness checks)
CONNECTION_DEADLINE_S = 5.0  # from accept to the response written: every route answers in milliseconds
MAX_REQUEST_LINE = 2048
MAX_HEADER_FIELD = 2048
MAX_HEADERS = 32
LOG_EVERY_S = 10.0  # refusals are counted each time, logged at most this often per reason

# 4xx answers by aiohttp (a request it cannot parse or that breaks a size limit) or by us
_REFUSAL_REASONS = {400: "bad_request", 403: "bad_token", 404: "not_found", 405: "method_not_allowed",
                    413: "too_large", 431: "too_large"}


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, content_type="application/json",
                        body=json.dumps(body, indent=2, sort_keys=True).encode() + b"\n")


class HttpServer:
    def __init__(self, settings: Settings, readiness: Readiness, metrics: Metrics,
                 cluster_view: Callable[[bool], dict[str, Any]]) -> None:
        self._routes: dict[str, Callable[[web.BaseRequest], web.Response]] = {
            "/health/live": lambda _: web.Response(text="live\n"),
            "/health/ready": self._ready,
            "/metrics": lambda _: web.Response(body=generate_latest(metrics.registry),
                                               headers={"Content-Type": CONTENT_TYPE_LATEST}),
            "/cluster": self._cluster,
        }
        self._readiness = readiness
        self._metrics = metrics
        self._cluster_view = cluster_view
        self._admin_token = settings.http_admin_token.encode() if settings.http_admin_token else None
        self._admin_networks = settings.http_admin_networks
        self._open: set[_Guard] = set()
        self._per_source: dict[str, int] = {}  # open connections per source outside the admin networks
        self._last_logged: dict[str, float] = {}
        self._server: web.Server | None = None
        self._listener: asyncio.AbstractServer | None = None

    # --- routes ----------------------------------------------------------------------------------

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        route = self._routes.get(request.path)
        if request.method not in ("GET", "HEAD"):
            response = web.Response(status=405, text="method not allowed\n", headers={"Allow": "GET, HEAD"})
        elif route is None:
            response = web.Response(status=404, text="not found\n")
        else:
            response = route(request)
        response.force_close()  # one request per connection: the deadline then bounds every connection
        return response

    def _ready(self, _: web.BaseRequest) -> web.Response:
        results = self._readiness.evaluate()
        ready = all(r.ok for r in results.values())
        checks = {name: {"ok": r.ok, "detail": r.detail} for name, r in results.items()}
        return _json(200 if ready else 503, {"ready": ready, "checks": checks})

    def _cluster(self, request: web.BaseRequest) -> web.Response:
        peer = request.remote or "?"
        authorization = request.headers.get("Authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if (self._admin_token is None or scheme.lower() != "bearer"
                    or not hmac.compare_digest(token.strip().encode(), self._admin_token)):
                self.refused("bad_token", f"/cluster from {peer}: wrong operator token (or none configured)")
                return web.Response(status=403, text="forbidden\n")
            self._metrics.http_admin_views.labels("token").inc()
            return _json(200, self._cluster_view(True))
        if self._from_admin_network(peer):
            self._metrics.http_admin_views.labels("network").inc()
            return _json(200, self._cluster_view(True))
        self.refused("brokers_withheld", None)  # an ordinary answer, just without the brokers' addresses
        return _json(200, self._cluster_view(False))

    def _from_admin_network(self, peer: str) -> bool:
        return contains(self._admin_networks, peer)

    def admit(self, host: str) -> str | None:
        """Why a new connection from `host` is refused, or None (then it is counted as open)."""
        if len(self._open) >= MAX_CONNECTIONS:
            return "too_many_connections"
        if self._from_admin_network(host):
            return None
        if len(self._open) >= MAX_CONNECTIONS - RESERVED_FOR_ADMIN:
            return "too_many_connections"
        if self._per_source.get(host, 0) >= MAX_PER_SOURCE:
            return "too_many_from_source"
        self._per_source[host] = self._per_source.get(host, 0) + 1
        return None

    def release(self, host: str) -> None:
        left = self._per_source.get(host, 0) - 1
        if left > 0:
            self._per_source[host] = left
        else:
            self._per_source.pop(host, None)

    # --- refusals --------------------------------------------------------------------------------

    def refused(self, reason: str, detail: str | None) -> None:
        """Count every refusal; log one line per reason at most every LOG_EVERY_S (a flood stays a trickle)."""
        self._metrics.http_refused.labels(reason).inc()
        now = time.monotonic()
        if detail is not None and now - self._last_logged.get(reason, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._last_logged[reason] = now
            log.warning("HTTP refused (%s): %s", reason, detail)

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> None:
        self._server = web.Server(
            self._dispatch, access_log_class=_refusal_counter(self), access_log=log, logger=_ClientErrorsAsDebug(),
            keepalive_timeout=CONNECTION_DEADLINE_S, max_line_size=MAX_REQUEST_LINE,
            max_field_size=MAX_HEADER_FIELD, max_headers=MAX_HEADERS, tcp_keepalive=False)
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(lambda: _Guard(self), host, port, reuse_address=True, backlog=128)
        log.info("HTTP on %s:%d", host, port)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._server is not None:
            await self._server.shutdown(1.0)


class _Guard(asyncio.Protocol):
    """One HTTP connection: admitted while fewer than MAX_CONNECTIONS are open, aborted at the deadline;
    aiohttp's own protocol does the HTTP in between."""

    def __init__(self, owner: HttpServer) -> None:
        self._owner = owner
        self._inner: asyncio.Protocol | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._host = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._host = str(peer[0]) if peer else "?"
        refusal = self._owner.admit(self._host)
        if refusal is not None:
            self._owner.refused(refusal, f"{len(self._owner._open)} connections open, closing {peer}")
            transport.abort()
            return
        self._owner._open.add(self)
        self._timer = asyncio.get_running_loop().call_later(CONNECTION_DEADLINE_S, self._expire, transport, peer)
        assert self._owner._server is not None
        self._inner = self._owner._server()
        self._inner.connection_made(transport)

    def _expire(self, transport: asyncio.BaseTransport, peer: Any) -> None:
        if not transport.is_closing():
            self._owner.refused("timeout", f"no complete request from {peer} within {CONNECTION_DEADLINE_S:.0f}s")
            transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self in self._owner._open:
            self._owner._open.discard(self)
            self._owner.release(self._host)
        if self._inner is not None:
            self._inner.connection_lost(exc)


def _refusal_counter(owner: HttpServer) -> type[AbstractAccessLogger]:
    class RefusalCounter(AbstractAccessLogger):
        """aiohttp's access-log hook sees every response, its own 400s for unparseable or oversized requests
        included: each 4xx is a refusal, counted by reason."""

        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            reason = _REFUSAL_REASONS.get(response.status)
            if reason is not None and reason != "bad_token":  # bad_token is counted where it is decided
                owner.refused(reason, f"{request.method} {request.path[:80]!r} from {request.remote}: {response.status}")

    return RefusalCounter


class _ClientErrorsAsDebug(logging.LoggerAdapter):
    """aiohttp logs a traceback for every request it cannot parse: the client's problem, counted and logged
    (rate-limited) as a refusal, so the traceback goes to debug. Anything else is a bug of ours and stays an error."""

    def __init__(self) -> None:
        super().__init__(log, {})

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self.logger.debug(str(msg) + ": %r", *args, exc_info)
        else:
            self.logger.error(msg, *args, exc_info=exc_info, **kwargs)

"""The node's Kafka listeners: one per port of the plan, the port deciding the upstream broker.

`Gateway` accepts (PROXY header and TLS first when configured), makes a ConnectionPair for each client
(proxy/connection.py) with the node's `Routes`, admits it under the connection limits (on_open), keeps
the registry of live pairs (handover.py reads it), closes pairs at their deadlines and drains on SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Callable

from ..client_networks import contains
from ..close_reasons import CloseReason
from ..config import Settings
from ..protocol.reserved import ReservedNames
from ..metrics import Metrics
from ..protocol.headers import MalformedFrame
from . import proxy_protocol
from .connection import AssemblyBudget, ClientProtocol, ConnectionPair, Rules
from .incidents import Incidents
from .routes import Routes
from .tls import TLS_HANDSHAKE_TIMEOUT_S, client_context, handshake_failure_reason

log = logging.getLogger(__name__)

PROXY_HEADER_TIMEOUT_S = 5.0
SWEEP_INTERVAL_S = 1.0  # deadlines are checked this often: they fire up to a second late


def rules_of(settings: Settings, client_tls: bool, reserved: ReservedNames) -> Rules:
    return Rules(settings.max_frame_bytes, settings.max_in_flight, settings.max_assembled_bytes, reserved, client_tls,
                 AssemblyBudget(settings.max_assembled_bytes_total), settings.client_rack_networks,
                 settings.client_rack_software, splice=settings.splice)


class Gateway:
    """Listeners and the live connection pairs: accepts, admits under the connection limits, closes at
    deadlines, drains. Where a connection goes is its `Routes`' business."""

    def __init__(self, settings: Settings, routes: Routes, metrics: Metrics, reserved: ReservedNames) -> None:
        self.settings = settings
        self.routes = routes
        self.plan = routes.plan
        self.metrics = metrics
        self.incidents = Incidents(metrics)
        self.client_ssl = client_context(settings)
        self.rules = rules_of(settings, self.client_ssl is not None, reserved)
        self.pairs: set[ConnectionPair] = set()
        self.listening = False
        self._servers: list[asyncio.AbstractServer] = []
        self._sockets: list[socket.socket] = []
        self._accept_tasks: list[asyncio.Task[None]] = []
        self._per_source: dict[str, int] = {}  # client address -> open connections (entries removed at 0)
        self._closing: dict[ConnectionPair, float] = {}  # closed, unsent bytes still queued -> abort deadline
        self._sweeper: asyncio.Task[None] | None = None

    # --- listeners -----------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        host = self.settings.bind_host
        for port in self.plan.ports():
            if self.settings.proxy_protocol or self.client_ssl is not None:  # we accept ourselves, see tls.py
                sock = socket.create_server((host, port), backlog=1024, reuse_port=False)
                sock.setblocking(False)
                self._sockets.append(sock)
                self._accept_tasks.append(asyncio.ensure_future(self._accept(sock, port)))
            else:
                self._servers.append(await loop.create_server(
                    self._factory(port), host, port, reuse_address=True, backlog=1024))
        self.listening = True
        self._sweeper = asyncio.ensure_future(self._sweep_forever())
        log.info("listening on %s ports %d..%d (bootstrap %d)%s", host, self.plan.port_start,
                 self.plan.ports()[-1], self.plan.bootstrap_port,
                 " with TLS" if self.client_ssl else "")

    def _factory(self, port: int, peer: str | None = None) -> Callable[[], ClientProtocol]:
        return lambda: ClientProtocol(ConnectionPair(self.routes, self.rules, self.incidents, port, peer,
                                                     on_open=self.register, on_close=self.unregister))

    async def _accept(self, sock: socket.socket, port: int) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, _ = await loop.sock_accept(sock)
            except OSError as error:
                log.warning("accept failed: %s", error)
                await asyncio.sleep(0.1)
                continue
            asyncio.ensure_future(self._start_accepted(client, port))

    async def _start_accepted(self, client: socket.socket, port: int) -> None:
        """The PROXY header if one is expected, then the TLS handshake if TLS is on, then the connection pair."""
        loop = asyncio.get_running_loop()
        peer: str | None = None
        if self.settings.proxy_protocol:
            try:
                peer = await asyncio.wait_for(proxy_protocol.read_header(loop, client), PROXY_HEADER_TIMEOUT_S)
            except (MalformedFrame, asyncio.TimeoutError, OSError) as error:
                reason = getattr(error, "reason", CloseReason.PROXY_HEADER)
                self.metrics.malformed_frames.labels(reason).inc()
                log.warning("closing connection on port %d: bad PROXY header (%s)", port, error or "timeout")
                client.close()
                return
            if peer is not None and not self._proxy_trusted(client, peer, port):
                client.close()
                return
        if self.client_ssl is None:
            await loop.connect_accepted_socket(self._factory(port, peer), client)
            return
        if peer is None:
            try:
                host, peer_port = client.getpeername()[:2]
                peer = f"{host}:{peer_port}"
            except OSError:
                peer = "?"
        try:
            await loop.connect_accepted_socket(self._factory(port, peer), client, ssl=self.client_ssl,
                                               ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError) as error:  # ssl.SSLError is an OSError
            self.tls_failed(peer, port, error)
            client.close()

    def _proxy_trusted(self, client: socket.socket, claimed: str, port: int) -> bool:
        """A PROXY header that names a client is believed only from GATEWAY_PROXY_TRUSTED_NETWORKS: from anyone
        else it would let a client claim any address (another rack, another source for the per-source cap).
        A LOCAL header names nobody (read_header gives None) and never gets here."""
        try:
            sender = client.getpeername()[0]
        except OSError:
            sender = "?"
        if contains(self.settings.proxy_trusted_networks, sender):
            return True
        self.metrics.connections_refused.labels(CloseReason.PROXY_UNTRUSTED).inc()
        self.incidents.log_limited(f"{CloseReason.PROXY_UNTRUSTED}:{sender}", "closing connection from %s on port %d: "
                                   "%s (its PROXY header claims %s; not in GATEWAY_PROXY_TRUSTED_NETWORKS)",
                                   sender, port, CloseReason.PROXY_UNTRUSTED, claimed)
        return False

    def tls_failed(self, peer: str, port: int, error: BaseException) -> None:
        reason = handshake_failure_reason(error)
        self.metrics.tls_handshake_failures.labels(reason).inc()
        log.warning("TLS handshake failed: client %s on port %d: %s (%s)", peer, port, reason, error)

    # --- connection pairs ----------------------------------------------------------------------

    def register(self, pair: ConnectionPair) -> bool:
        """Admit a new client connection, or refuse it (False) when a connection limit is reached."""
        if pair.peer is None:
            peername = pair.client.get_extra_info("peername")
            pair.peer = f"{peername[0]}:{peername[1]}" if peername else "?"
        source = pair.peer.rpartition(":")[0] or pair.peer
        if len(self.pairs) >= self.settings.max_connections:
            self.incidents.connection_refused(pair, CloseReason.NODE_LIMIT, f"{len(self.pairs)} open, GATEWAY_MAX_CONNECTIONS")
            return False
        if self._per_source.get(source, 0) >= self.settings.max_connections_per_source:
            self.incidents.connection_refused(pair, CloseReason.SOURCE_LIMIT, f"{self._per_source[source]} open from {source}, "
                                                          "GATEWAY_MAX_CONNECTIONS_PER_SOURCE")
            return False
        self._per_source[source] = self._per_source.get(source, 0) + 1
        pair.source = source
        self.pairs.add(pair)
        active, total = self.metrics.listener(pair.port, pair.broker_id)
        active.inc()
        total.inc()
        return True

    def unregister(self, pair: ConnectionPair) -> None:
        if pair in self.pairs:
            self.pairs.discard(pair)
            left = self._per_source.get(pair.source, 0) - 1
            if left > 0:
                self._per_source[pair.source] = left
            else:
                self._per_source.pop(pair.source, None)
            self.metrics.listener(pair.port, pair.broker_id)[0].dec()
            if pair.upstream is not None:
                self.metrics.upstream_connections_active.labels(pair.upstream_label).dec()
            client = pair.client
            if client is not None and client.get_write_buffer_size():  # close() waits for them to be read
                self._closing[pair] = time.monotonic() + self.settings.client_write_timeout_s

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                self.sweep(time.monotonic())
            except Exception:  # a bug here must not stop the deadlines for good
                log.exception("connection sweep failed")

    def sweep(self, now: float) -> None:
        """Close connections past a deadline: no first request, idle, or a client that does not read."""
        s = self.settings
        for pair in list(self.pairs):
            started = pair.requests.started
            if started is not None and now - started > s.frame_timeout_s and not pair.reading_paused():
                self._expire(pair, CloseReason.FRAME_TIMEOUT, abort=True)  # part of a request, and then nothing
            elif pair.last_request is None:
                if now - pair.accepted > s.first_request_timeout_s:
                    self._expire(pair, CloseReason.FIRST_REQUEST_TIMEOUT, abort=True)
            elif pair.write_paused_since is not None:
                if now - pair.write_paused_since > s.client_write_timeout_s:
                    self._expire(pair, CloseReason.CLIENT_NOT_READING, abort=True)
            elif now - pair.last_request > s.idle_timeout_s and not pair.in_flight:
                # Also a client that started a request and stalled mid-frame: nothing waits on the broker.
                self._expire(pair, CloseReason.IDLE_TIMEOUT, abort=not pair.idle())
        for pair, deadline in list(self._closing.items()):
            if pair.client is None or not pair.client.get_write_buffer_size():
                del self._closing[pair]
            elif now > deadline:
                del self._closing[pair]
                self.metrics.connections_refused.labels(CloseReason.CLIENT_NOT_READING).inc()
                pair.client.abort()

    def _expire(self, pair: ConnectionPair, reason: str, abort: bool) -> None:
        self.incidents.connection_refused(pair, reason, "deadline passed")
        if abort:
            pair.abort()
        else:
            pair.close()

    # --- shutdown --------------------------------------------------------------------------------

    async def stop_accepting(self) -> None:
        self.listening = False
        if self._sweeper is not None:
            self._sweeper.cancel()
        for server in self._servers:
            server.close()
        for task in self._accept_tasks:
            task.cancel()
        for sock in self._sockets:
            sock.close()

    async def drain(self, timeout_s: float) -> int:
        """Close every connection at its first quiet moment (ConnectionPair.close_when_idle: nothing in flight, no
        request of the client's unread), wait up to the timeout, abort the rest.

        Returns how many had to be aborted. Clients see an ordinary disconnect between requests
        and reconnect through their bootstrap list / metadata, like after a broker restart.
        """
        loop = asyncio.get_running_loop()
        began = loop.time()
        deadline = began + timeout_s
        count = len(self.pairs)
        while True:
            # most close at their next response; the others are asked again (a request unread a moment ago may
            # have been answered since)
            for pair in list(self.pairs):
                pair.close_when_idle()
            if not self.pairs or loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)
        remaining = list(self.pairs)
        # When each went, for a client that was told of an error at this node's shutdown to be looked up.
        log.info("drain: %d of %d connections closed at a quiet moment within %.2f s", count - len(remaining), count,
                 loop.time() - began)
        for pair in remaining:
            log.warning("drain: %s on port %d aborted at the %.1fs timeout with %d requests in flight", pair.peer,
                        pair.port, timeout_s, len(pair.in_flight))
            pair.abort()
        return len(remaining)

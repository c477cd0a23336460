"""The node's Kafka listeners: one per port of the plan, the port deciding the upstream broker."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from typing import Callable

from ..cluster.membership import group_name, topic_name
from ..config import Settings
from ..protocol.reserved import ReservedNames
from ..metrics import Metrics, api_name
from ..protocol.headers import MalformedFrame
from ..topology import BrokerInfo, BrokerOutOfRange, Topology
from . import proxy_protocol
from .connection import ClientProtocol, ConnectionPair, UpstreamError, UpstreamProtocol
from .directory import BrokerDirectory
from .tls import TLS_HANDSHAKE_TIMEOUT_S, client_context, handshake_failure_reason, upstream_context

log = logging.getLogger(__name__)

PROXY_HEADER_TIMEOUT_S = 5.0
SWEEP_INTERVAL_S = 1.0  # deadlines are checked this often: they fire up to a second late
LIMIT_LOG_INTERVAL_S = 10.0
MAX_LOG_KEYS = 10_000


class Gateway:
    """Listeners, live connection pairs, and the addresses the rewriters consult (through each
    connection's ClientRewriteContext)."""

    def __init__(self, settings: Settings, topology: Topology, directory: BrokerDirectory, metrics: Metrics) -> None:
        self.settings = settings
        self.topology = topology
        self.directory = directory
        self.metrics = metrics
        self.client_ssl = client_context(settings)
        self.upstream_ssl = upstream_context(settings)
        self.pairs: set[ConnectionPair] = set()
        self.listening = False
        self._servers: list[asyncio.AbstractServer] = []
        self._sockets: list[socket.socket] = []
        self._accept_tasks: list[asyncio.Task[None]] = []
        self._bootstrap_turn = itertools.count()
        self._reported_out_of_range: set[int] = set()
        self._per_source: dict[str, int] = {}  # client address -> open connections (entries removed at 0)
        self._closing: dict[ConnectionPair, float] = {}  # closed, unsent bytes still queued -> abort deadline
        self._limit_logged: dict[str, float] = {}  # limit reason -> when it was last logged
        self._sweeper: asyncio.Task[None] | None = None
        self.reserved_names = ReservedNames.of(group_name(settings.cluster_id), topic_name(settings.cluster_id))

    # --- what each connection's ClientRewriteContext asks -------------------------------------

    def learn(self, broker: BrokerInfo) -> None:
        self.directory.learn(broker)

    def endpoint(self, broker_id: int, rack: str | None) -> tuple[str, int] | None:
        try:
            return self.topology.broker_endpoint(broker_id, rack)
        except BrokerOutOfRange as error:
            self.metrics.broker_out_of_range.labels(str(broker_id)).inc()
            if broker_id not in self._reported_out_of_range:
                self._reported_out_of_range.add(broker_id)
                log.error("%s; it is left out of responses", error)
            return None

    def refused_reserved(self, pair: ConnectionPair, api_key: int, kind: str) -> None:
        self.metrics.reserved_refused.labels(api_name(api_key), kind).inc()
        self._log_limited(f"reserved:{pair.peer}", "refused %s from %s: it names the gateway cluster's own %s",
                          api_name(api_key), pair.peer, kind)

    def brokers_out_of_range(self) -> list[int]:
        plan = self.topology.plan
        return sorted(b for b in self.directory.brokers if not plan.min_broker_id <= b <= plan.max_broker_id)

    # --- listeners -----------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        host = self.settings.bind_host
        for port in self.topology.plan.ports():
            broker_id = self.topology.plan.broker_for_port(port)
            if self.settings.proxy_protocol or self.client_ssl is not None:  # we accept ourselves, see tls.py
                sock = socket.create_server((host, port), backlog=1024, reuse_port=False)
                sock.setblocking(False)
                self._sockets.append(sock)
                self._accept_tasks.append(asyncio.ensure_future(self._accept(sock, port, broker_id)))
            else:
                self._servers.append(await loop.create_server(
                    self._factory(port, broker_id), host, port, reuse_address=True, backlog=1024))
        self.listening = True
        self._sweeper = asyncio.ensure_future(self._sweep_forever())
        log.info("listening on %s ports %d..%d (bootstrap %d)%s", host, self.topology.plan.port_start,
                 self.topology.plan.ports()[-1], self.topology.plan.bootstrap_port,
                 " with TLS" if self.client_ssl else "")

    def _factory(self, port: int, broker_id: int | None, peer: str | None = None) -> Callable[[], ClientProtocol]:
        return lambda: ClientProtocol(ConnectionPair(self, port, broker_id, peer))

    async def _accept(self, sock: socket.socket, port: int, broker_id: int | None) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, _ = await loop.sock_accept(sock)
            except OSError as error:
                log.warning("accept failed: %s", error)
                await asyncio.sleep(0.1)
                continue
            asyncio.ensure_future(self._start_accepted(client, port, broker_id))

    async def _start_accepted(self, client: socket.socket, port: int, broker_id: int | None) -> None:
        """The PROXY header if one is expected, then the TLS handshake if TLS is on, then the connection pair."""
        loop = asyncio.get_running_loop()
        peer: str | None = None
        if self.settings.proxy_protocol:
            try:
                peer = await asyncio.wait_for(proxy_protocol.read_header(loop, client), PROXY_HEADER_TIMEOUT_S)
            except (MalformedFrame, asyncio.TimeoutError, OSError) as error:
                reason = getattr(error, "reason", "proxy_header")
                self.metrics.malformed_frames.labels(reason).inc()
                log.warning("closing connection on port %d: bad PROXY header (%s)", port, error or "timeout")
                client.close()
                return
        if self.client_ssl is None:
            await loop.connect_accepted_socket(self._factory(port, broker_id, peer), client)
            return
        if peer is None:
            try:
                host, peer_port = client.getpeername()[:2]
                peer = f"{host}:{peer_port}"
            except OSError:
                peer = "?"
        try:
            await loop.connect_accepted_socket(self._factory(port, broker_id, peer), client, ssl=self.client_ssl,
                                               ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError) as error:  # ssl.SSLError is an OSError
            self.tls_failed(peer, port, error)
            client.close()

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
            self._refuse_connection(pair, "node_limit", f"{len(self.pairs)} open, GATEWAY_MAX_CONNECTIONS")
            return False
        if self._per_source.get(source, 0) >= self.settings.max_connections_per_source:
            self._refuse_connection(pair, "source_limit", f"{self._per_source[source]} open from {source}, "
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

    def _refuse_connection(self, pair: ConnectionPair, reason: str, detail: str) -> None:
        self.metrics.connections_refused.labels(reason).inc()
        self._log_limited(reason, "closing client %s on port %d: %s (%s)", pair.peer, pair.port, reason, detail)

    def _log_limited(self, key: str, message: str, *args: object) -> None:
        """One line per key and LIMIT_LOG_INTERVAL_S: a flood of refusals must not become a flood of logs."""
        now = time.monotonic()
        if now - self._limit_logged.get(key, -LIMIT_LOG_INTERVAL_S) >= LIMIT_LOG_INTERVAL_S:
            if len(self._limit_logged) >= MAX_LOG_KEYS:
                self._limit_logged.clear()
            self._limit_logged[key] = now
            log.warning(message, *args)

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
            if pair.last_request is None:
                if now - pair.accepted > s.first_request_timeout_s:
                    self._expire(pair, "first_request_timeout", abort=True)
            elif pair.write_paused_since is not None:
                if now - pair.write_paused_since > s.client_write_timeout_s:
                    self._expire(pair, "client_not_reading", abort=True)
            elif now - pair.last_request > s.idle_timeout_s and not pair.in_flight:
                # Also a client that started a request and stalled mid-frame: nothing waits on the broker.
                self._expire(pair, "idle_timeout", abort=not pair.idle())
        for pair, deadline in list(self._closing.items()):
            if pair.client is None or not pair.client.get_write_buffer_size():
                del self._closing[pair]
            elif now > deadline:
                del self._closing[pair]
                self.metrics.connections_refused.labels("client_not_reading").inc()
                pair.client.abort()

    def _expire(self, pair: ConnectionPair, reason: str, abort: bool) -> None:
        self._refuse_connection(pair, reason, "deadline passed")
        if abort:
            pair.abort()
        else:
            pair.close()

    async def open_upstream(self, pair: ConnectionPair) -> tuple[asyncio.Transport, str]:
        if pair.broker_id is None:
            candidates = self.directory.bootstrap_candidates()
            start = next(self._bootstrap_turn) % len(candidates)
            targets = [(candidates[(start + i) % len(candidates)], "bootstrap") for i in range(len(candidates))]
        else:
            address = await self.directory.address(pair.broker_id)
            if address is None:
                raise UpstreamError("unknown_broker", f"no address known for broker {pair.broker_id}")
            targets = [(address, str(pair.broker_id))]
        last_error: Exception | None = None
        for (host, port), label in targets:
            try:
                transport = await self._connect(pair, host, port)
            except (OSError, asyncio.TimeoutError) as error:
                last_error = error
                self.metrics.upstream_errors.labels("connect_failed").inc()
                log.warning("cannot connect to broker %s:%d for %s: %r", host, port, pair.peer, error)
                continue
            return transport, label
        raise UpstreamError("no_broker_reachable", repr(last_error))

    async def _connect(self, pair: ConnectionPair, host: str, port: int) -> asyncio.Transport:
        loop = asyncio.get_running_loop()
        transport, _ = await asyncio.wait_for(
            loop.create_connection(lambda: UpstreamProtocol(pair), host, port, ssl=self.upstream_ssl,
                                   server_hostname=host if self.upstream_ssl else None),
            self.settings.upstream_connect_timeout_s)
        return transport

    def malformed(self, pair: ConnectionPair, error: MalformedFrame) -> None:
        self.metrics.malformed_frames.labels(error.reason).inc()
        # One line per source and reason every LIMIT_LOG_INTERVAL_S: a flood of bad frames is counted in full
        # but must not become a flood of log lines.
        self._log_limited(f"malformed:{error.reason}:{pair.source or pair.peer}", "closing client %s on port %d: %s",
                          pair.peer, pair.port, error)

    def upstream_failed(self, pair: ConnectionPair, error: UpstreamError) -> None:
        self.metrics.upstream_errors.labels(error.reason).inc()
        log.warning("closing client %s on port %d, broker side failed: %s", pair.peer, pair.port, error)

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
        """Close connections as they become idle, wait up to the timeout, abort the rest.

        Returns how many had to be aborted. Clients see an ordinary disconnect between requests
        and reconnect through their bootstrap list / metadata, like after a broker restart.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.pairs and loop.time() < deadline:
            for pair in [p for p in self.pairs if p.idle()]:
                pair.close()
            await asyncio.sleep(0.05)
        remaining = list(self.pairs)
        for pair in remaining:
            pair.abort()
        return len(remaining)

"""Wiring of one gateway node and its lifecycle (start, ready, SIGTERM drain, exit)."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import time
from typing import Any, Awaitable, Mapping

from . import __version__
from .broker_addresses import BrokerInfo
from .config import Settings
from .http import HttpServer
from .metrics import Metrics
from .proxy.directory import BrokerDirectory
from .proxy.handover import HandoverRunner
from .proxy.routes import Routes
from .proxy.server import Gateway
from .proxy.splice import PIPES
from .proxy.tls import reload_client_certificate, upstream_context
from .cluster_names import group_name, topic_name
from .readiness import CheckResult, Flag, Readiness
from .tls_check import TlsMaterialError
from .cluster.topology import ClusterTopology
from .protocol.reserved import ReservedNames

log = logging.getLogger(__name__)

DIRECTORY_REFRESH_S = 30.0
RESERVED_IDS_WAIT_S = 20.0


def _one_line_loop_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Failed TLS handshakes and dropped sockets are a client's problem: one line each, no traceback.
    Anything else is a bug of ours and keeps its traceback."""
    error = context.get("exception")
    message = context.get("message", "event loop error")
    if isinstance(error, (ssl.SSLError, OSError)):
        log.warning("%s: %r", message, error)
    else:
        log.error("%s", message, exc_info=error)


class Node:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        PIPES.report_to(self.metrics.splice_pipes_in_use, self.metrics.splice_pipes_undersized)
        self.readiness = Readiness()
        # The guard's reserved names; their topic ids come from the membership's first look at the backing Kafka.
        self.reserved = ReservedNames.of(group_name(settings.cluster_id), topic_name(settings.cluster_id))
        self.reserved.ids_known = False
        self.reserved_ids_known = asyncio.Event()
        self.topology = ClusterTopology(  # membership runs in both load balancing modes
            settings, self.metrics.registry, on_reserved_topic_ids=self._reserved_topic_ids)
        self.readiness.add("cluster_membership", self.topology.readiness_check)
        self.directory = BrokerDirectory(
            {**settings.kafka_properties}, settings.bootstrap_servers, settings.upstream_connect_timeout_s,
            on_change=self._brokers_changed)
        self.routes = Routes(self.topology, self.directory, self.metrics, upstream_context(settings),
                             settings.upstream_connect_timeout_s)
        self.gateway = Gateway(settings, self.routes, self.metrics, self.reserved)
        self.handover = (HandoverRunner(settings, self.gateway, self.topology, self.metrics.registry)
                         if settings.internal_load_balancing else None)
        self.http = HttpServer(settings, self.readiness, self.metrics, self.cluster_view)
        self.not_draining = Flag(True, "serving", "draining for shutdown")
        self.readiness.add("listeners", lambda: CheckResult(self.gateway.listening, "Kafka ports bound"))
        self.readiness.add("backing_kafka", self._backing_kafka)
        self.readiness.add("broker_ids_in_range", self._broker_ids_in_range)
        self.readiness.add("not_draining", self.not_draining)
        self._stop = asyncio.Event()

    def _brokers_changed(self, brokers: Mapping[int, BrokerInfo]) -> None:
        """The directory's brokers changed (a DescribeCluster, or a broker a response named): count, map them."""
        self.metrics.known_brokers.set(len(brokers))
        self.topology.brokers_changed(brokers)

    def _reserved_topic_ids(self, ids: list[bytes]) -> None:
        self.reserved.know_topic_ids(ids)
        self.reserved_ids_known.set()

    async def _wait_for_reserved_topic_ids(self) -> None:
        """Listen once the reserved topics' ids are known (or after RESERVED_IDS_WAIT_S: until then every
        request naming a topic by id is refused, see ReservedNames.ids_known)."""
        await self._unless_stopped(self.reserved_ids_known.wait(), RESERVED_IDS_WAIT_S)
        if not self.reserved_ids_known.is_set() and not self._stop.is_set():
            log.warning("reserved topic ids not known after %.0fs; listening, refusing every topic id until they are",
                        RESERVED_IDS_WAIT_S)

    async def _unless_stopped(self, waited: Awaitable[Any], timeout_s: float | None = None) -> None:
        """Wait for `waited` until it ends, the node is asked to stop or `timeout_s` passes, whichever comes first."""
        waits = [asyncio.ensure_future(waited), asyncio.ensure_future(self._stop.wait())]
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()

    def _backing_kafka(self) -> CheckResult:
        if self.directory.last_refresh_error is None and self.directory.last_refresh_ok is not None:
            age = time.monotonic() - self.directory.last_refresh_ok
            return CheckResult(True, f"cluster {self.directory.cluster_id} described {age:.0f}s ago")
        return CheckResult(False, self.directory.last_refresh_error or "not reached yet")

    def _broker_ids_in_range(self) -> CheckResult:
        outside = self.routes.brokers_out_of_range()
        plan = self.topology.plan
        if outside:
            return CheckResult(False, f"broker ids {outside} outside {plan.min_broker_id}..{plan.max_broker_id}")
        return CheckResult(True, f"all known broker ids within {plan.min_broker_id}..{plan.max_broker_id}")

    def cluster_view(self, broker_addresses: bool) -> dict[str, Any]:
        """The node's view for /cluster; the backing brokers' host and port only for an operator."""
        s = self.settings
        brokers = sorted(self.directory.brokers.values(), key=lambda b: b.broker_id)
        return {
            "node": {"node_id": s.node_id, "version": __version__, "cluster_id": s.cluster_id,
                     "advertised_host": s.advertised_host,
                     "rack": s.rack_id, "ports": [s.port_start, s.port_start + s.port_count - 1],
                     "internal_load_balancing": s.internal_load_balancing},
            "backing_cluster": {"cluster_id": self.directory.cluster_id, "addresses_withheld": not broker_addresses,
                                "brokers": {str(b.broker_id): {"host": b.host, "port": b.port, "rack": b.rack}
                                            if broker_addresses else {"rack": b.rack} for b in brokers}},
            "connections": len(self.gateway.pairs),
            "handover": self.handover.view() if self.handover is not None else {"enabled": False},
            **self.topology.view(self.directory.brokers),
        }

    def request_stop(self) -> None:
        self._stop.set()

    def reload_tls(self) -> None:
        """SIGHUP (`systemctl reload`): new handshakes use the certificate and key now on disk; established
        connections are untouched. Material that fails the check is not taken, and the old one stays."""
        if self.gateway.client_ssl is None:
            log.info("SIGHUP: client TLS is off, nothing to reload")
            return
        contexts = [self.gateway.client_ssl]
        if self.handover is not None and self.handover.probe_tls is not None:
            contexts.append(self.handover.probe_tls)
        try:
            reload_client_certificate(contexts, self.settings)
        except (TlsMaterialError, ssl.SSLError, OSError) as error:
            self.metrics.tls_reloads.labels("failed").inc()
            log.error("TLS reload failed, keeping the current certificate: %s", error)
            return
        self.metrics.tls_reloads.labels("ok").inc()
        log.info("TLS reloaded: new handshakes present %s", self.settings.ssl_cert_file)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_one_line_loop_errors)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload_tls)
        try:
            await self.http.start(self.settings.http_bind_host, self.settings.http_port)
            # A SIGTERM while Kafka is unreachable need not wait out the first DescribeCluster (up to
            # GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S); the directory carries on with it, shielded.
            await self._unless_stopped(self.directory.refresh())
            await self.topology.start()  # cluster membership: joined before listening
            await self._wait_for_reserved_topic_ids()
            await self.gateway.start()
        except OSError as error:  # a port in use or an address not on this host: say so, exit non-zero
            log.error("cannot start: %s", error)
            return 1
        refresher = asyncio.ensure_future(self._refresh_directory())
        if self.handover is not None:
            self.handover.start()
        log.info("node %s up; ready=%s", self.settings.node_id, self.readiness.ready())
        await self._stop.wait()
        refresher.cancel()
        await self.shutdown()
        return 0

    async def _refresh_directory(self) -> None:
        while True:
            await asyncio.sleep(DIRECTORY_REFRESH_S if self.directory.last_refresh_error is None else 2.0)
            await self.directory.refresh()

    async def shutdown(self) -> None:
        log.info("shutting down: not ready, leaving, draining %d connections", len(self.gateway.pairs))
        self.not_draining.ok = False
        if self.handover is not None:
            self.handover.stop()  # the drain closes every connection now
        await self.topology.stop()  # leave first: the others stop naming this node
        await self.gateway.stop_accepting()
        aborted = await self.gateway.drain(self.settings.drain_timeout_s)
        log.info("drained; %d connections aborted at the timeout", aborted)
        await self.http.stop()

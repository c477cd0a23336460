"""Routes: everything a client connection asks of the node about brokers, in one small object.

A connection knows its listening port; `Routes` answers the rest: which broker that port routes to
(none for the bootstrap port), how to dial that broker (its real address from the `BrokerDirectory`,
TLS and the connect timeout), and, for the rewriters, which gateway (host, port) a client must use for
broker N and whether a FindCoordinator naming broker N may be answered now (both from the topology).
Broker facts flow one way: a rewriter reports a broker (`report`), the directory stores it and tells
the topology if its set changed, and the topology's answer is a read.
It holds no connection and knows nothing of listeners, so a test or the hot-path benchmark builds a
real one from a `StaticTopology` and an empty directory.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from typing import Callable

from ..close_reasons import CloseReason
from ..metrics import Metrics
from ..broker_addresses import BrokerInfo, BrokerOutOfRange, PortPlan, Topology
from ..protocol.api_keys import METADATA
from ..protocol.metadata_answers import MetadataAnswers
from ..protocol.rewriting import REWRITERS
from .directory import BrokerDirectory

log = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT_S = 10.0


class UpstreamError(Exception):
    """The broker side failed or misbehaved; `reason` labels the metric."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class Routes:
    def __init__(self, topology: Topology, directory: BrokerDirectory, metrics: Metrics,
                 upstream_ssl: ssl.SSLContext | None = None,
                 connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> None:
        self.topology = topology
        self.directory = directory
        self.metrics = metrics
        self.upstream_ssl = upstream_ssl
        self._connect_timeout_s = connect_timeout_s
        self._bootstrap_turn = itertools.count()
        self._reported_out_of_range: set[int] = set()
        # The node's rewritten Metadata answers, reused while the broker answers alike (protocol/metadata_answers.py)
        self.metadata_answers = MetadataAnswers(REWRITERS[METADATA], self.version, metrics.metadata_answers_reused)

    @property
    def plan(self) -> PortPlan:
        return self.topology.plan

    def broker_for_port(self, port: int) -> int | None:
        """The broker a listening port routes to; None for the bootstrap port (any broker will do)."""
        return self.topology.plan.broker_for_port(port)

    def broker_rack(self, broker_id: int | None) -> str | None:
        """The rack of the broker a port stands for, as the directory knows it (None: the bootstrap port, or unknown)."""
        broker = None if broker_id is None else self.directory.brokers.get(broker_id)
        return None if broker is None else broker.rack

    # --- the upstream side -----------------------------------------------------------------------

    async def dial(self, broker_id: int | None, peer: str,
                   protocol: Callable[[], asyncio.Protocol]) -> tuple[asyncio.Transport, str]:
        """Connect to the broker (the bootstrap port: known brokers in turn, then the bootstrap list);
        returns the transport and the broker label of the metrics. Raises UpstreamError."""
        if broker_id is None:
            candidates = self.directory.bootstrap_candidates()
            start = next(self._bootstrap_turn) % len(candidates)
            targets = [(candidates[(start + i) % len(candidates)], "bootstrap") for i in range(len(candidates))]
        else:
            address = await self.directory.address(broker_id)
            if address is None:
                raise UpstreamError(CloseReason.UNKNOWN_BROKER, f"no address known for broker {broker_id}")
            targets = [(address, str(broker_id))]
        last_error: Exception | None = None
        for (host, port), label in targets:
            try:
                transport = await self._connect(protocol, host, port)
            except (OSError, asyncio.TimeoutError) as error:
                last_error = error
                self.metrics.upstream_errors.labels(CloseReason.CONNECT_FAILED).inc()
                log.warning("cannot connect to broker %s:%d for %s: %r", host, port, peer, error)
                continue
            return transport, label
        raise UpstreamError(CloseReason.NO_BROKER_REACHABLE, repr(last_error))

    async def _connect(self, protocol: Callable[[], asyncio.Protocol], host: str, port: int) -> asyncio.Transport:
        loop = asyncio.get_running_loop()
        transport, _ = await asyncio.wait_for(
            loop.create_connection(protocol, host, port, ssl=self.upstream_ssl,
                                   server_hostname=host if self.upstream_ssl else None),
            self._connect_timeout_s)
        return transport  # type: ignore[return-value]

    # --- what the rewriters ask (through each connection's ClientRewriteContext) -----------------

    def version(self) -> tuple[int, int]:
        """Changes whenever what `report` learns or `endpoint` answers may have: the directory's brokers, the
        topology's mapping epoch."""
        return self.directory.version, self.topology.epoch

    def report(self, broker: BrokerInfo) -> tuple[str, int] | None:
        """A broker a response names: into the directory (which tells the topology when its set changes),
        then its gateway (host, port) as `endpoint` gives it."""
        self.directory.learn(broker)
        return self.endpoint(broker.broker_id)

    def endpoint(self, broker_id: int) -> tuple[str, int] | None:
        """The gateway (host, port) a client must use for this broker; None (counted, logged once) when the
        broker id has no gateway port."""
        try:
            return self.topology.broker_endpoint(broker_id)
        except BrokerOutOfRange as error:
            self.metrics.broker_out_of_range.labels(str(broker_id)).inc()
            if broker_id not in self._reported_out_of_range:
                self._reported_out_of_range.add(broker_id)
                log.error("%s; it is left out of responses", error)
            return None

    def coordinator_available(self, broker_id: int, refused: dict[int, float]) -> bool:
        return self.topology.coordinator_available(broker_id, refused)

    def brokers_out_of_range(self) -> list[int]:
        plan = self.topology.plan
        return sorted(b for b in self.directory.brokers if not plan.min_broker_id <= b <= plan.max_broker_id)

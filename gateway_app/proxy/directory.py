"""Where the real brokers are: broker id -> (host, port, rack) of the backing cluster.

The node's one store of broker facts. Two sources fill it, in one direction:
- the gateway's own DescribeCluster at start, every DIRECTORY_REFRESH_S (app.py) and on demand
  (confluent-kafka, so the KAFKA_* TLS/SASL settings apply): `described`, which replaces the set whole;
- every broker a Metadata/DescribeCluster/NodeEndpoints response names as it passes through the data
  plane: `learn`, which adds or updates one broker (a missing rack, as in Metadata v0, never erases a
  known one).
A broker learnt from a response does not outlive the next DescribeCluster that leaves it out: the
DescribeCluster is the authority, so every node maps the same set of brokers (a broker one node once
saw in a response and another never did would give the two nodes different mappings) and a removed
broker leaves the mapping. Between two refreshes a new broker is known from the first response
that names it.

Whoever derives something from the brokers (the metrics, the cluster mapping) is told through
`on_change` whenever the set changes, and reads `brokers`; nothing else writes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Mapping

from confluent_kafka.admin import AdminClient

from ..background_call import in_background
from ..broker_addresses import BrokerInfo

log = logging.getLogger(__name__)

REFRESH_DEBOUNCE_S = 2.0


class BrokerDirectory:
    def __init__(self, kafka_properties: dict[str, str], bootstrap: tuple[tuple[str, int], ...],
                 timeout_s: float, on_change: Callable[[Mapping[int, BrokerInfo]], None] | None = None) -> None:
        self.bootstrap = bootstrap
        self.brokers: dict[int, BrokerInfo] = {}
        self.version = 0  # counts the changes of `brokers`
        self.cluster_id: str | None = None
        self.last_refresh_ok: float | None = None
        self.last_refresh_error: str | None = None
        self._timeout_s = timeout_s
        self._on_change = on_change
        self._admin_properties = {**kafka_properties, "client.id": "kafka-gateway-directory"}
        self._admin: AdminClient | None = None  # made at the first refresh: a directory that is only told costs nothing
        self._refreshing: asyncio.Future[None] | None = None
        self._last_attempt = 0.0

    def learn(self, broker: BrokerInfo) -> None:
        """A broker a response names. On the hot path: a broker known as it is costs one lookup."""
        known = self.brokers.get(broker.broker_id)
        if known == broker:
            return
        if broker.rack is None and known is not None and known.rack is not None:
            broker = BrokerInfo(broker.broker_id, broker.host, broker.port, known.rack)
            if known == broker:
                return
        self.brokers[broker.broker_id] = broker
        log.info("broker %d is at %s:%d (rack %s)", broker.broker_id, broker.host, broker.port, broker.rack)
        self._changed()

    def described(self, brokers: list[BrokerInfo]) -> None:
        """The backing cluster's brokers as a DescribeCluster answer lists them: the set, replaced whole."""
        described = {broker.broker_id: broker for broker in brokers}
        if described == self.brokers:
            return
        for broker_id in sorted(self.brokers.keys() - described.keys()):
            log.info("broker %d is no longer described by the backing cluster", broker_id)
        for broker in brokers:
            if self.brokers.get(broker.broker_id) != broker:
                log.info("broker %d is at %s:%d (rack %s)", broker.broker_id, broker.host, broker.port, broker.rack)
        self.brokers = described
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        if self._on_change:
            self._on_change(self.brokers)

    def _describe(self) -> tuple[str | None, list[BrokerInfo]]:
        if self._admin is None:
            self._admin = AdminClient(self._admin_properties)
        result = self._admin.describe_cluster(request_timeout=self._timeout_s).result(timeout=self._timeout_s + 1)
        return result.cluster_id, [BrokerInfo(n.id, n.host, n.port, n.rack) for n in result.nodes]

    async def refresh(self) -> bool:
        """Ask the backing cluster for its brokers; concurrent callers share one request."""
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._refresh_once())
        refreshing = self._refreshing
        try:
            await asyncio.shield(refreshing)
        finally:
            if refreshing.done() and self._refreshing is refreshing:
                self._refreshing = None
        return self.last_refresh_error is None

    async def _refresh_once(self) -> None:
        self._last_attempt = time.monotonic()
        try:
            # On a daemon thread, not asyncio.to_thread: the default executor is joined when the loop closes, so a
            # DescribeCluster in flight to an unreachable Kafka held a stopping node's exit for up to its timeout.
            cluster_id, brokers = await asyncio.wrap_future(in_background(self._describe, "gateway-directory-describe"))
        except Exception as error:
            self.last_refresh_error = f"{type(error).__name__}: {error}"
            log.warning("cannot describe the backing cluster: %s", self.last_refresh_error)
            return
        self.cluster_id = cluster_id
        self.last_refresh_error = None
        self.last_refresh_ok = time.monotonic()
        self.described(brokers)

    async def address(self, broker_id: int) -> tuple[str, int] | None:
        """The broker's real address, refreshing once (debounced) if it is not known yet."""
        broker = self.brokers.get(broker_id)
        if broker is None and time.monotonic() - self._last_attempt > REFRESH_DEBOUNCE_S:
            await self.refresh()
            broker = self.brokers.get(broker_id)
        return None if broker is None else (broker.host, broker.port)

    def bootstrap_candidates(self) -> list[tuple[str, int]]:
        """Known brokers first (fresh), then the configured bootstrap list."""
        known = [(b.host, b.port) for _, b in sorted(self.brokers.items())]
        return known + [server for server in self.bootstrap if server not in known]

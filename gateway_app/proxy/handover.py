"""Handover: client connections follow the broker -> node mapping.

Kafka clients keep one connection per broker id until it breaks, so after a node restarts or joins,
the connections its peers took over while it was away stay with them: one node carries the load and
traffic crosses racks. A connection is *foreign* when this node holds it on a broker's port and the
mapping gives that broker to another live node (internal load balancing only; the bootstrap port and
external load balancing never have foreign connections). This node hands each foreign connection
over: it closes it at its first quiet moment (nothing in flight, nothing of the client's unread), as the drain
does, or, when none comes within half the deadline, stops reading requests (at a request boundary), lets the
requests already forwarded complete, and closes it; the client reconnects, and its next metadata names the mapped
node.

Three parts: `HandoverPolicy` (handover_policy.py) decides when — settle, spread, never while the mapped
node is not ready, deadline; `PeerProbes` (peer_probe.py) says whether the mapped node is ready, by an
ApiVersions round trip through its port for the broker; `HandoverRunner` here applies the policy to the
node's connection pairs every TICK_S and keeps the metrics. What it asks of the cluster is the
`Placement` protocol (placement.py).

Bytes out of rack (a broker served here while its own rack has a live node) are sampled every tick
from the kernel's TCP_INFO byte counters of the client socket: nothing is added to the relay path.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable

from prometheus_client import CollectorRegistry, Counter as PromCounter, Gauge

from .handover_policy import DEADLINE, IDLE, NOT_A_MEMBER, TARGET_NOT_READY, HandoverPolicy, Observed
from .peer_probe import PeerProbes, answers_api_versions
from .placement import Peer, Placement
from .tls import probe_context

if TYPE_CHECKING:
    from ..config import Settings
    from .connection import ConnectionPair
    from .server import Gateway

log = logging.getLogger(__name__)

TICK_S = 0.25


# --- metrics ---------------------------------------------------------------------------------------

class HandoverMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.foreign = Gauge(
            "gateway_handover_foreign_connections",
            "Client connections held for a broker the mapping gives to another live node", ["broker"], registry=registry)
        self.holding = Gauge(
            "gateway_handover_holding_connections", "Connections being handed over (closing at a quiet moment)",
            registry=registry)
        self.done = PromCounter(
            "gateway_handovers", "Foreign connections closed: idle (at a quiet moment) or at the deadline",
            ["outcome"], registry=registry)
        self.refused = PromCounter(
            "gateway_handovers_refused", "Due handovers put off, by reason (target_not_ready, not_a_member)",
            ["reason"], registry=registry)
        self.out_of_rack_bytes = PromCounter(
            "gateway_out_of_rack_bytes",
            "Client bytes (both directions) of brokers served here while their rack has a live node", ["broker"],
            registry=registry)
        for outcome in (IDLE, DEADLINE):
            self.done.labels(outcome)
        for reason in (TARGET_NOT_READY, NOT_A_MEMBER):
            self.refused.labels(reason)
        self._brokers: set[str] = set()

    def record_foreign(self, per_broker: Counter[int]) -> None:
        labels = {str(b): n for b, n in per_broker.items()}
        for broker in self._brokers | set(labels):  # brokers that emptied drop to 0 rather than vanish
            self.foreign.labels(broker).set(labels.get(broker, 0))
        self._brokers |= set(labels)


# --- TCP_INFO byte counters --------------------------------------------------------------------------

TCP_INFO_SIZE = 136
TCP_INFO_BYTES = struct.Struct("=QQ")  # tcpi_bytes_acked, tcpi_bytes_received (Linux 4.1 / 4.6+)
TCP_INFO_BYTES_OFFSET = 120


def socket_bytes(transport: Any) -> int | None:
    """Bytes sent (acknowledged by the peer) plus received on a transport's TCP socket; None if unknown."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_SIZE)
    except OSError:
        return None
    if len(info) < TCP_INFO_BYTES_OFFSET + TCP_INFO_BYTES.size:
        return None
    acked, received = TCP_INFO_BYTES.unpack_from(info, TCP_INFO_BYTES_OFFSET)
    return acked + received


# --- the runner ------------------------------------------------------------------------------------

class HandoverRunner:
    """Applies the policy to the node's connection pairs every TICK_S, and keeps the metrics (also with
    GATEWAY_HANDOVER_ENABLED=false, which only counts)."""

    def __init__(self, settings: "Settings", gateway: "Gateway", placement: Placement,
                 registry: CollectorRegistry, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.gateway = gateway
        self.placement = placement
        self.clock = clock
        self.policy = HandoverPolicy(settings.handover_settle_s, settings.handover_spread_s, settings.handover_deadline_s)
        self.metrics = HandoverMetrics(registry)
        self.probe_tls: ssl.SSLContext | None = probe_context(settings)  # the node's own certificate; a SIGHUP reloads it too
        self.peers = PeerProbes(
            lambda host, port: answers_api_versions(host, port, settings.proxy_protocol, self.probe_tls), clock)
        self._foreign: Counter[int] = Counter()
        self._bytes_seen: dict[ConnectionPair, int] = {}
        self._out_of_rack: Counter[int] = Counter()
        self._done: Counter[str] = Counter()
        self._refused: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self.step()
            except Exception:  # keep handing over; a bug here must not stop the node
                log.exception("handover step failed")


    def _endpoint(self, pair: "ConnectionPair", peer: Peer) -> tuple[str, int]:
        """Where the client will reconnect: the mapped node's port for this broker."""
        return peer.advertised_host, peer.port_start + (pair.port - self.gateway.plan.port_start)

    def step(self) -> None:
        now = self.clock()
        pairs = list(self.gateway.pairs)
        # Asked once per broker, not per connection: a node may hold thousands of connections.
        brokers = {pair.broker_id for pair in pairs if pair.broker_id is not None}
        foreign_to = {b: self.placement.foreign_target(b) for b in brokers}
        out_of_rack = {b for b in brokers if self.placement.out_of_rack(b)}
        targets = {pair: foreign_to[pair.broker_id] for pair in pairs
                   if pair.broker_id is not None and pair.upstream is not None and not pair.closed
                   and (foreign_to[pair.broker_id] is not None or pair.handing_over)}
        self._account_out_of_rack(pairs, out_of_rack)

        hand_over = self.settings.handover_enabled  # off: foreign connections are only counted
        # Only foreign and held connections: the policy forgets every other one, as it would with target None.
        observed = {pair: Observed(self._endpoint(pair, m) if m is not None and hand_over else None, pair.quiet())
                    for pair, m in targets.items()}
        decisions = self.policy.tick(now, self.placement.mapping_changed_at, observed,
                                     lambda endpoint: self.peers.ready(*endpoint), self.placement.joined())
        for pair in decisions.hold:
            target = targets[pair]
            log.info("handing over %s on port %d (broker %d -> %s)", pair.peer, pair.port, pair.broker_id,
                     target.node_id if target is not None else "?")
            self._account_pair(pair)
            pair.hand_over()  # closes now if it is quiet, else at its first quiet moment
        for pair in decisions.stop_reading:
            log.info("handing over %s on port %d: no quiet moment in %.1fs, reading stopped", pair.peer, pair.port,
                     self.policy.deadline_s / 2)
            pair.stop_reading()
        for pair in decisions.ended:  # closed at its quiet moment (or by the client) between two ticks
            self.metrics.done.labels(IDLE).inc()
            self._done[IDLE] += 1
        for pair, outcome in decisions.close:
            self._account_pair(pair)
            pair.close()
            self.metrics.done.labels(outcome).inc()
            self._done[outcome] += 1
            if outcome == DEADLINE:
                log.warning("handover of %s on port %d: closed at the %.1fs deadline with %d requests in flight",
                            pair.peer, pair.port, self.policy.deadline_s, len(pair.in_flight))
        for reason, count in decisions.refused.items():
            self.metrics.refused.labels(reason).inc(count)
            self._refused[reason] += count
        self._foreign = Counter(pair.broker_id for pair, m in targets.items() if m is not None and not pair.closed)
        self.metrics.record_foreign(self._foreign)
        self.metrics.holding.set(self.policy.holding)

    def _account_out_of_rack(self, pairs: list["ConnectionPair"], out_of_rack: set[int]) -> None:
        live = set(pairs)
        for gone in [pair for pair in self._bytes_seen if pair not in live]:
            del self._bytes_seen[gone]
        for pair in pairs:
            if pair.broker_id in out_of_rack:
                self._account_pair(pair)
            else:
                self._bytes_seen.pop(pair, None)  # counted from the moment it is out of rack

    def _account_pair(self, pair: "ConnectionPair") -> None:
        total = socket_bytes(pair.client)
        if total is None or pair.broker_id is None:
            return
        before = self._bytes_seen.get(pair)
        self._bytes_seen[pair] = total
        if before is not None and total > before and self.placement.out_of_rack(pair.broker_id):
            self.metrics.out_of_rack_bytes.labels(str(pair.broker_id)).inc(total - before)
            self._out_of_rack[pair.broker_id] += total - before

    def view(self) -> dict[str, Any]:
        """The handover part of /cluster."""
        return {
            "enabled": self.settings.handover_enabled,
            "settle_s": self.policy.settle_s, "spread_s": self.policy.spread_s, "deadline_s": self.policy.deadline_s,
            "mapping_stable_for_s": round(self.clock() - self.placement.mapping_changed_at, 1),
            "foreign_connections": {str(b): n for b, n in sorted(self._foreign.items())},
            "holding": self.policy.holding,
            "handovers": dict(self._done),
            "refused": dict(self._refused),
            "out_of_rack_bytes": {str(b): n for b, n in sorted(self._out_of_rack.items())},
        }

"""Handover: client connections follow the broker -> node mapping.

Kafka clients keep one connection per broker id until it breaks, so after a node restarts or joins,
the connections its peers took over while it was away stay with them: one node carries the load and
traffic crosses racks. A connection is *foreign* when this node holds it on a broker's port and the
mapping gives that broker to another live node (internal load balancing only; the bootstrap port and
external load balancing never have foreign connections). This node hands each foreign connection
over: it stops reading requests from it (at a request boundary), lets the requests already forwarded
complete, and closes it; the client reconnects, and its next metadata names the mapped node.

`HandoverPolicy` decides when (pure: a clock and observations in, decisions out):
- settle: nothing is handed over until the mapping has been unchanged for `settle_s`, so a node
  that flaps or a rolling restart in progress does not churn clients;
- spread: handovers that become due together start at offsets spread evenly over `spread_s`
  (a golden-ratio sequence: any part of the window gets its share, whatever the number);
- never while the mapped node is not ready: the runner probes it (below); a refused handover is
  tried again RETRY_S later;
- deadline: a connection whose requests have not all completed `deadline_s` after reading stopped is
  closed anyway (its unanswered requests fail on the client, which retries them).

How a node knows a peer is ready: being a live member only says it heartbeats to the gateway group;
what a client needs is that the peer accepts a connection on the broker's port and relays to that
broker. So the runner asks exactly that: a Kafka ApiVersions round trip through the peer's port for
the broker (with a PROXY v2 LOCAL header and TLS when this cluster's listeners use them), cached for
PROBE_TTL_S. It needs no HTTP port in the member record and fails closed: an unreachable peer only
means foreign connections stay (and the refusal is counted).

Bytes out of rack (a broker served here while its own rack has a live node) are sampled every tick
from the kernel's TCP_INFO byte counters of the client socket: nothing is added to the relay path.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import ssl
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Hashable, Mapping

from prometheus_client import CollectorRegistry, Counter as PromCounter, Gauge

from ..protocol.api_keys import API_VERSIONS
from .placement import Peer, Placement
from .proxy_protocol import LOCAL, SIGNATURE

if TYPE_CHECKING:
    from ..config import Settings
    from .connection import ConnectionPair
    from .server import Gateway

log = logging.getLogger(__name__)

TICK_S = 0.25
RETRY_S = 2.0  # a handover refused (target not ready, this node not a member) is tried again this much later
PROBE_TTL_S = 2.0  # a peer's verdict is reused this long
PROBE_TIMEOUT_S = 2.0
GOLDEN = (math.sqrt(5) - 1) / 2

IDLE, DEADLINE = "idle", "deadline"  # how a handover ended
TARGET_NOT_READY, NOT_A_MEMBER = "target_not_ready", "not_a_member"  # why a due one was put off


@dataclass(frozen=True, slots=True)
class Observed:
    """One client connection as the runner sees it at a tick."""

    target: Hashable | None  # where the mapping sends its broker (the mapped node's port), None when not foreign
    idle: bool  # nothing in flight, at a request boundary both ways


@dataclass(slots=True)
class Decisions:
    hold: list[Hashable] = field(default_factory=list)  # stop reading new requests
    close: list[tuple[Hashable, str]] = field(default_factory=list)  # (connection, IDLE or DEADLINE)
    refused: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class _Pending:
    since: float  # first seen foreign (this time)
    offset: float  # its place in the spread window
    retry_at: float = 0.0


class HandoverPolicy:
    def __init__(self, settle_s: float, spread_s: float, deadline_s: float) -> None:
        self.settle_s, self.spread_s, self.deadline_s = settle_s, spread_s, deadline_s
        self._pending: dict[Hashable, _Pending] = {}
        self._holding: dict[Hashable, float] = {}  # connection -> when reading stopped
        self._turn = 0

    @property
    def holding(self) -> int:
        return len(self._holding)

    def due_at(self, key: Hashable, stable_since: float) -> float | None:
        pending = self._pending.get(key)
        if pending is None:
            return None
        return max(max(pending.since, stable_since + self.settle_s) + pending.offset, pending.retry_at)

    def tick(self, now: float, stable_since: float, connections: Mapping[Hashable, Observed],
             target_ready: Callable[[Hashable], bool | None], may_start: bool) -> Decisions:
        """`stable_since`: when the mapping last changed; `target_ready(target)`: True, False, or None while
        unknown (a probe under way: wait, refuse nothing); `may_start`: this node's own view is current."""
        decisions = Decisions()
        for gone in [key for key in self._pending if key not in connections]:
            del self._pending[gone]
        for gone in [key for key in self._holding if key not in connections]:
            del self._holding[gone]
        for key, seen in connections.items():
            held_since = self._holding.get(key)
            if held_since is not None:  # finishes even if the mapping moved back meanwhile: reading is off
                if seen.idle or now - held_since >= self.deadline_s:
                    decisions.close.append((key, IDLE if seen.idle else DEADLINE))
                    del self._holding[key]
                continue
            if seen.target is None:
                self._pending.pop(key, None)
                continue
            if key not in self._pending:
                self._pending[key] = _Pending(now, self.spread_s * ((self._turn * GOLDEN) % 1.0))
                self._turn += 1
            if now < self.due_at(key, stable_since):
                continue
            verdict = target_ready(seen.target) if may_start else False
            if verdict is None:
                continue
            if not verdict:
                decisions.refused[TARGET_NOT_READY if may_start else NOT_A_MEMBER] += 1
                self._pending[key].retry_at = now + RETRY_S
                continue
            del self._pending[key]
            self._holding[key] = now
            decisions.hold.append(key)
        return decisions


# --- is the mapped node ready? ---------------------------------------------------------------------

API_VERSIONS_V0 = struct.pack(">hhih", API_VERSIONS, 0, 0x6b67, 8) + b"handover"  # key, version, correlation, client id


def _probe_tls_context(settings: "Settings") -> ssl.SSLContext | None:
    """TLS towards a peer's listener, only to see it answer: its certificate is not checked (no data goes
    over it); this node's own certificate is offered for peers that require one."""
    if not settings.client_tls:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(str(settings.ssl_cert_file), str(settings.ssl_key_file))
    return context


async def answers_api_versions(host: str, port: int, proxy_header: bool, tls: ssl.SSLContext | None,
                               timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """True when host:port accepts a connection and relays an ApiVersions v0 answer with no error."""
    async def ask() -> bool:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            if proxy_header:
                writer.write(SIGNATURE + bytes([LOCAL, 0]) + struct.pack(">H", 0))
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


class Readiness:
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


# --- metrics ---------------------------------------------------------------------------------------

class HandoverMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.foreign = Gauge(
            "gateway_handover_foreign_connections",
            "Client connections held for a broker the mapping gives to another live node", ["broker"], registry=registry)
        self.holding = Gauge(
            "gateway_handover_holding_connections", "Connections being handed over (reading stopped)", registry=registry)
        self.done = PromCounter(
            "gateway_handovers", "Foreign connections closed: idle (at a request boundary) or at the deadline",
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
        self.probe_tls = _probe_tls_context(settings)  # the node's own certificate; a SIGHUP reloads it too
        self.readiness = Readiness(
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
                   and (foreign_to[pair.broker_id] is not None or pair.holding)}
        self._account_out_of_rack(pairs, out_of_rack)

        hand_over = self.settings.handover_enabled  # off: foreign connections are only counted
        # Only foreign and held connections: the policy forgets every other one, as it would with target None.
        observed = {pair: Observed(self._endpoint(pair, m) if m is not None and hand_over else None, pair.idle())
                    for pair, m in targets.items()}
        decisions = self.policy.tick(now, self.placement.mapping_changed_at, observed,
                                     lambda endpoint: self.readiness.ready(*endpoint), self.placement.joined())
        for pair in decisions.hold:
            target = targets[pair]
            log.info("handing over %s on port %d (broker %d -> %s)", pair.peer, pair.port, pair.broker_id,
                     target.node_id if target is not None else "?")
            pair.hold()
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

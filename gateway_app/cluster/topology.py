"""ClusterTopology: the Topology of a node that belongs to a gateway cluster.

Internal load balancing on: each broker is advertised at the live node the mapping
(cluster/mapping.py) gives it, on that broker's port. Off: every broker at this node's advertised
host (the load balancer), exactly like StaticTopology. Membership runs in both modes, so readiness,
metrics and the cluster view mean the same thing whichever mode is configured.

Brokers and their racks come from one place, the node's BrokerDirectory (proxy/directory.py), which
calls `brokers_changed` whenever its set of brokers changes: a DescribeCluster answer, or a broker a
response names that it did not know (so a new broker is mapped the first time a Metadata response names
it). Nothing else writes the brokers here, and `broker_endpoint` only reads. Everything here runs on
the asyncio loop; membership hands its views over with call_soon_threadsafe.

A broker that moves to another node keeps its id and changes its advertised address. Kafka's Java
clients, kafka-python and aiokafka follow that on their next metadata refresh (aiokafka even looks
the coordinator id up in Metadata, so the id must stay a real broker id). librdkafka does too for
produce/fetch, but its consumer-group coordinator connection copies the broker's address when the
coordinator id is set and keeps it for as long as FindCoordinator names the same id: after the node
at that address dies it reconnects to the dead address until the node is back. The one thing that
makes it forget is a FindCoordinator answer of COORDINATOR_NOT_AVAILABLE (it then sets the
coordinator afresh, with the broker's current address, on the next answer). So when a member
leaves, *every* broker is unsettled for COORDINATOR_RESET_WINDOW_S: the first single-key lookup
(FindCoordinator v0-3, what librdkafka sends) of its coordinator on each client connection is
answered COORDINATOR_NOT_AVAILABLE, later ones on that connection are answered. Every broker, not
only those this node saw the leaving member serve: a client may hold a coordinator at the leaving
node for any broker it ever served (as a stand-in while a peer restarted, before a join moved the
broker away), and what this node saw ends at its own last restart — after a rolling restart the
survivors of the last node's leaving had seen none of it serve, and a consumer whose coordinator was
still at that node's address lost its group session (found by the rolling-restart scenario).
A stuck librdkafka consumer forgets the dead address on its next ask (it asks every second while
its coordinator is down); anyone else loses about a second per connection it asks through, as while
a broker loads a coordinator, and a consumer whose coordinator is up asks only every
coordinator.query.interval.ms (10 minutes). Once per connection, not at random: librdkafka asks
again right after an answer, while it connects to the coordinator, and a refusal of that second ask
drops the coordinator it just got, so at a random share of 1/2 it needed two answered asks in a
row, a second apart — 0-10 s per call for 90 s after a node died (measured), enough to time out a
committed() call now and then. Batched lookups (v4+, Java and kafka-python against Kafka 3.0+) are
never refused. With internal load balancing off the addresses never move, so nothing is ever
unsettled.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any, Callable, Mapping

from prometheus_client import CollectorRegistry

from ..config import Settings
from ..readiness import CheckResult
from ..broker_addresses import BrokerInfo, BrokerOutOfRange, PortPlan, Topology
from .mapping import BrokerRack, assign
from ..member import Member
from .membership import Membership
from .metrics import ClusterMetrics
from .roster import View

log = logging.getLogger(__name__)

# After a member leaves, how long lookups of the coordinators it served are refused (once per client
# connection). The window outlasts librdkafka noticing a silently dead host (its heartbeat times out
# after socket.timeout.ms, 60 s by default).
COORDINATOR_RESET_WINDOW_S = 90.0


class StaticTopology:
    """Every broker at this node's advertised host on that broker's port.

    This is the whole truth for a single node and for external load balancing, where the
    advertised host is the load balancer's name.
    """

    epoch = 0  # every endpoint is fixed at construction

    def __init__(self, plan: PortPlan, advertised_host: str) -> None:
        self.plan = plan
        self.advertised_host = advertised_host

    def broker_endpoint(self, broker_id: int) -> tuple[str, int]:
        return self.advertised_host, self.plan.port_for_broker(broker_id)

    def coordinator_available(self, broker_id: int, refused: dict[int, float]) -> bool:
        return True  # the advertised host never changes

    def view(self, brokers: Mapping[int, BrokerInfo]) -> dict[str, Any]:
        return {"mode": "static", "mapping": mapping_view(self, brokers)}


def mapping_view(topology: Topology, brokers: Mapping[int, BrokerInfo]) -> dict[str, Any]:
    """broker id -> advertised endpoint (or the error) for every known broker."""
    mapping: dict[str, Any] = {}
    for broker_id, broker in sorted(brokers.items()):
        try:
            host, port = topology.broker_endpoint(broker_id)
            mapping[str(broker_id)] = {"host": host, "port": port, "rack": broker.rack}
        except BrokerOutOfRange as error:
            mapping[str(broker_id)] = {"error": str(error), "rack": broker.rack}
    return mapping


class ClusterTopology:
    def __init__(self, settings: Settings, registry: CollectorRegistry, clock=time.monotonic,
                 on_reserved_topic_ids: Callable[[list[bytes]], None] | None = None) -> None:
        self.settings = settings
        self._on_reserved_topic_ids = on_reserved_topic_ids  # called on the event loop
        self.plan = settings.port_plan
        self.me = settings.member
        self._static = StaticTopology(self.plan, settings.advertised_host)
        self.metrics = ClusterMetrics(registry)
        self._members: View = ()
        self._brokers: Mapping[int, BrokerInfo] = {}  # the directory's, as it last told them (never written here)
        self._mapping: dict[int, Member] = {}
        self.epoch = 0
        self.mapping_changed_at = clock()  # when the mapping last changed: handovers wait for it to settle
        self._leaving = False
        self._membership: Membership | None = None
        self._unsettled_until: dict[int, float] = {}  # broker id -> end of its coordinator reset window
        self._clock = clock

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._membership = Membership(
            self.me, self.settings.cluster_id, self.settings.kafka_properties,
            self.settings.cluster_session_timeout_s, self.members_changed, loop,
            secret=self.settings.cluster_secret.reveal(),
            previous_secret=self.settings.cluster_secret_previous.reveal() if self.settings.cluster_secret_previous else None,
            metrics=self.metrics,
            on_reserved_topic_ids=(None if self._on_reserved_topic_ids is None else
                                   lambda ids: loop.call_soon_threadsafe(self._on_reserved_topic_ids, ids)),
        )
        self._membership.start()

    async def stop(self) -> None:
        """Leave the cluster (SIGTERM): others stop naming this node; this node stops naming itself."""
        self._leaving = True
        self._recompute()
        if self._membership is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._membership.stop)

    def readiness_check(self) -> CheckResult:
        if self._membership is None:
            return CheckResult(False, "cluster membership not started")
        if self._leaving:
            return CheckResult(False, "left the gateway cluster")
        status = self._membership.status()
        return CheckResult(status.joined, status.detail)

    # --- the Topology protocol ---------------------------------------------------------------

    def broker_endpoint(self, broker_id: int) -> tuple[str, int]:
        """A read: a broker the directory has not told of (yet) is served here, on its port."""
        if not self.settings.internal_load_balancing:
            return self._static.broker_endpoint(broker_id)
        port = self.plan.port_for_broker(broker_id)  # BrokerOutOfRange before anything else
        member = self._mapping.get(broker_id, self.me)
        return member.advertised_host, member.port_start + (port - self.plan.port_start)

    def coordinator_available(self, broker_id: int, refused: dict[int, float]) -> bool:
        """False if a single-key FindCoordinator naming this broker, on the client connection whose
        earlier refusals are `refused` (broker id -> window; updated here), should be answered
        COORDINATOR_NOT_AVAILABLE: once per connection and window after a node left (see the module
        docstring: it frees librdkafka consumers whose coordinator address is a node that left)."""
        until = self._unsettled_until.get(broker_id)
        if until is None:
            return True
        if self._clock() >= until:
            del self._unsettled_until[broker_id]
            return True
        if refused.get(broker_id) == until:
            return True
        refused[broker_id] = until
        self.metrics.coordinator_lookups_refused.inc()
        return False

    # --- what the handover of client connections asks (proxy/placement.py) ---------------------

    def joined(self) -> bool:
        return self.readiness_check().ok

    def foreign_target(self, broker_id: int) -> Member | None:
        """The other live node the mapping gives this broker to; None when it is this node's, or when
        addresses never move (internal load balancing off) or this node is leaving (the drain closes all)."""
        if not self.settings.internal_load_balancing or self._leaving:
            return None
        member = self._mapping.get(broker_id)
        return member if member is not None and member.node_id != self.me.node_id else None

    def out_of_rack(self, broker_id: int) -> bool:
        """This node serves a broker of another rack while that rack has a live node."""
        broker = self._brokers.get(broker_id)
        rack = broker.rack if broker is not None else None
        return rack is not None and rack != self.me.rack and any(m.rack == rack for m in self._members)

    def view(self, brokers: Mapping[int, BrokerInfo]) -> dict[str, Any]:
        mapping = mapping_view(self, brokers)
        for broker_id, entry in mapping.items():
            member = self._mapping.get(int(broker_id))
            if "error" not in entry and self.settings.internal_load_balancing:
                entry["node_id"] = member.node_id if member else self.me.node_id
        return {
            "mode": "internal" if self.settings.internal_load_balancing else "external",
            "cluster_id": self.settings.cluster_id,
            "node_id": self.me.node_id,
            "rack": self.me.rack,
            "epoch": self.epoch,
            "mapping_digest": self.mapping_digest(),
            "membership": self._membership_view(),
            "members": [
                {"node_id": m.node_id, "advertised_host": m.advertised_host, "rack": m.rack,
                 "port_start": m.port_start, "port_count": m.port_count}
                for m in self._members
            ],
            "mapping": mapping,
        }

    def _membership_view(self) -> dict[str, Any]:
        if self._membership is None:
            return {"joined": False, "kafka_reachable": False, "detail": "not started"}
        status = self._membership.status()
        return {"joined": status.joined, "kafka_reachable": status.kafka_reachable, "detail": status.detail,
                "group": self._membership.group, "topic": self._membership.topic}

    def mapping_digest(self) -> str:
        """Short fingerprint of broker -> node: equal on every node that computes the same mapping."""
        text = ";".join(f"{b}={m.node_id}" for b, m in sorted(self._mapping.items()))
        return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()

    # --- inputs ------------------------------------------------------------------------------

    def members_changed(self, view: View) -> None:
        """The live members as the membership last saw them (on the event loop)."""
        left = {m.node_id for m in self._members} - {m.node_id for m in view} - {self.me.node_id}
        self._members = view
        if left and self.settings.internal_load_balancing:
            self._unsettle_every_broker(left)
        self.metrics.record_members(view)
        self._recompute()

    def _unsettle_every_broker(self, left: set[str]) -> None:
        until = self._clock() + COORDINATOR_RESET_WINDOW_S
        unsettled = sorted(self._brokers)  # the mapping covers exactly these
        for broker_id in unsettled:
            self._unsettled_until[broker_id] = until
        if unsettled:
            log.info("%s left: coordinator lookups (v0-3) for brokers %s are refused once per client connection for %.0fs "
                     "so that librdkafka clients drop its address", ", ".join(sorted(left)), unsettled, COORDINATOR_RESET_WINDOW_S)

    def brokers_changed(self, brokers: Mapping[int, BrokerInfo]) -> None:
        """The directory's brokers, whenever they change (BrokerDirectory's on_change): the set the mapping
        is computed over. Only an id or a rack changes the mapping; a new address alone leaves it as it is."""
        self._brokers = brokers
        self._recompute()

    def _recompute(self) -> None:
        members = [m for m in self._members if not (self._leaving and m.node_id == self.me.node_id)] or [self.me]
        mapping = assign(members, (BrokerRack(b.broker_id, b.rack) for b in self._brokers.values()))
        if mapping == self._mapping:
            return
        self._mapping = mapping
        self.mapping_changed_at = self._clock()
        self.epoch += 1
        self.metrics.record_mapping(self.epoch, sum(1 for m in mapping.values() if m.node_id == self.me.node_id))
        log.info("mapping epoch %d: %s", self.epoch, ", ".join(f"{b}->{m.node_id}" for b, m in sorted(mapping.items())))

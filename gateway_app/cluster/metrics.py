"""Prometheus metrics of the gateway cluster layer, registered in the node's own registry."""

from __future__ import annotations

from collections import Counter as Tally
from typing import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from ..member import Member
from .records import REJECTION_REASONS


class ClusterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.members = Gauge("gateway_cluster_members", "Live gateway nodes in this node's cluster view", registry=registry)
        self.members_per_rack = Gauge(
            "gateway_cluster_members_per_rack", "Live gateway nodes by rack ('' = no rack)", ["rack"], registry=registry)
        self.mapping_changes = Counter(
            "gateway_cluster_mapping_changes", "Times the broker -> node mapping changed", registry=registry)
        self.mapping_epoch = Gauge(
            "gateway_cluster_mapping_epoch", "Version of the broker -> node mapping (local to this node)", registry=registry)
        self.brokers_served_here = Gauge(
            "gateway_cluster_brokers_mapped_to_this_node", "Brokers the mapping assigns to this node", registry=registry)
        self.coordinator_lookups_refused = Counter(
            "gateway_cluster_coordinator_lookups_refused",
            "FindCoordinator (v0-3) answers turned into COORDINATOR_NOT_AVAILABLE after a member left", registry=registry)
        self.member_records_rejected = Counter(
            "gateway_cluster_member_records_rejected",
            "Records on the members topic ignored (unsigned, bad_mac, malformed, out_of_range, key_mismatch, error)",
            ["reason"], registry=registry)
        for reason in REJECTION_REASONS:
            self.member_records_rejected.labels(reason)
        self.own_record_rewrites = Counter(
            "gateway_cluster_own_record_rewrites",
            "Times this node wrote its record again after reading a different record or a tombstone under its id",
            registry=registry)
        self.membership_restarts = Counter(
            "gateway_cluster_membership_restarts", "Times the membership thread's loop died and was restarted",
            registry=registry)
        self.stop_waits_abandoned = Counter(
            "gateway_cluster_stop_waits_abandoned",
            "Waits on the backing Kafka cut short because the node was stopping: an admin request (request), the "
            "leave's tombstone (tombstone), the membership thread itself (thread)", ["wait"], registry=registry)
        for wait in ("request", "tombstone", "thread"):
            self.stop_waits_abandoned.labels(wait)
        self._racks: set[str] = set()

    def record_members(self, members: Iterable[Member]) -> None:
        per_rack = Tally(member.rack or "" for member in members)
        self.members.set(sum(per_rack.values()))
        for rack in self._racks | set(per_rack):  # racks that emptied drop to 0 rather than vanish
            self.members_per_rack.labels(rack).set(per_rack.get(rack, 0))
        self._racks |= set(per_rack)

    def record_mapping(self, epoch: int, brokers_here: int) -> None:
        self.mapping_changes.inc()
        self.mapping_epoch.set(epoch)
        self.brokers_served_here.set(brokers_here)

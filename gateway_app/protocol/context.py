"""What a rewriter may ask while rewriting one response."""

from __future__ import annotations

from typing import Protocol

from ..topology import BrokerInfo


class RewriteContext(Protocol):
    def learn(self, broker: BrokerInfo) -> None:
        """Record a broker's real address (for routing broker ports upstream)."""
        ...

    def endpoint(self, broker_id: int, rack: str | None) -> tuple[str, int] | None:
        """Gateway (host, port) for this broker; None (already logged and counted) if out of range."""
        ...

    def coordinator_available(self, broker_id: int) -> bool:
        """May a single-key FindCoordinator naming this broker be answered now, on this client connection
        (Topology.coordinator_available)?"""
        ...

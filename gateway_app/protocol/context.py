"""What a rewriter may ask while rewriting one response."""

from __future__ import annotations

from typing import Protocol, Sequence

from ..broker_addresses import BrokerInfo
from .reserved import ReservedNames


Chunks = Sequence[bytes | memoryview]  # a rewritten body in pieces, the broker's own bytes reused where unchanged


class RewriteContext(Protocol):
    reserved: ReservedNames  # the gateway cluster's own names; learns its topics' ids from responses
    names_reserved: bool  # the request being answered named reserved topics (Metadata asks by name)

    def report(self, broker: BrokerInfo) -> tuple[str, int] | None:
        """A broker a response names, with its real address and rack: recorded (for routing its port
        upstream, and for the cluster mapping), and its gateway (host, port) returned as by `endpoint`."""
        ...

    def endpoint(self, broker_id: int) -> tuple[str, int] | None:
        """Gateway (host, port) for this broker, a read; None (already logged and counted) if out of range."""
        ...

    def coordinator_available(self, broker_id: int) -> bool:
        """May a single-key FindCoordinator naming this broker be answered now, on this client connection
        (Topology.coordinator_available)?"""
        ...

    def hidden(self, count: int) -> None:
        """`count` reserved topics or groups were left out of a response (counted)."""
        ...

    def redacted(self, count: int) -> None:
        """`count` config values were removed from a DescribeConfigs response (counted)."""
        ...

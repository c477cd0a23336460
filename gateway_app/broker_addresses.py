"""Broker addresses on both sides of the gateway: the types the data plane and the cluster layer share.

- `BrokerInfo`: a real broker of the backing cluster (id, host, port, rack);
- `PortPlan`: the gateway's ports (the bootstrap port, then one per broker id) and the math between
  them, `BrokerOutOfRange` for an id that has no port;
- `Topology`: the one question the rewriters ask (through proxy/routes.py), "which (host, port) should
  a client use for broker N?"; gateway_app/cluster/topology.py answers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol


class BrokerOutOfRange(ValueError):
    """A broker id has no gateway port: it lies outside [min_broker_id, min_broker_id + port_count - 2]."""

    def __init__(self, broker_id: int, plan: "PortPlan") -> None:
        super().__init__(
            f"broker id {broker_id} outside the gateway port range: ids "
            f"{plan.min_broker_id}..{plan.max_broker_id} map to ports "
            f"{plan.port_start + 1}..{plan.port_start + plan.port_count - 1} "
            "(raise GATEWAY_PORT_COUNT or adjust GATEWAY_MIN_BROKERID)"
        )
        self.broker_id = broker_id


@dataclass(frozen=True, slots=True)
class PortPlan:
    """Port math: the bootstrap port, then one port per broker id starting at min_broker_id."""

    port_start: int
    min_broker_id: int
    port_count: int

    @property
    def bootstrap_port(self) -> int:
        return self.port_start

    @property
    def max_broker_id(self) -> int:
        return self.min_broker_id + self.port_count - 2

    def ports(self) -> range:
        return range(self.port_start, self.port_start + self.port_count)

    def port_for_broker(self, broker_id: int) -> int:
        if not self.min_broker_id <= broker_id <= self.max_broker_id:
            raise BrokerOutOfRange(broker_id, self)
        return self.port_start + 1 + (broker_id - self.min_broker_id)

    def broker_for_port(self, port: int) -> int | None:
        """The broker a port routes to; None for the bootstrap port."""
        if port == self.port_start:
            return None
        if not self.port_start < port < self.port_start + self.port_count:
            raise ValueError(f"port {port} is not a gateway port")
        return self.min_broker_id + (port - self.port_start - 1)


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """An upstream broker as the backing cluster describes it."""

    broker_id: int
    host: str
    port: int
    rack: str | None = None


class Topology(Protocol):
    """What the rewriters and the /cluster view need from the mapping of brokers to gateway nodes."""

    plan: PortPlan
    epoch: int  # changes whenever broker_endpoint may answer differently for some broker

    def broker_endpoint(self, broker_id: int) -> tuple[str, int]:
        """(host, port) a client must use for this broker; a read, it changes nothing. Raises BrokerOutOfRange."""
        ...

    def coordinator_available(self, broker_id: int, refused: dict[int, float]) -> bool:
        """False if a single-key FindCoordinator naming this broker is to be answered
        COORDINATOR_NOT_AVAILABLE on the client connection whose earlier refusals are `refused`
        (the node that served it left; see gateway_app/cluster/topology.py)."""
        ...

    def view(self, brokers: Mapping[int, BrokerInfo]) -> dict[str, Any]:
        """JSON-ready description of the mapping (and members, for a clustered topology)."""
        ...

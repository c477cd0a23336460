"""Where each broker is advertised: the seam between the data plane and the cluster layer.

The rewriters only ever ask a `Topology` "which (host, port) should a client use for broker N?".
`StaticTopology` answers with this node's advertised host (single node, or external load balancer
mode); the cluster layer provides a topology that spreads brokers over live gateway nodes.
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

    def broker_endpoint(self, broker_id: int, broker_rack: str | None) -> tuple[str, int]:
        """(host, port) a client must use for this broker. Raises BrokerOutOfRange."""
        ...

    def coordinator_available(self, broker_id: int, refused: dict[int, float]) -> bool:
        """False if a single-key FindCoordinator naming this broker is to be answered
        COORDINATOR_NOT_AVAILABLE on the client connection whose earlier refusals are `refused`
        (the node that served it left; see gateway_app/cluster/topology.py)."""
        ...

    def view(self, brokers: Mapping[int, BrokerInfo]) -> dict[str, Any]:
        """JSON-ready description of the mapping (and members, for a clustered topology)."""
        ...


class StaticTopology:
    """Every broker at this node's advertised host on that broker's port.

    This is the whole truth for a single node and for external load balancing, where the
    advertised host is the load balancer's name.
    """

    def __init__(self, plan: PortPlan, advertised_host: str) -> None:
        self.plan = plan
        self.advertised_host = advertised_host

    def broker_endpoint(self, broker_id: int, broker_rack: str | None) -> tuple[str, int]:
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
            host, port = topology.broker_endpoint(broker_id, broker.rack)
            mapping[str(broker_id)] = {"host": host, "port": port, "rack": broker.rack}
        except BrokerOutOfRange as error:
            mapping[str(broker_id)] = {"error": str(error), "rack": broker.rack}
    return mapping

"""Placement: what the handover of client connections asks of the node's cluster, and nothing more.

The data plane knows the node's place in a gateway cluster only through this protocol (and `Routes` for
where a connection goes); `cluster.topology.ClusterTopology` answers it. The handover asks, per broker,
which other node owns it now and whether it is served out of its rack, and whether this node is a member
whose view of the mapping is current.
"""

from __future__ import annotations

from typing import Protocol


class Peer(Protocol):
    """Another gateway node, as far as a client reconnecting to it is concerned."""

    @property
    def node_id(self) -> str: ...

    @property
    def advertised_host(self) -> str: ...

    @property
    def port_start(self) -> int: ...  # its first broker port: its ports follow the same plan as this node's


class Placement(Protocol):
    @property
    def mapping_changed_at(self) -> float: ...  # monotonic time of the last change: handovers wait for it to settle

    def foreign_target(self, broker_id: int) -> Peer | None:
        """The other live node that owns this broker now; None when it is this node's (or addresses never move)."""

    def out_of_rack(self, broker_id: int) -> bool:
        """This node serves a broker of another rack while that rack has a live node."""

    def joined(self) -> bool:
        """This node is a member of the gateway cluster: its view of the mapping is current."""

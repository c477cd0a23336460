"""A gateway node as the rest of the cluster sees it, and its record on the members topic."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Member:
    node_id: str
    advertised_host: str
    rack: str | None
    port_start: int
    port_count: int

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Member:
        fields = json.loads(raw)
        return cls(
            node_id=str(fields["node_id"]),
            advertised_host=str(fields["advertised_host"]),
            rack=None if fields.get("rack") is None else str(fields["rack"]),
            port_start=int(fields["port_start"]),
            port_count=int(fields["port_count"]),
        )

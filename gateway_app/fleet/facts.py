"""What the doctor learnt about one host: the probe's facts, or why there are none, and the clock exchange."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class HostFacts:
    name: str
    role: str
    error: str | None = None  # the host could not be probed at all (SSH, timeout, the probe failed)
    facts: dict[str, Any] = field(default_factory=dict)
    clock_offset_s: float | None = None  # host clock minus the controller's
    clock_uncertainty_s: float | None = None  # half the round trip of the clock exchange
    elapsed_s: float = 0.0

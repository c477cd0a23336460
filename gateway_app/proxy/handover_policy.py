"""When a foreign client connection is handed over: the handover's policy, pure (a clock and observations
in, decisions out); the runner (handover.py) applies it to the node's connections.

- settle: nothing is handed over until the mapping has been unchanged for `settle_s`, so a node
  that flaps or a rolling restart in progress does not churn clients;
- spread: handovers that become due together start at offsets spread evenly over `spread_s`
  (a golden-ratio sequence: any part of the window gets its share, whatever the number);
- never while the mapped node is not ready (the runner asks peer_probe.py); a refused handover is
  tried again RETRY_S later;
- quiet moment: a connection being handed over keeps being read and answered, and closes at its first moment
  with nothing in flight and nothing of the client's unread (the runner reports that as `idle`); one that has had
  none after half the deadline stops reading new requests, so that it becomes idle;
- deadline: a connection whose requests have not all completed `deadline_s` after its handover began is
  closed anyway (its unanswered requests fail on the client, which retries them).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Hashable, Mapping

RETRY_S = 2.0  # a handover refused (target not ready, this node not a member) is tried again this much later
GOLDEN = (math.sqrt(5) - 1) / 2

IDLE, DEADLINE = "idle", "deadline"  # how a handover ended
TARGET_NOT_READY, NOT_A_MEMBER = "target_not_ready", "not_a_member"  # why a due one was put off


@dataclass(frozen=True, slots=True)
class Observed:
    """One client connection as the runner sees it at a tick."""

    target: Hashable | None  # where the mapping sends its broker (the mapped node's port), None when not foreign
    idle: bool  # quiet: nothing in flight, at a request boundary both ways, nothing of the client's unread


@dataclass(slots=True)
class Decisions:
    hold: list[Hashable] = field(default_factory=list)  # hand over: close at the first quiet moment
    stop_reading: list[Hashable] = field(default_factory=list)  # no quiet moment in half the deadline
    close: list[tuple[Hashable, str]] = field(default_factory=list)  # (connection, IDLE or DEADLINE)
    ended: list[Hashable] = field(default_factory=list)  # held, and closed on its own (its quiet moment): IDLE
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
        self._holding: dict[Hashable, float] = {}  # connection -> when its handover began
        self._stopped: set[Hashable] = set()  # held connections told to stop reading
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
            self._stopped.discard(gone)
            decisions.ended.append(gone)
        for key, seen in connections.items():
            held_since = self._holding.get(key)
            if held_since is not None:  # finishes even if the mapping moved back meanwhile
                if seen.idle or now - held_since >= self.deadline_s:
                    decisions.close.append((key, IDLE if seen.idle else DEADLINE))
                    del self._holding[key]
                    self._stopped.discard(key)
                elif now - held_since >= self.deadline_s / 2 and key not in self._stopped:
                    self._stopped.add(key)
                    decisions.stop_reading.append(key)
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

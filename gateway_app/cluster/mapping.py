"""Which live gateway node serves each broker: a pure function of (members, brokers).

Algorithm — rack-scoped rendezvous hashing with bounded loads
-------------------------------------------------------------
Every (member, broker) pair gets a score: the first 8 bytes of blake2b(f"{node_id}|{broker_id}")
as an unsigned integer. The score depends on nothing but the two ids, so every node computes the
same numbers (no dict order, no PYTHONHASHSEED, no input order: inputs are de-duplicated and
sorted first).

1. Rack-local scopes. For each rack R that has at least one live member, the brokers whose rack
   is R are assigned among the live members of R.
2. Fallback scope. Brokers with no rack, or whose rack has no live member, are assigned among
   all live members.

Inside a scope the assignment is the greedy matching over pairs in descending score order
(ties broken by broker id, then node id): a pair (b, m) is taken when b is still unassigned and
m is under its capacity. This is the unique stable matching for these symmetric preferences, and
it depends only on the set of pairs, never on processing order. Capacities:

- rack-local scope with n_R brokers and m_R members: cap_R = ceil(n_R / m_R) per member;
- fallback scope: a member may take fallback brokers while its *total* load (rack-local plus
  fallback) is below ceil(N / M), N = all brokers, M = all members. The spare capacity
  sum(max(0, ceil(N/M) - local_load)) >= M*ceil(N/M) - (N - n_fallback) >= n_fallback, so every
  fallback broker is always placed.

Balance bound (checked by the property tests)
- every member holds at most ceil(n_R / m_R) brokers of its own rack R;
- every member's total load is at most max(ceil(n_R / m_R), ceil(N / M));
- in particular, with no racks anywhere (or with one rack), no member holds more than ceil(N / M).

Rack preference: a broker with rack R is always served by a member of R when R has a live member.

Movement: when capacities do not bind (each broker's top-scoring member has room, before and
after the change) the result is plain rendezvous hashing, so a leaving member moves only its own
brokers and a joining member takes only brokers that move to it. Capacities trade a little of that
for balance: a change can displace a few more brokers along a chain of full members. Measured by
tests/unit/test_mapping.py over random clusters (2-12 members, 1-40 brokers, mixed racks), a single
leave or join moves on average 0.8 brokers beyond the unavoidable ones (none extra in over half of
the cases); in one rackless scope the average is about 1.5. A change inside one rack never moves a
broker served inside another rack (the scopes are independent). Because every gateway
node serves every broker port, a moved broker's existing connections keep working where they are; once
the mapping has settled, the node holding them hands them over to the mapped node
(gateway_app/proxy/handover.py), and clients reconnect there.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence, TypeVar


class RackedMember(Protocol):
    @property
    def node_id(self) -> str: ...

    @property
    def rack(self) -> str | None: ...


M = TypeVar("M", bound=RackedMember)


@dataclass(frozen=True, slots=True, order=True)
class BrokerRack:
    broker_id: int
    rack: str | None


def score(node_id: str, broker_id: int) -> int:
    """Stable rendezvous score of a (member, broker) pair, identical on every node and run."""
    digest = hashlib.blake2b(f"{node_id}|{broker_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def assign(members: Iterable[M], brokers: Iterable[BrokerRack]) -> dict[int, M]:
    """broker id -> serving member. Empty when there are no members."""
    by_id = {member.node_id: member for member in members}
    live = [by_id[node_id] for node_id in sorted(by_id)]
    if not live:
        return {}
    unique_brokers = sorted({broker.broker_id: broker for broker in brokers}.values())
    members_by_rack: dict[str, list[M]] = defaultdict(list)
    for member in live:
        if member.rack is not None:
            members_by_rack[member.rack].append(member)

    local: dict[str, list[int]] = defaultdict(list)
    fallback: list[int] = []
    for broker in unique_brokers:
        if broker.rack in members_by_rack:
            local[broker.rack].append(broker.broker_id)
        else:
            fallback.append(broker.broker_id)

    result: dict[int, M] = {}
    load = {member.node_id: 0 for member in live}
    for rack in sorted(local):
        scope_members = members_by_rack[rack]
        cap = math.ceil(len(local[rack]) / len(scope_members))
        result.update(_bounded_rendezvous(local[rack], scope_members, {m.node_id: cap for m in scope_members}, load))

    total_cap = math.ceil(len(unique_brokers) / len(live))
    spare = {member.node_id: total_cap - load[member.node_id] for member in live}
    result.update(_bounded_rendezvous(fallback, live, spare, load))
    return result


def _bounded_rendezvous(
    broker_ids: Sequence[int], members: Sequence[M], capacity: dict[str, int], load: dict[str, int]
) -> dict[int, M]:
    """Greedy matching over pairs in descending score order; updates `load` in place."""
    pairs = sorted(
        ((score(member.node_id, broker_id), broker_id, member) for member in members for broker_id in broker_ids),
        key=lambda pair: (-pair[0], pair[1], pair[2].node_id),
    )
    taken = {member.node_id: 0 for member in members}
    result: dict[int, M] = {}
    for _, broker_id, member in pairs:
        if broker_id in result or taken[member.node_id] >= capacity[member.node_id]:
            continue
        result[broker_id] = member
        taken[member.node_id] += 1
        load[member.node_id] += 1
    return result

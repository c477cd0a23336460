"""Which API keys and versions the gateway lets through, and why.

Three kinds of handling:
- REWRITE: the response can carry a broker address; the gateway decodes it (at versions a kio schema
  reads, kio_adapter.decodable_version) and rewrites every address. Produce/Fetch only need it from the
  version that added KIP-951 NodeEndpoints (v10 / v16); older versions are relayed untouched.
- RELAY: no broker address in the response; bytes pass untouched. Capped at the highest version
  Kafka's message definitions (message_specs.py) give, so a future version that adds an address
  cannot slip past unreviewed (tests/unit/test_message_specs.py checks that no relayed response of any
  known version has a host or port field).
- DROP: never advertised and refused if sent: KRaft quorum/controller APIs whose responses carry
  controller endpoints, and Envelope (inter-broker principal forwarding).
API keys Kafka's definitions do not name are dropped for the same reason as the RELAY cap.

Independently of this table, a request of any API that names a reserved topic or group
(`_gateway_<cluster id>...`, the gateway cluster's own state) is refused with the API's authorization error and
never relayed (reserved.py); REWRITE also covers the responses that could list such names or a
broker's endpoints in its configuration (hiding.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .api_keys import API_VERSIONS
from .kio_adapter import decodable_version
from .message_specs import RESPONSE, api_keys, api_snake_name, versions


class Handling(Enum):
    RELAY = "relay"
    REWRITE = "rewrite"
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class ApiPolicy:
    api_key: int
    name: str
    handling: Handling
    max_version: int  # highest version let through (broker's own max still applies)
    rewrite_from: int = 0  # REWRITE: lowest version whose response needs rewriting
    why: str = ""


def _defined_max(api_key: int) -> int:
    return versions(api_key)[-1]


def _decodable_max(api_key: int) -> int:
    """The newest version whose response a kio schema reads (the rewriters decode with kio)."""
    readable = [v for v in versions(api_key) if v in versions(api_key, RESPONSE) and decodable_version(api_key, v) is not None]
    return max(readable, default=-1)


_REWRITTEN: dict[int, tuple[int, str]] = {
    0: (10, "KIP-951 NodeEndpoints tagged field from v10; record bytes never decoded"),
    1: (16, "KIP-951 NodeEndpoints tagged field from v16; record bytes never decoded"),
    3: (0, "broker list host/port (rack kept); the gateway cluster's own topics left out"),
    10: (0, "coordinator host/port, single (v0-3) and batched (v4+); nodeId -1 left alone"),
    16: (0, "the gateway cluster's own groups left out"),
    18: (0, "capped to what this table lets through"),
    19: (0, "error messages naming the gateway cluster's own topics (a `.`/`_` collision) reworded"),
    32: (0, "values of broker configs that are endpoints (protocol/hiding.py REDACTED_CONFIGS) removed"),
    35: (0, "the gateway cluster's own topics left out"),
    60: (0, "broker list host/port (rack kept)"),
    74: (0, "the gateway cluster's own topics and groups left out"),
    75: (0, "the gateway cluster's own topics left out, and a paging cursor never names one"),
    78: (0, "NodeEndpoints of the new leaders"),
    79: (0, "NodeEndpoints of the new leaders"),
}

_CAPPED: dict[int, tuple[int, str]] = {
    55: (1, "DescribeQuorum v2+ lists controller listener endpoints; v0-1 carry ids only"),
}

_DROPPED: dict[int, str] = {
    52: "KRaft Vote: controller-only, carries controller endpoints",
    53: "KRaft BeginQuorumEpoch: controller-only, carries leader endpoints",
    54: "KRaft EndQuorumEpoch: controller-only, carries leader endpoints",
    58: "Envelope: inter-broker forwarding with an impersonated principal",
    59: "KRaft FetchSnapshot: controller-only, carries leader endpoints",
    82: "KRaft UpdateRaftVoter: controller-only, carries leader endpoints",
}


def _build() -> dict[int, ApiPolicy]:
    table: dict[int, ApiPolicy] = {}
    for api_key in api_keys():
        name = api_snake_name(api_key)
        top = _defined_max(api_key)
        if api_key in _DROPPED:
            table[api_key] = ApiPolicy(api_key, name, Handling.DROP, -1, why=_DROPPED[api_key])
        elif api_key in _REWRITTEN:
            rewrite_from, why = _REWRITTEN[api_key]
            table[api_key] = ApiPolicy(api_key, name, Handling.REWRITE, min(top, _decodable_max(api_key)), rewrite_from, why)
        elif api_key in _CAPPED:
            cap, why = _CAPPED[api_key]
            table[api_key] = ApiPolicy(api_key, name, Handling.RELAY, min(cap, top), why=why)
        else:
            table[api_key] = ApiPolicy(api_key, name, Handling.RELAY, top, why="no broker address in the response")
    return table


POLICIES: dict[int, ApiPolicy] = _build()


def allowed(api_key: int, api_version: int) -> bool:
    """May a client send this request? ApiVersions is always allowed: its fallback needs any version."""
    if api_key == API_VERSIONS:
        return True
    policy = POLICIES.get(api_key)
    return policy is not None and policy.handling is not Handling.DROP and api_version <= policy.max_version


def needs_rewrite(api_key: int, api_version: int) -> bool:
    policy = POLICIES.get(api_key)
    return policy is not None and policy.handling is Handling.REWRITE and api_version >= policy.rewrite_from


def _handling_table() -> dict[tuple[int, int], tuple[bool, bool]]:
    """Versions Kafka no longer defines (e.g. Produce v0-2) are not in it: refused."""
    return {(api_key, version): (allowed(api_key, version), needs_rewrite(api_key, version))
            for api_key, policy in POLICIES.items() for version in versions(api_key)
            if version <= policy.max_version}


_HANDLING = _handling_table()
_REFUSED = (False, False)


def relay_handling(api_key: int, api_version: int) -> tuple[bool, bool]:
    """(allowed, needs_rewrite) of a request version, from a table built once: the per-request path
    looks it up, and a client sending unknown keys or versions grows nothing."""
    handling = _HANDLING.get((api_key, api_version))
    if handling is not None:
        return handling
    return (True, True) if api_key == API_VERSIONS else _REFUSED  # ApiVersions: any version, see allowed()


def api_versions_known() -> int:
    """The newest ApiVersions version the gateway reads (request) and rewrites (response); a client asking
    with a newer one is answered as a broker answers it (KIP-511, api_versions.unsupported_version_body)."""
    return POLICIES[API_VERSIONS].max_version


def cap(api_key: int, broker_min: int, broker_max: int) -> tuple[int, int] | None:
    """The version range to advertise for an API the broker supports, or None to hide it."""
    policy = POLICIES.get(api_key)
    if policy is None or policy.handling is Handling.DROP:
        return None
    top = min(broker_max, policy.max_version)
    return (broker_min, top) if top >= broker_min else None

"""A gateway node as the rest of the cluster sees it (`Member`), and the checks its fields pass.

Every node checks every peer's member record with `validate_member` (cluster/records.py), and its own
settings with the same function when it starts (config.py), so a node can never write a record its
peers refuse. A leaf module: the settings and the cluster layer both build on it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

MAX_NODE_ID = 128
MAX_RACK = 128
MAX_HOST = 253  # the longest DNS name
MAX_PORT_COUNT = 10000

_NODE_ID = re.compile(r"[A-Za-z0-9._-]+")
_RACK = re.compile(r"[!-~]+")  # printable ASCII, no spaces: Kafka racks are free-form, e.g. /dc1/rack1
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


class RecordRejected(ValueError):
    """A member record that must be ignored; `reason` is a short fixed label, `detail` says why,
    `field` names the field at fault if one is."""

    def __init__(self, reason: str, detail: str, field: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.field = field


@dataclass(frozen=True, slots=True)
class Member:
    node_id: str
    advertised_host: str
    rack: str | None
    port_start: int
    port_count: int

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()


def validate_member(member: Member) -> None:
    """Raise RecordRejected("out_of_range", ...) unless every field is one a peer accepts."""
    _check_text("node_id", member.node_id, _NODE_ID, MAX_NODE_ID)
    if member.rack is not None:
        _check_text("rack", member.rack, _RACK, MAX_RACK)
    if not isinstance(member.advertised_host, str):
        raise RecordRejected("malformed", "advertised_host is not a string", "advertised_host")
    if not valid_host(member.advertised_host):
        raise RecordRejected("out_of_range", f"advertised_host {shown(member.advertised_host)} is not a DNS name or IP address",
                             "advertised_host")
    for name in ("port_start", "port_count"):
        if type(getattr(member, name)) is not int:  # bool is an int subclass: refused too
            raise RecordRejected("malformed", f"{name} is not an integer", name)
    if not 1 <= member.port_start <= 65535:
        raise RecordRejected("out_of_range", f"port_start {member.port_start} outside 1..65535", "port_start")
    if not 2 <= member.port_count <= MAX_PORT_COUNT:
        raise RecordRejected("out_of_range", f"port_count {member.port_count} outside 2..{MAX_PORT_COUNT}", "port_count")
    if member.port_start + member.port_count - 1 > 65535:
        raise RecordRejected("out_of_range", f"ports {member.port_start}+{member.port_count} exceed 65535", "port_count")


def valid_rack(rack: str) -> bool:
    """A rack as a node's record and the client-network table may name it."""
    return isinstance(rack, str) and 1 <= len(rack) <= MAX_RACK and rack.isascii() and bool(_RACK.fullmatch(rack))


def valid_host(host: str) -> bool:
    """An IPv4/IPv6 literal, or a DNS name: labels of letters, digits, '-' and '_' (not at a label's
    ends for '-'), at most 253 characters, and a last label that is not all digits (so '10.0.1'
    is neither an address nor a name)."""
    if not host or len(host) > MAX_HOST or not host.isascii():
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.removesuffix(".").split(".")
    return all(_DNS_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit()


def _check_text(name: str, value: Any, pattern: re.Pattern[str], longest: int) -> None:
    if not isinstance(value, str):
        raise RecordRejected("malformed", f"{name} is not a string", name)
    if not 1 <= len(value) <= longest or not value.isascii() or not pattern.fullmatch(value):
        raise RecordRejected("out_of_range", f"{name} {shown(value)} is empty, longer than {longest} or has a character "
                             f"outside {pattern.pattern}", name)


def shown(value: Any) -> str:
    """A hostile value as it may appear in a log line: repr (escapes control characters), cut short."""
    text = repr(value)
    return text if len(text) <= 64 else text[:61] + "..."

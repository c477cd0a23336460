"""A gateway node's record on the members topic (the node itself: gateway_app/member.py).

The record is the node's fields as canonical JSON (sorted keys), keyed by node id, with an
HMAC-SHA256 of exactly those value bytes in the record header `mac` (hex). The MAC key is derived
from the cluster secret and the cluster id (`record_key`), so a record signed for one cluster is
refused by another that shares the secret. Why a header and not a JSON envelope: the MAC is
checked over the bytes as they arrived, before any parsing — no canonical re-serialisation to get
wrong, and the JSON parser only ever sees bytes a holder of the secret wrote; the value stays the
plain record any Kafka tool shows; tombstones stay plain tombstones.

Decoding refuses, with a reason (the label of the rejection metric): no MAC, a MAC that verifies
with no known key, a value that is not a small JSON object of the right types (integers only: JSON
allows 1e400, which Python reads as inf), a field out of range, a key that is not the record's
node id. Fields are checked again on the node's own settings (`validate_member`), so a node can
never write a record its peers refuse.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Sequence

from ..member import Member, RecordRejected, shown, validate_member

MAC_HEADER = "mac"
KEY_LABEL = b"kafka-gateway member record v1\0"
MAX_RECORD_BYTES = 4096  # a record is ~150 bytes; anything bigger is not one

Headers = Sequence[tuple[str, bytes | None]]
# Every reason a record is ignored ("error": an unexpected exception while handling it), the label of
# gateway_cluster_member_records_rejected.
REJECTION_REASONS = ("unsigned", "bad_mac", "malformed", "out_of_range", "key_mismatch", "error")


def record_key(secret: str, cluster_id: str) -> bytes:
    """The MAC key of one cluster's records: HMAC(secret, label + cluster id), HKDF-extract style."""
    return hmac.new(secret.encode(), KEY_LABEL + cluster_id.encode(), hashlib.sha256).digest()


def _refuse_constant(name: str) -> None:
    raise RecordRejected("malformed", f"{name} is not a number JSON allows here")


def _refuse_float(text: str) -> None:
    raise RecordRejected("malformed", f"non-integer number {shown(text)}")


def _parse_int(text: str) -> int:
    if len(text) > 6:  # no field needs more than 65535; never hand a long digit string to int()
        raise RecordRejected("out_of_range", f"integer {shown(text)} too long")
    return int(text)


class RecordCodec:
    """Signs this node's record and verifies and decodes everyone's, for one cluster.

    `previous_secret` is accepted when verifying and never used to sign: during a rotation every
    node has both, until every node signs with the new one."""

    def __init__(self, cluster_id: str, secret: str, previous_secret: str | None = None) -> None:
        self._signing_key = record_key(secret, cluster_id)
        self._keys = [self._signing_key] + ([record_key(previous_secret, cluster_id)] if previous_secret else [])

    def __repr__(self) -> str:
        return f"RecordCodec(<{len(self._keys)} keys hidden>)"

    def _mac(self, key: bytes, value: bytes) -> bytes:
        return hmac.new(key, value, hashlib.sha256).hexdigest().encode()

    def encode(self, member: Member) -> tuple[bytes, list[tuple[str, bytes]]]:
        """(value, headers) of this node's record."""
        validate_member(member)
        return self.sign(member.encode())

    def sign(self, value: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
        """(value, headers) of these exact bytes, signed with this cluster's key, whatever they hold: `encode`
        after its checks (tests sign malformed values with it, to show a MAC alone admits nothing)."""
        return value, [(MAC_HEADER, self._mac(self._signing_key, value))]

    def decode(self, key: bytes | None, value: bytes, headers: Headers | None) -> Member:
        """The Member a record carries, or RecordRejected."""
        if len(value) > MAX_RECORD_BYTES:
            raise RecordRejected("malformed", f"{len(value)} bytes, more than {MAX_RECORD_BYTES}")
        macs = [v for name, v in headers or () if name == MAC_HEADER]
        if not macs:
            raise RecordRejected("unsigned", "no mac header")
        if len(macs) != 1 or not isinstance(macs[0], bytes):
            raise RecordRejected("bad_mac", "more than one mac header, or an empty one")
        if not any(hmac.compare_digest(self._mac(k, value), macs[0]) for k in self._keys):
            raise RecordRejected("bad_mac", "mac does not verify with this cluster's secret")
        member = self._parse(value)
        validate_member(member)
        if key is None or key != member.node_id.encode():
            raise RecordRejected("key_mismatch", f"record of {shown(member.node_id)} under key {shown(key)}")
        return member

    @staticmethod
    def _parse(value: bytes) -> Member:
        try:
            fields = json.loads(value, parse_float=_refuse_float, parse_int=_parse_int, parse_constant=_refuse_constant)
        except RecordRejected:
            raise
        except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
            raise RecordRejected("malformed", f"not JSON: {error}") from None
        if not isinstance(fields, dict):
            raise RecordRejected("malformed", "not a JSON object")
        missing = [name for name in ("node_id", "advertised_host", "rack", "port_start", "port_count") if name not in fields]
        if missing:
            raise RecordRejected("malformed", f"missing {', '.join(missing)}")
        # Unknown fields are ignored: a later version may add one without breaking older readers.
        return Member(fields["node_id"], fields["advertised_host"], fields["rack"], fields["port_start"], fields["port_count"])



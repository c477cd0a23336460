"""protocol.api_versions_request: the cluster and node of an ApiVersions v5 request (KIP-1242), cleared for the
bootstrap port. The e2e test (tests/e2e/test_kip1242.py) has a 4.4.0 broker judge what the gateway relays."""

from __future__ import annotations

import struct

import pytest

from gateway_app.protocol import codec, message_specs
from gateway_app.protocol.api_versions_request import names_node, without_node
from gateway_app.protocol.wire import WireError

HEADER = struct.pack(">hhih", 18, 5, 7, 5) + b"probe" + b"\0"  # request header v2: key, version, correlation, client


def frame(cluster_id: str | None, node_id: int) -> bytes:
    body = codec.encode(message_specs.spec("request", 18, 5), {
        "client_software_name": "probe", "client_software_version": "1.0", "cluster_id": cluster_id, "node_id": node_id})
    payload = HEADER + body
    return struct.pack(">i", len(payload)) + payload


def fields(sized: bytes) -> dict:
    (size,) = struct.unpack_from(">i", sized)
    assert size == len(sized) - 4
    body, end = codec.decode(message_specs.spec("request", 18, 5), memoryview(sized), 4 + len(HEADER))
    assert end == len(sized)
    return body


def test_a_request_naming_cluster_and_node_names_neither_after() -> None:
    cleared = without_node(frame("PjR8UUmHRTeoedzkTA1W3g", 2), 4 + len(HEADER), 5)
    assert cleared is not None
    body = fields(cleared)
    assert (body["cluster_id"], body["node_id"]) == (None, -1)
    assert (body["client_software_name"], body["client_software_version"]) == ("probe", "1.0")
    assert cleared[4:4 + len(HEADER)] == HEADER


@pytest.mark.parametrize("cluster_id, node_id", [(None, -1), ("c", -1), (None, 3)])
def test_naming_neither_or_one_alone_is_relayed_as_it_is(cluster_id: str | None, node_id: int) -> None:
    assert without_node(frame(cluster_id, node_id), 4 + len(HEADER), 5) is None


def test_bytes_that_end_inside_the_fields_are_an_error_not_a_guess() -> None:
    whole = frame("PjR8UUmHRTeoedzkTA1W3g", 2)
    for cut in (len(whole) - 6, len(whole) - 20):
        with pytest.raises((WireError, IndexError, struct.error)):
            without_node(whole[:cut], 4 + len(HEADER), 5)


def test_only_v5_and_later_name_a_node() -> None:
    assert [v for v in range(6) if names_node(v)] == [5]

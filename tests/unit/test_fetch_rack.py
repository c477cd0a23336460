"""protocol.fetch_rack and the connection's use of it (KIP-392): a Fetch request (v11+) that names no rack is
relayed naming the client's, every other field as the client sent it; a client's own rack_id and older versions
are left alone; the in-flight entry and the byte counts follow the new size."""

from __future__ import annotations

import struct
import uuid
import zlib
from typing import Any

import pytest

from gateway_app.broker_addresses import BrokerInfo, PortPlan
from gateway_app.client_networks import RACK_FOLLOWING_SOFTWARE, parse_client_networks
from gateway_app.cluster.topology import StaticTopology
from gateway_app.metrics import Metrics
from gateway_app.protocol import codec
from gateway_app.protocol.api_keys import API_VERSIONS, FETCH
from gateway_app.protocol.fetch_rack import FIRST_WITH_RACK, with_rack
from gateway_app.protocol.headers import read_request_header
from gateway_app.protocol.message_specs import REQUEST, FieldSpec, spec, versions
from gateway_app.protocol.policy import POLICIES
from gateway_app.proxy.connection import ConnectionPair, Rules
from gateway_app.proxy.directory import BrokerDirectory
from gateway_app.proxy.incidents import Incidents
from gateway_app.proxy.routes import Routes
from gateway_app.protocol.reserved import ReservedNames
from lab.frames import fetch_request, request_frame
from tests.unit.fake_transport import RecordingTransport

RACKED = range(FIRST_WITH_RACK, POLICIES[FETCH].max_version + 1)


def _sample(field: FieldSpec, salt: int) -> Any:
    """A value of the field's type that is nobody's default, different per field name and array position."""
    seed = zlib.crc32(f"{field.name}:{salt}".encode())
    if field.array:
        return [_sample(field.element(), salt * 3 + i) for i in range(2)]
    if field.type == "struct":
        return {child.snake: _sample(child, salt) for child in field.fields}
    if field.type in ("int8", "bool"):
        return True if field.type == "bool" else 1 + seed % 100
    if field.type in ("int16", "uint16"):
        return 1 + seed % 30000
    if field.type in ("int32", "int64", "uint32"):
        return 1 + seed % 2_000_000_000
    if field.type == "uuid":
        return uuid.UUID(int=seed | 1 << 100)
    if field.type == "string":
        return f"{field.snake}-{seed % 1000}"
    return bytes([seed % 256]) * 3


def full_body(api_version: int, rack_id: str) -> dict:
    """Every field of Fetch at this version set (tagged ones too: cluster_id, replica_state), rack_id as given."""
    root = spec(REQUEST, FETCH, api_version).root
    body = {child.snake: _sample(child, 1) for child in root.fields}
    body["rack_id"] = rack_id
    return body


def decoded(frame: bytes, api_version: int) -> tuple[bytes, dict]:
    """The request header bytes and the body of a sized frame, checking that the size and the body fill it."""
    (size,) = struct.unpack_from(">i", frame)
    assert size == len(frame) - 4
    body_offset = read_request_header(memoryview(frame)[4:])[3]
    body, end = codec.decode(spec(REQUEST, FETCH, api_version), memoryview(frame), 4 + body_offset)
    assert end == len(frame), "the body ends exactly at the end of the frame"
    return frame[4:4 + body_offset], body


def _body_offset(frame: bytes) -> int:
    return 4 + read_request_header(memoryview(frame)[4:])[3]


def test_every_racked_version_is_tested() -> None:
    assert list(RACKED) == [v for v in versions(FETCH) if FIRST_WITH_RACK <= v <= POLICIES[FETCH].max_version]
    assert len(RACKED) >= 8  # v11..v18 with Kafka 4.4's definitions


@pytest.mark.parametrize("api_version", RACKED)
@pytest.mark.parametrize("rack", ["rack-a", "/dc1/r" + "x" * 120])  # a one-byte and a two-byte compact length
def test_an_empty_rack_id_is_filled_and_nothing_else_changes(api_version: int, rack: str) -> None:
    original = request_frame(FETCH, api_version, 42, full_body(api_version, ""))
    filled = with_rack(original, _body_offset(original), api_version, rack)
    assert filled is not None
    header_before, before = decoded(original, api_version)
    header_after, after = decoded(filled, api_version)
    assert header_after == header_before
    assert after.pop("rack_id") == rack and before.pop("rack_id") == ""
    assert after == before
    if api_version >= 12:
        assert before["cluster_id"] and before["topics"][0]["partitions"][0], "tagged and nested fields were set"
    assert len(filled) == len(original) + len(rack.encode())


@pytest.mark.parametrize("api_version", RACKED)
def test_a_rack_id_the_client_set_is_never_overridden(api_version: int) -> None:
    original = request_frame(FETCH, api_version, 42, full_body(api_version, "clients-own"))
    assert with_rack(original, _body_offset(original), api_version, "rack-a") is None


@pytest.mark.parametrize("api_version", [v for v in versions(FETCH) if v < FIRST_WITH_RACK])
def test_versions_before_11_have_no_rack_and_are_left_alone(api_version: int) -> None:
    frame = fetch_request(api_version, 1, partitions=2) if api_version >= 4 else None
    assert frame is not None
    assert with_rack(frame, _body_offset(frame), api_version, "rack-a") is None


def test_a_frame_cut_short_raises() -> None:
    frame = fetch_request(12, 1, partitions=3)
    with pytest.raises((IndexError, struct.error)):
        with_rack(frame[:-20], _body_offset(frame), 12, "rack-a")


# --- through a connection ----------------------------------------------------------------------------------



def _pair(source: str, networks: str = "rack-a=198.18.8.0/24,rack-b=198.18.9.0/24") -> tuple[ConnectionPair, Metrics]:
    metrics = Metrics()
    directory = BrokerDirectory({}, (), 1.0)
    directory.described([BrokerInfo(1, "198.18.1.11", 9092, "rack-a"), BrokerInfo(2, "198.18.1.12", 9092, "rack-b")])
    routes = Routes(StaticTopology(PortPlan(6969, 1, 8), "198.18.0.9"), directory, metrics)
    rules = Rules(max_frame_bytes=1 << 20, max_in_flight=500, max_assembled_bytes=1 << 20,
                  reserved=ReservedNames.of("_gateway_test", "_gateway_test_members"),
                  client_networks=parse_client_networks(networks), rack_software=RACK_FOLLOWING_SOFTWARE)

    def admit(pair: ConnectionPair) -> bool:
        pair.source = source
        return True

    pair = ConnectionPair(routes, rules, Incidents(metrics), 6971, f"{source}:5555", on_open=admit)  # broker 2's port
    pair.client_connected(RecordingTransport())  # type: ignore[arg-type]
    pair._connecting = True  # frames wait in _early: what would be written to the broker
    return pair, metrics


def _introduce(pair: ConnectionPair, software: str = "confluent-kafka-python", api_version: int = 3) -> bytes:
    """The ApiVersions request a client opens each connection with (KIP-511 names its software from v3)."""
    body = {"client_software_name": software, "client_software_version": "2.12.1"} if api_version >= 3 else {}
    frame = request_frame(API_VERSIONS, api_version, 1, body)
    pair.from_client(frame)
    return frame


def _withheld(metrics: Metrics) -> dict[str, int]:
    return {rack: tally.value for rack, tally in metrics.racks.withheld.items() if tally.value}


def _assigned(metrics: Metrics) -> dict[str, int]:
    return {rack: tally.value for rack, tally in metrics.racks.assigned.items() if tally.value}


@pytest.mark.parametrize("api_version", [11, 13, 18])
def test_a_connection_with_a_rack_relays_fetch_with_it_and_counts(api_version: int) -> None:
    pair, metrics = _pair("198.18.9.77")
    assert pair.client_rack == "rack-b"
    hello = _introduce(pair)
    frames = [fetch_request(api_version, 7, partitions=4), fetch_request(api_version, 8, partitions=4, rack_id="own")]
    joined = b"".join(frames)
    pair.from_client(joined[:30])  # split inside the first frame
    pair.from_client(joined[30:])
    assert pair._early[0] == hello, "ApiVersions relayed byte for byte"
    relayed = pair._early[1:]
    assert len(relayed) == 2
    assert decoded(relayed[0], api_version)[1]["rack_id"] == "rack-b"
    assert relayed[1] == frames[1], "the client's own rack_id: relayed byte for byte"
    assert [(e.correlation_id, e.api_key) for e in pair.in_flight] == [(1, API_VERSIONS), (7, FETCH), (8, FETCH)]
    assert metrics.api(FETCH).request_bytes == len(relayed[0]) + len(relayed[1])
    assert _assigned(metrics) == {"rack-b": 1}
    assert pair.rules.assembly.used == 0, "the assembly budget is given back"


def test_a_connection_outside_every_network_relays_fetch_untouched() -> None:
    pair, metrics = _pair("198.18.0.250")
    frame = fetch_request(12, 7, partitions=2)
    pair.from_client(frame)
    assert pair.client_rack is None and pair._early == [frame] and _assigned(metrics) == {}


def test_fetch_before_v11_is_relayed_untouched_even_with_a_rack() -> None:
    pair, metrics = _pair("198.18.8.1")
    _introduce(pair)
    frame = fetch_request(10, 7, partitions=2)
    pair.from_client(frame)
    assert pair.client_rack == "rack-a" and pair._early[1:] == [frame] and _assigned(metrics) == {}


@pytest.mark.parametrize("software, api_version", [("aiokafka", 3), ("my-app-client", 4), ("librdkafka", 2)])
def test_software_not_known_to_follow_a_preferred_replica_is_given_no_rack(software: str, api_version: int) -> None:
    """A broker answers a racked Fetch with a preferred read replica and no records; a client that ignores it
    would fetch from the leader without progress forever. Names below v3 are unknown: no rack either."""
    pair, metrics = _pair("198.18.8.1")
    _introduce(pair, software, api_version)
    frame = fetch_request(12, 7, partitions=2)
    pair.from_client(frame)
    assert pair._early[1:] == [frame] and _assigned(metrics) == {}
    assert _withheld(metrics) == {"rack-a": 1}
    assert 'gateway_fetch_rack_withheld_total{rack="rack-a"} 1.0' in metrics_text(metrics)


def test_a_fetch_before_any_api_versions_is_given_no_rack() -> None:
    pair, metrics = _pair("198.18.8.1")
    frame = fetch_request(12, 7, partitions=2)
    pair.from_client(frame)
    assert pair._early == [frame] and _assigned(metrics) == {} and _withheld(metrics) == {}


@pytest.mark.parametrize("software", sorted(RACK_FOLLOWING_SOFTWARE))
def test_each_following_client_software_is_given_the_rack(software: str) -> None:
    pair, metrics = _pair("198.18.8.1")
    _introduce(pair, software)
    pair.from_client(fetch_request(12, 7, partitions=2))
    assert decoded(pair._early[1], 12)[1]["rack_id"] == "rack-a"
    assert _assigned(metrics) == {"rack-a": 1} and _withheld(metrics) == {}


def test_a_fetch_larger_than_the_assembly_limit_is_relayed_untouched_not_refused() -> None:
    pair, metrics = _pair("198.18.8.1")
    _introduce(pair)
    object.__setattr__(pair, "_assembled_limit", 200)
    frame = fetch_request(12, 7, partitions=20)
    assert len(frame) > 200
    pair.from_client(frame)
    assert not pair.closed and b"".join(pair._early[1:]) == frame and _assigned(metrics) == {}


def test_fetch_response_bytes_count_by_client_rack_and_broker_rack() -> None:
    pair, metrics = _pair("198.18.8.1")  # rack-a client on broker 2's port (rack-b)
    _introduce(pair)
    pair.in_flight.clear()  # as if the broker had answered ApiVersions
    pair.from_client(fetch_request(12, 7, partitions=1))
    pair.upstream = RecordingTransport()  # type: ignore[assignment]
    pair._connecting = False
    response = struct.pack(">i", 7) + b"\0" + b"r" * 100  # correlation id, empty header tags, a body
    pair.from_upstream(struct.pack(">i", len(response)) + response)
    tallies = {key: tally.value for key, tally in metrics.racks.fetch_bytes.items()}
    assert tallies == {("rack-a", "rack-b"): 4 + len(response)}
    text = metrics_text(metrics)
    assert 'gateway_fetch_response_bytes_total{broker_rack="rack-b",client_rack="rack-a"} 109.0' in text
    assert 'gateway_fetch_rack_assigned_total{rack="rack-a"} 1.0' in text


def metrics_text(metrics: Metrics) -> str:
    from prometheus_client import generate_latest
    return generate_latest(metrics.registry).decode()

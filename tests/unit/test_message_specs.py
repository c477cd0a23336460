"""Kafka's message definitions as the gateway holds them (message_specs.py, wire.py, codec.py) and what the relay
policy takes from them."""

from __future__ import annotations

import json
import uuid

import pytest

from gateway_app.protocol import message_specs
from gateway_app.protocol.api_versions import unsupported_version_body
from gateway_app.protocol.codec import decode, encode
from gateway_app.protocol.kio_adapter import decodable_version
from gateway_app.protocol.message_specs import REQUEST, RESPONSE, FieldSpec, layout, spec
from gateway_app.protocol.policy import POLICIES, Handling, api_versions_known, relay_handling
from gateway_app.protocol.wire import WireError, int32, uvarint, write_uvarint
from lab.kafka_messages import OUTPUT, compact, render, versions as parse_versions

ADDRESS_FIELDS = {"Host", "Port", "Listeners", "Endpoints", "NodeEndpoints", "CurrentLeader"}
# Reviewed: address-like fields of relayed APIs that are not broker addresses.
NOT_BROKER_ADDRESSES = {
    29: {"Host"},  # DescribeAcls: the host an ACL applies to (a client's)
    31: {"Host"},  # DeleteAcls: likewise
    88: {"Host", "Port"},  # StreamsGroupHeartbeat: Kafka Streams applications' own endpoints (KIP-1071)
    89: {"Host", "Port"},  # StreamsGroupDescribe: likewise
}


def _names(field: FieldSpec) -> set[str]:
    found = {field.name}
    for child in field.fields:
        found |= _names(child)
    return found


@pytest.mark.parametrize("api_key", [key for key, policy in POLICIES.items() if policy.handling is Handling.RELAY])
def test_no_relayed_response_of_any_version_carries_an_address(api_key):
    """A relayed response passes untouched: none of its versions may hold a host, port or endpoint list."""
    for version in range(POLICIES[api_key].max_version + 1):
        found = message_specs.lookup(RESPONSE, api_key, version)
        if found is not None:
            assert not _names(found.root) & ADDRESS_FIELDS - NOT_BROKER_ADDRESSES.get(api_key, set()), (found.name, version)


def test_kafka_440s_new_versions_are_relayed_and_apiversions_v5_is_rewritten():
    assert api_versions_known() == 5 and decodable_version(18, 5) == 4  # v5 answers as v4 does
    for api_key, version in [(28, 6), (42, 3), (88, 1), (89, 1), (93, 0), (18, 5)]:
        assert relay_handling(api_key, version)[0], (api_key, version)
    assert relay_handling(18, 9) == (True, True)  # any ApiVersions: answered by the gateway above v5


def test_the_unsupported_version_answer_is_a_v0_apiversions_body():
    answer, end = decode(spec(RESPONSE, 18, 0), memoryview(unsupported_version_body()))
    assert end == len(unsupported_version_body())
    assert answer == {"error_code": 35, "api_keys": [{"api_key": 18, "min_version": 0, "max_version": 5}]}


def test_equal_layouts_and_different_ones():
    assert layout(spec(RESPONSE, 18, 5)) == layout(spec(RESPONSE, 18, 4))
    assert layout(spec(REQUEST, 18, 5)) != layout(spec(REQUEST, 18, 4))  # ClusterId and NodeId (KIP-1242)


def test_the_committed_specs_are_what_the_generator_makes_of_its_own_input():
    data = json.loads(OUTPUT.read_text())
    assert data["kafka_version"] == message_specs.kafka_version()
    one = {"ApiVersionsRequest.json": json.dumps({
        "apiKey": 18, "type": "request", "name": "ApiVersionsRequest", "validVersions": "0-5", "flexibleVersions": "3+",
        "fields": [{"name": "NodeId", "type": "int32", "versions": "5+"}]})}
    made = json.loads(render("x", compact(one)))["messages"]["request"]["18"]
    assert made["valid"] == [0, 5] and made["flexible"] == [3, None] and made["fields"][0]["versions"] == [5, None]
    assert parse_versions("none") is None and parse_versions("7") == [7, 7]


@pytest.mark.parametrize(("data", "value"), [(b"\x00", 0), (b"\x7f", 127), (b"\x80\x01", 128),
                                             (b"\xff\xff\xff\xff\x0f", -1), (b"\xff\xff\xff\xff\x7f", -1)])
def test_varints_wrap_to_a_java_int_as_kafka_reads_them(data, value):
    assert uvarint(data, 0) == (value, len(data))


def test_a_sixth_varint_byte_is_refused_as_kafka_refuses_it():
    encoded = bytearray()
    write_uvarint(encoded, 2**32 - 1)  # the widest value a Java writer's int gives: five bytes, read back as -1
    assert uvarint(encoded, 0) == (-1, 5)
    with pytest.raises(WireError):
        uvarint(b"\xfe\xff\xff\xff\xff\x01", 0)
    assert int32(2**31) == -2**31


def test_the_codec_reads_back_what_it_wrote_for_every_request_of_every_version():
    for api_key in message_specs.api_keys():
        for version in message_specs.versions(api_key):
            message = spec(REQUEST, api_key, version)
            values = {field.snake: [] for field in message.untagged() if field.array}
            body = encode(message, values)
            decoded, end = decode(message, memoryview(body))
            assert end == len(body) and encode(message, decoded) == body, (api_key, version)
    topic = uuid.uuid4()
    fetch = spec(REQUEST, 1, 17)
    body = encode(fetch, {"topics": [{"topic_id": topic, "partitions": [{"partition": 3, "replica_directory_id": topic}]}]})
    decoded, _ = decode(fetch, memoryview(body))
    assert decoded["topics"][0]["partitions"][0]["replica_directory_id"] == topic  # a tagged field, by its type

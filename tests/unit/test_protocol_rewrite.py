"""Rewrite of every address-bearing response at its lowest and highest supported version.

Each test builds a real kio message, encodes it as a broker would, runs the gateway's rewriter on
the bytes and decodes the result with kio again.
"""

from __future__ import annotations

import datetime
import io
import uuid
from dataclasses import MISSING, fields
from typing import Any

import pytest
from gateway_app.protocol.kio_adapter import load_response_schema
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer
from gateway_app.protocol.kio_adapter import EntityField, EntityTupleField, PrimitiveField, PrimitiveTupleField, classify_field
from kio.static.primitive import i32Timedelta, i64Timedelta

from gateway_app.protocol.policy import POLICIES, Handling, needs_rewrite
from gateway_app.protocol.rewriting import REWRITERS
from gateway_app.protocol.schema_walk import WalkError
from gateway_app.broker_addresses import BrokerInfo, PortPlan
from gateway_app.cluster.topology import StaticTopology

PLAN = PortPlan(port_start=6969, min_broker_id=1, port_count=10)
GATEWAY = "gw.example"
OUT_OF_RANGE = 42

_SAMPLES: dict[str, Any] = {
    "string": "s", "bytes": b"", "records": b"", "bool": False, "error_code": ErrorCode.none,
    "uuid": uuid.UUID(int=7), "timedelta_i32": i32Timedelta.parse(datetime.timedelta(0)),
    "timedelta_i64": i64Timedelta.parse(datetime.timedelta(0)),
    "datetime_i64": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc), "float64": 0.0,
}


def sample(cls: type, fill: bool = False, **overrides: Any) -> Any:
    """A valid instance of a kio entity: required fields filled with plain values; arrays empty, or with two
    elements each (every level down) when `fill`."""
    values: dict[str, Any] = {}
    for field in fields(cls):
        if field.name in overrides or field.default is not MISSING or field.default_factory is not MISSING:
            continue
        kind = classify_field(field)
        if isinstance(kind, EntityTupleField):
            values[field.name] = (sample(kind.type_, fill), sample(kind.type_, fill)) if fill else ()
        elif isinstance(kind, PrimitiveTupleField):
            values[field.name] = (_primitive(field, kind),) * 2 if fill else ()
        elif isinstance(kind, EntityField):
            values[field.name] = sample(kind.type_, fill)
        else:
            assert isinstance(kind, PrimitiveField)
            values[field.name] = _primitive(field, kind)
    return cls(**values, **overrides)


def _primitive(field: Any, kind: Any) -> Any:
    kafka_type = field.metadata["kafka_type"]
    return _SAMPLES[kafka_type] if kafka_type in _SAMPLES else kind.type_(0)


def nested(cls: type, name: str) -> type:
    """The entity type of a (tuple of) entity field."""
    (field,) = [f for f in fields(cls) if f.name == name]
    return classify_field(field).type_


def encode(message: Any) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(message))(buffer, message)
    return buffer.getvalue()


def decode(cls: type, data: bytes) -> Any:
    message, size = entity_reader(cls)(data, 0)
    assert size == len(data)
    return message


class Context:
    """The RewriteContext the proxy supplies, over a real StaticTopology."""

    def __init__(self) -> None:
        self.topology = StaticTopology(PLAN, GATEWAY)
        self.learned: dict[int, BrokerInfo] = {}
        self.out_of_range: list[int] = []
        self.refused: dict[int, float] = {}  # this connection's coordinator refusals

    def report(self, broker: BrokerInfo) -> tuple[str, int] | None:
        self.learned[broker.broker_id] = broker
        return self.endpoint(broker.broker_id)

    def endpoint(self, broker_id: int) -> tuple[str, int] | None:
        try:
            return self.topology.broker_endpoint(broker_id)
        except ValueError:
            self.out_of_range.append(broker_id)
            return None

    def coordinator_available(self, broker_id: int) -> bool:
        return self.topology.coordinator_available(broker_id, self.refused)


def rewrite(api_key: int, version: int, message: Any, ctx: Context) -> Any:
    assert needs_rewrite(api_key, version)
    result = REWRITERS[api_key](memoryview(encode(message)), version, ctx)
    if result is None:
        return None
    data = result if isinstance(result, bytes) else b"".join(bytes(chunk) for chunk in result)
    return decode(type(message), data)


def versions(api_key: int) -> list[int]:
    policy = POLICIES[api_key]
    from kio.schema.index import schema_name_map
    known = sorted(schema_name_map[policy.name])
    return sorted({max(policy.rewrite_from, known[0]), policy.max_version})


def all_versions(api_key: int) -> list[int]:
    low, high = versions(api_key)[0], versions(api_key)[-1]
    return list(range(low, high + 1))


def broker_list(cls: type, id_field: str) -> tuple[Any, ...]:
    broker = nested(cls, "brokers")
    rack = {"rack": "rack-b"} if "rack" in {f.name for f in fields(broker)} else {}
    return tuple(
        sample(broker, **{id_field: broker_id}, host=f"10.0.0.{broker_id}", port=9092, **rack)
        for broker_id in (1, 3, OUT_OF_RANGE)
    )


@pytest.mark.parametrize("version", all_versions(3))
def test_metadata_brokers_point_at_gateway_and_keep_rack(version: int) -> None:
    cls = load_response_schema(3, version)
    topic = sample(nested(cls, "topics"), name="orders")
    message = sample(cls, brokers=broker_list(cls, "node_id"), topics=(topic,))
    ctx = Context()
    result = rewrite(3, version, message, ctx)
    assert [(b.node_id, b.host, b.port) for b in result.brokers] == [(1, GATEWAY, 6970), (3, GATEWAY, 6972)]
    if hasattr(result.brokers[0], "rack"):
        assert {b.rack for b in result.brokers} == {"rack-b"}
    assert result.topics == message.topics
    assert ctx.learned[3].host == "10.0.0.3" and ctx.learned[3].port == 9092
    assert ctx.out_of_range == [OUT_OF_RANGE]


@pytest.mark.parametrize("version", all_versions(60))
def test_describe_cluster_brokers_point_at_gateway(version: int) -> None:
    cls = load_response_schema(60, version)
    message = sample(cls, brokers=broker_list(cls, "broker_id"), cluster_id="c1")
    ctx = Context()
    result = rewrite(60, version, message, ctx)
    assert [(b.broker_id, b.host, b.port, b.rack) for b in result.brokers] == [
        (1, GATEWAY, 6970, "rack-b"), (3, GATEWAY, 6972, "rack-b")]
    assert result.cluster_id == "c1" and set(ctx.learned) == {1, 3, OUT_OF_RANGE}


@pytest.mark.parametrize("version", [v for v in all_versions(60) if v >= 1])
def test_describe_cluster_controller_endpoints_are_rewritten_but_not_learnt(version: int) -> None:
    cls = load_response_schema(60, version)
    message = sample(cls, brokers=broker_list(cls, "broker_id"), cluster_id="c1", endpoint_type=2)
    ctx = Context()
    result = rewrite(60, version, message, ctx)
    assert [(b.broker_id, b.host) for b in result.brokers] == [(1, GATEWAY), (3, GATEWAY)]
    assert result.endpoint_type == 2 and ctx.learned == {}


def metadata_with_topics(version: int, topics: int) -> Any:
    cls = load_response_schema(3, version)
    topic_cls = nested(cls, "topics")
    return sample(cls, brokers=broker_list(cls, "node_id"),
                  topics=tuple(sample(topic_cls, name=f"topic-{n}") for n in range(topics)))


def test_metadata_topics_are_not_copied() -> None:
    body = memoryview(encode(metadata_with_topics(12, 50)))
    before, brokers, after = REWRITERS[3](body, 12, Context())
    assert before.obj is body.obj and after.obj is body.obj and len(after) > 50 * len("topic-00")


def test_the_same_broker_list_again_is_reported_and_rewritten_for_the_endpoints_of_now() -> None:
    """A repeated broker list reuses the last rewrite only while every broker's endpoint is unchanged: a node that
    moves a broker (the topology's answer changes) is told apart, and every answer still reports its brokers."""
    message = metadata_with_topics(12, 2)
    first, again = Context(), Context()
    assert [(b.node_id, b.port) for b in rewrite(3, 12, message, first).brokers] == [(1, 6970), (3, 6972)]
    moved = Context()
    moved.topology = StaticTopology(PLAN, "gw-other.example")
    for ctx, host in ((again, GATEWAY), (moved, "gw-other.example"), (Context(), GATEWAY)):
        result = rewrite(3, 12, message, ctx)
        assert [(b.node_id, b.host, b.port) for b in result.brokers] == [(1, host, 6970), (3, host, 6972)]
        assert result.topics == message.topics and set(ctx.learned) == {1, 3, OUT_OF_RANGE}
        assert ctx.out_of_range == [OUT_OF_RANGE]


def test_a_broker_list_that_only_starts_like_the_last_one_is_read_again() -> None:
    cls = load_response_schema(3, 12)
    three = sample(cls, brokers=broker_list(cls, "node_id"), topics=())
    rewrite(3, 12, three, Context())
    four = sample(cls, brokers=(*broker_list(cls, "node_id"), sample(nested(cls, "brokers"), node_id=5, host="h",
                                                                     port=1, rack=None)), topics=())
    ctx = Context()
    assert [b.node_id for b in rewrite(3, 12, four, ctx).brokers] == [1, 3, 5] and set(ctx.learned) == {1, 3, 5, 42}
    assert [b.node_id for b in rewrite(3, 12, three, Context()).brokers] == [1, 3]


@pytest.mark.parametrize("version", [0, 12])
def test_metadata_truncated_inside_the_broker_list_is_a_walk_error(version: int) -> None:
    body = memoryview(encode(metadata_with_topics(version, 0)))
    for cut in range(len(body) - 9, 0, -1):  # every cut that ends inside the list (the tail is <= 8 bytes)
        try:
            REWRITERS[3](body[:cut], version, Context())
        except WalkError:
            continue
        pytest.fail(f"cut at {cut} of {len(body)} was not noticed")


@pytest.mark.parametrize("version", [0, 3])
def test_find_coordinator_single(version: int) -> None:
    cls = load_response_schema(10, version)
    ctx = Context()
    found = rewrite(10, version, sample(cls, node_id=2, host="10.0.0.2", port=9092), ctx)
    assert (found.node_id, found.host, found.port, found.error_code) == (2, GATEWAY, 6971, ErrorCode.none)
    missing = sample(cls, node_id=-1, host="", port=-1, error_code=ErrorCode.coordinator_not_available)
    assert rewrite(10, version, missing, ctx) == missing
    beyond = rewrite(10, version, sample(cls, node_id=OUT_OF_RANGE, host="10.0.0.9", port=9092), ctx)
    assert (beyond.node_id, beyond.host, beyond.error_code) == (-1, "", ErrorCode.coordinator_not_available)


@pytest.mark.parametrize("version", [4, POLICIES[10].max_version])
def test_find_coordinator_batched_leaves_minus_one_alone(version: int) -> None:
    cls = load_response_schema(10, version)
    coordinator = nested(cls, "coordinators")
    entries = (
        sample(coordinator, key="group-a", node_id=1, host="10.0.0.1", port=9092),
        sample(coordinator, key="group-b", node_id=-1, host="", port=-1, error_code=ErrorCode.coordinator_not_available),
        sample(coordinator, key="txn-c", node_id=3, host="10.0.0.3", port=9092),
    )
    result = rewrite(10, version, sample(cls, coordinators=entries), Context())
    assert [(c.key, c.node_id, c.host, c.port) for c in result.coordinators] == [
        ("group-a", 1, GATEWAY, 6970), ("group-b", -1, "", -1), ("txn-c", 3, GATEWAY, 6972)]


class UnsettledTopology(StaticTopology):
    """A topology that refuses lookups of some coordinators, as ClusterTopology does after a member left."""

    def __init__(self, refused: set[int]) -> None:
        super().__init__(PLAN, GATEWAY)
        self.refused, self.asked = refused, []

    def coordinator_available(self, broker_id: int, refused: dict[int, float]) -> bool:
        self.asked.append(broker_id)
        return broker_id not in self.refused


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_find_coordinator_single_keeps_the_broker_id_or_is_refused_while_its_node_changed(version: int) -> None:
    """The coordinator id stays the real broker id (aiokafka and Java's AdminClient look it up in
    Metadata); a lookup the topology refuses becomes COORDINATOR_NOT_AVAILABLE, which is what makes
    librdkafka forget a coordinator address at a node that left."""
    cls = load_response_schema(10, version)
    ctx = Context()
    ctx.topology = UnsettledTopology({3})
    kept = rewrite(10, version, sample(cls, node_id=2, host="10.0.0.2", port=9092), ctx)
    assert (kept.node_id, kept.host, kept.port, kept.error_code) == (2, GATEWAY, 6971, ErrorCode.none)
    refused = rewrite(10, version, sample(cls, node_id=3, host="10.0.0.3", port=9092), ctx)
    assert (refused.node_id, refused.host, refused.port, refused.error_code) == (-1, "", -1, ErrorCode.coordinator_not_available)
    if version >= 1:
        assert "look it up again" in refused.error_message
    assert ctx.topology.asked == [2, 3]


@pytest.mark.parametrize("version", [4, POLICIES[10].max_version])
def test_find_coordinator_batched_is_never_refused(version: int) -> None:
    cls = load_response_schema(10, version)
    coordinator = nested(cls, "coordinators")
    entries = (sample(coordinator, key="group-a", node_id=3, host="10.0.0.3", port=9092),)
    ctx = Context()
    ctx.topology = UnsettledTopology({3})
    result = rewrite(10, version, sample(cls, coordinators=entries), ctx)
    assert [(c.key, c.node_id, c.host, c.port, c.error_code) for c in result.coordinators] == [
        ("group-a", 3, GATEWAY, 6972, ErrorCode.none)]
    assert ctx.topology.asked == []


def endpoints_of(cls: type) -> tuple[Any, ...]:
    endpoint = nested(cls, "node_endpoints")
    return tuple(sample(endpoint, node_id=i, host=f"10.0.0.{i}", port=9092, rack="rack-c") for i in (2, OUT_OF_RANGE))


def fetch_like(api_key: int, version: int, records: bytes, with_endpoints: bool) -> Any:
    cls = load_response_schema(api_key, version)
    topic_cls = nested(cls, "responses")
    list_name = "partition_responses" if api_key == 0 else "partitions"
    partition_cls = nested(topic_cls, list_name)
    partition_fields = {f.name for f in fields(partition_cls)}
    partition = sample(partition_cls, **({"records": records} if "records" in partition_fields else {}))
    topic_fields = {f.name for f in fields(topic_cls)}
    topic = sample(topic_cls, **{list_name: (partition, partition)}, **({"name": "t"} if "name" in topic_fields else {}))
    extra = {"node_endpoints": endpoints_of(cls)} if with_endpoints else {}
    return sample(cls, responses=(topic,), **extra)


RECORDS = bytes(range(256)) * 64


@pytest.mark.parametrize(("api_key", "version"), [(k, v) for k in (0, 1, 78, 79) for v in versions(k)])
def test_node_endpoints_rewritten_records_untouched(api_key: int, version: int) -> None:
    message = fetch_like(api_key, version, RECORDS, with_endpoints=True)
    ctx = Context()
    result = rewrite(api_key, version, message, ctx)
    assert [(e.node_id, e.host, e.port, e.rack) for e in result.node_endpoints] == [(2, GATEWAY, 6971, "rack-c")]
    assert result.responses == message.responses
    assert ctx.out_of_range == [OUT_OF_RANGE] and ctx.learned[2].host == "10.0.0.2"


@pytest.mark.parametrize(("api_key", "version"), [(k, v) for k in (0, 1, 78, 79) for v in versions(k)])
def test_node_endpoints_absent_means_relay(api_key: int, version: int) -> None:
    message = fetch_like(api_key, version, RECORDS, with_endpoints=False)
    assert rewrite(api_key, version, message, Context()) is None


def test_node_endpoints_splice_reuses_record_memory() -> None:
    message = fetch_like(1, 16, RECORDS, with_endpoints=True)
    body = memoryview(encode(message))
    chunks = REWRITERS[1](body, 16, Context())
    assert chunks[0].obj is body.obj and len(chunks[0]) > 2 * len(RECORDS)


def test_produce_and_fetch_below_kip951_are_relayed() -> None:
    assert not needs_rewrite(0, 9) and needs_rewrite(0, 10)
    assert not needs_rewrite(1, 15) and needs_rewrite(1, 16)


@pytest.mark.parametrize("cut", [1, 7, 100, 3000])
def test_truncated_fetch_is_a_walk_error(cut: int) -> None:
    body = memoryview(encode(fetch_like(1, 18, RECORDS, with_endpoints=True)))
    with pytest.raises(WalkError):
        REWRITERS[1](body[: len(body) - cut], 18, Context())


def api_versions_response(version: int, keys: list[tuple[int, int, int]], error: ErrorCode = ErrorCode.none) -> Any:
    cls = load_response_schema(18, version)
    entry = nested(cls, "api_keys")
    return sample(cls, error_code=error, api_keys=tuple(sample(entry, api_key=k, min_version=lo, max_version=hi) for k, lo, hi in keys))


BROKER_APIS = [(0, 3, 99), (1, 4, 99), (3, 0, 99), (19, 2, 7), (52, 0, 2), (55, 0, 2), (58, 0, 0), (999, 0, 3), (2, 20, 30)]


@pytest.mark.parametrize("version", versions(18))
def test_api_versions_capped(version: int) -> None:
    result = rewrite(18, version, api_versions_response(version, BROKER_APIS), Context())
    advertised = {e.api_key: (e.min_version, e.max_version) for e in result.api_keys}
    assert advertised == {
        0: (3, POLICIES[0].max_version), 1: (4, POLICIES[1].max_version), 3: (0, POLICIES[3].max_version),
        19: (2, 7), 55: (0, 1),
    }  # Vote, Envelope, unknown 999 hidden; ListOffsets dropped as its window is empty


def test_api_versions_unsupported_version_fallback_decodes_as_v0() -> None:
    body = encode(api_versions_response(0, BROKER_APIS, ErrorCode.unsupported_version))
    result = decode(load_response_schema(18, 0), REWRITERS[18](memoryview(body), 4, Context()))
    assert result.error_code == ErrorCode.unsupported_version
    assert {e.api_key for e in result.api_keys} == {0, 1, 3, 19, 55}


def test_every_rewrite_api_decodable_up_to_its_cap() -> None:
    for policy in POLICIES.values():
        if policy.handling is Handling.REWRITE:
            assert load_response_schema(policy.api_key, policy.max_version) is not None


def all_response_schemas() -> list[tuple[int, int]]:
    from kio.schema.index import api_key_map, schema_name_map
    return [(key, version) for key, name in api_key_map.items() for version in sorted(schema_name_map[name])]


@pytest.mark.parametrize(("api_key", "version"), all_response_schemas())
def test_schema_walk_spans_every_response_schema_exactly(api_key: int, version: int) -> None:
    """The generated skip functions agree with kio's encoder on every response kio knows, with two elements in
    every array at every level (empty arrays would skip no element at all)."""
    from gateway_app.protocol.schema_walk import top_level_offsets
    cls = load_response_schema(api_key, version)
    body = memoryview(encode(sample(cls, fill=True)))
    offsets = top_level_offsets(cls, body)
    assert max(end for _, end in offsets.values()) == len(body)

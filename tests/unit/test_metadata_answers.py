"""protocol.metadata_answers: a Metadata answer's rewrite is reused only for the same request, the same broker bytes,
the same routes and the same reserved names; it is bounded; and each client still gets its own correlation id and
its own per-request hiding."""

from __future__ import annotations

import datetime
import struct
import uuid

from kio.schema.errors import ErrorCode
from kio.schema.metadata.v12 import response as metadata_response
from kio.static.primitive import i32, i32Timedelta

from gateway_app.broker_addresses import BrokerInfo, PortPlan
from gateway_app.cluster.topology import StaticTopology
from gateway_app.metrics import Metrics, Tally
from gateway_app.protocol.api_keys import METADATA
from gateway_app.protocol.kio_adapter import decode_response, encode
from gateway_app.protocol.metadata_answers import MetadataAnswers
from gateway_app.protocol.reserved import ReservedNames
from gateway_app.protocol.rewriting import REWRITERS
from gateway_app.proxy.connection import ConnectionPair, Rules
from gateway_app.proxy.directory import BrokerDirectory
from gateway_app.proxy.incidents import Incidents
from gateway_app.proxy.routes import Routes
from lab.frames import metadata_request, request_frame

GATEWAY = "198.18.0.9"
RESERVED_TOPIC = "_gateway_test_members"


class Transport:
    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data) -> None:
        self.written += data

    def writelines(self, chunks) -> None:
        for chunk in chunks:
            self.written += chunk

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def get_extra_info(self, name: str) -> None:
        return None


def body(hosts: tuple[str, ...] = ("10.0.0.1", "10.0.0.2"), topics: tuple[str, ...] = (), ids=(1, 2),
         controller: int = 1) -> bytes:
    brokers = tuple(metadata_response.MetadataResponseBroker(node_id=i32(i), host=host, port=i32(9092), rack=None)
                    for i, host in zip(ids, hosts))
    return encode(metadata_response.MetadataResponse(
        throttle_time=i32Timedelta.parse(datetime.timedelta(0)), brokers=brokers, cluster_id="lab", controller_id=i32(controller),
        topics=tuple(metadata_response.MetadataResponseTopic(
            error_code=ErrorCode.none, name=name, topic_id=uuid.UUID(int=n + 1), is_internal=False, partitions=(),
            topic_authorized_operations=i32(-2147483648)) for n, name in enumerate(topics))))


def answer(correlation_id: int, message: bytes) -> bytes:
    return struct.pack(">ii", 4 + 1 + len(message), correlation_id) + b"\0" + message


def node(reserved: ReservedNames | None = None) -> tuple[Routes, Rules, Metrics]:
    metrics = Metrics()
    routes = Routes(StaticTopology(PortPlan(6969, 1, 8), GATEWAY), BrokerDirectory({}, (), 1.0), metrics)
    rules = Rules(max_frame_bytes=1 << 20, max_in_flight=1000, max_assembled_bytes=1 << 20,
                  reserved=reserved or ReservedNames.of("_gateway_test", RESERVED_TOPIC))
    return routes, rules, metrics


def connection(routes: Routes, rules: Rules, metrics: Metrics) -> ConnectionPair:
    pair = ConnectionPair(routes, rules, Incidents(metrics), 6969, "test")
    pair.client, pair.upstream = Transport(), Transport()  # type: ignore[assignment]
    return pair


def responses(pair: ConnectionPair) -> list[tuple[int, bytes]]:
    """(correlation id, body) of every response the client was written."""
    data, out = bytes(pair.client.written), []  # type: ignore[union-attr]
    while data:
        size, correlation_id = struct.unpack_from(">ii", data)
        out.append((correlation_id, data[9:4 + size]))
        data = data[4 + size:]
    return out


def ask(pair: ConnectionPair, correlation_id: int, message: bytes, request: bytes | None = None) -> None:
    pair.from_client(request or metadata_request(correlation_id))
    pair.from_upstream(answer(correlation_id, message))


def hosts(message: bytes) -> list[tuple[int, str, int]]:
    decoded = decode_response(METADATA, 12, memoryview(message))
    return [(b.node_id, b.host, b.port) for b in decoded.brokers]


def test_the_same_answer_to_the_same_request_is_reused_behind_each_correlation_id() -> None:
    routes, rules, metrics = node()
    first, second = connection(routes, rules, metrics), connection(routes, rules, metrics)
    ask(first, 7, body())
    ask(second, 8, body())
    ask(second, 9, body())
    assert metrics.metadata_answers_reused.value == 2
    answers = responses(first) + responses(second)
    assert [c for c, _ in answers] == [7, 8, 9], "each response carries its own request's correlation id"
    assert all(message == answers[0][1] for _, message in answers)
    assert hosts(answers[0][1]) == [(1, GATEWAY, 6970), (2, GATEWAY, 6971)]
    assert metrics.api(METADATA).rewritten == 3


def test_answers_that_differ_in_their_controller_id_alone_reuse_the_rewrite_with_their_own() -> None:
    """A KRaft broker names a random live broker as the controller in each answer."""
    routes, rules, metrics = node()
    pair = connection(routes, rules, metrics)
    controllers = [1, 2, 3, 2, 1]
    for correlation_id, controller in enumerate(controllers):
        ask(pair, correlation_id, body(controller=controller, topics=("orders",)))
    assert metrics.metadata_answers_reused.value == 4
    answers = [decode_response(METADATA, 12, memoryview(m)) for _, m in responses(pair)]
    assert [a.controller_id for a in answers] == controllers
    assert all(a.brokers == answers[0].brokers and a.topics == answers[0].topics for a in answers)
    assert hosts(responses(pair)[-1][1]) == [(1, GATEWAY, 6970), (2, GATEWAY, 6971)]


def test_another_body_another_request_or_version_is_rewritten() -> None:
    routes, rules, metrics = node()
    pair = connection(routes, rules, metrics)
    ask(pair, 1, body())
    ask(pair, 2, body(topics=("orders",)))  # the broker's answer changed: rewritten, and it replaces the kept one
    ask(pair, 3, body(topics=("orders",)), metadata_request(3, all_topics=True))  # another question
    assert metrics.metadata_answers_reused.value == 0
    ask(pair, 4, body(topics=("orders",)))
    assert metrics.metadata_answers_reused.value == 1
    assert [decode_response(METADATA, 12, memoryview(m)).topics[0].name for _, m in responses(pair)[1:]] == ["orders"] * 3
    assert len(routes.metadata_answers) == 2


def test_a_change_of_the_routes_invalidates_the_kept_rewrite() -> None:
    routes, rules, metrics = node()
    pair = connection(routes, rules, metrics)
    ask(pair, 1, body())
    routes.directory.described([BrokerInfo(1, "10.0.0.1", 9092), BrokerInfo(2, "10.0.0.2", 9092),
                                BrokerInfo(3, "10.0.0.3", 9092)])  # the directory's brokers changed
    ask(pair, 2, body())
    routes.topology.advertised_host, routes.topology.epoch = "198.18.0.7", 1  # a new mapping epoch: new endpoints
    ask(pair, 3, body())
    ask(pair, 4, body())
    assert metrics.metadata_answers_reused.value == 1, "only the answer after nothing changed was reused"
    assert hosts(responses(pair)[-1][1]) == [(1, "198.18.0.7", 6970), (2, "198.18.0.7", 6971)]
    assert set(routes.directory.brokers) == {1, 2, 3}, "what the rewrite learns is still learned"


def test_a_request_naming_reserved_topics_is_never_answered_from_a_kept_rewrite() -> None:
    routes, rules, metrics = node()
    naming = request_frame(METADATA, 12, 5, {"topics": [{"topic_id": uuid.UUID(int=0), "name": RESERVED_TOPIC}],
                                             "allow_auto_topic_creation": False,
                                             "include_topic_authorized_operations": False})
    message = body(topics=(RESERVED_TOPIC, "orders"))
    pair, other = connection(routes, rules, metrics), connection(routes, rules, metrics)
    for correlation_id in (5, 6):  # the same request twice: denied each time, never kept
        ask(pair, correlation_id, message, naming[:8] + struct.pack(">i", correlation_id) + naming[12:])
    ask(other, 7, message)  # a client that did not name it: hidden from it, the answer kept
    ask(other, 8, message)
    topics = [[(t.name, t.error_code) for t in decode_response(METADATA, 12, memoryview(m)).topics]
              for _, m in responses(pair) + responses(other)]
    denied = [(RESERVED_TOPIC, ErrorCode.topic_authorization_failed), ("orders", ErrorCode.none)]
    assert topics == [denied, denied, [("orders", ErrorCode.none)], [("orders", ErrorCode.none)]]
    assert metrics.metadata_answers_reused.value == 1 and len(routes.metadata_answers) == 1
    assert metrics.reserved_hidden._value.get() == 4, "hiding is counted on every answer, reused or not"


def test_a_broker_without_a_gateway_port_is_counted_on_every_answer() -> None:
    routes, rules, metrics = node()
    pair = connection(routes, rules, metrics)
    for correlation_id in range(3):
        ask(pair, correlation_id, body(hosts=("10.0.0.1", "10.0.0.99"), ids=(1, 99)))
    assert metrics.metadata_answers_reused.value == 2
    assert metrics.broker_out_of_range.labels("99")._value.get() == 3
    assert hosts(responses(pair)[-1][1]) == [(1, GATEWAY, 6970)]


def test_other_reserved_names_are_not_given_another_node_s_rewrite() -> None:
    routes, rules, metrics = node()
    ask(connection(routes, rules, metrics), 1, body(topics=("_gateway_other_members",)))
    other_rules = Rules(rules.max_frame_bytes, rules.max_in_flight, rules.max_assembled_bytes,
                        ReservedNames.of("_gateway_other", "_gateway_other_members"))
    pair = connection(routes, other_rules, metrics)
    ask(pair, 2, body(topics=("_gateway_other_members",)))
    assert metrics.metadata_answers_reused.value == 0
    assert decode_response(METADATA, 12, memoryview(responses(pair)[0][1])).topics == ()


def kept(answers: MetadataAnswers, request: bytes, message: bytes, ctx) -> bytes:
    return b"".join(answers.rewrite(request, memoryview(message), 12, ctx))


def test_the_kept_answers_are_bounded_by_count_and_bytes_least_recently_used_first() -> None:
    routes, rules, metrics = node()
    ctx = connection(routes, rules, metrics).rewrite_context
    message = body()
    answers = MetadataAnswers(REWRITERS[METADATA], routes.version, Tally(), max_entries=3, max_bytes=16 * 4096)
    for question in (b"a", b"b", b"c"):
        kept(answers, question, message, ctx)
    kept(answers, b"a", message, ctx)  # used: now the most recent
    kept(answers, b"d", message, ctx)  # over the count: b, the least recently used, goes
    assert list(answers._kept) == [(12, b"c"), (12, b"a"), (12, b"d")]
    kept(answers, b"b", message, ctx)
    assert answers.reused.value == 1, "b was dropped, so it was rewritten again"
    assert answers.bytes == 3 * (1 + len(message) + len(kept(answers, b"b", message, ctx))), "requests count too"
    big = body(topics=tuple(f"topic-{n:05}" for n in range(200)))  # over max_bytes // 16: rewritten, not kept
    assert len(big) > 4096
    kept(answers, b"e", big, ctx)
    assert (12, b"e") not in answers._kept and answers.bytes <= answers.max_bytes
    kept(answers, b"f" * 4096, message, ctx)  # a request naming many topics: its key alone is over the bound
    assert (12, b"f" * 4096) not in answers._kept
    entry = 2 + len(message) + len(kept(answers, b"b", message, ctx))
    by_bytes = MetadataAnswers(REWRITERS[METADATA], routes.version, Tally(), max_entries=100, max_bytes=16 * entry)
    for n in range(10, 30):  # two-byte requests
        kept(by_bytes, b"%d" % n, message, ctx)
    assert len(by_bytes) == 16 and by_bytes.bytes == 16 * entry, "the byte bound holds 16 of them, the newest"
    assert (12, b"29") in by_bytes._kept and (12, b"13") not in by_bytes._kept

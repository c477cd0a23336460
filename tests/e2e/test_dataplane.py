"""The gateway data plane against the lab's real brokers, with confluent-kafka clients in the client netns.

The client netns has no route to the brokers, so any broker address that leaked through a response
would fail the client instead of quietly working.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import struct
import subprocess
import time
from datetime import datetime

import pytest
from confluent_kafka import ElectionType, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec
from kio.schema.alter_partition_reassignments.v0.request import (AlterPartitionReassignmentsRequest,
                                                                   ReassignablePartition, ReassignableTopic)
from kio.schema.alter_partition_reassignments.v0.response import AlterPartitionReassignmentsResponse
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.api_versions.v3.response import ApiVersionsResponse
from kio.schema.errors import ErrorCode
from kio.schema.metadata.v12.request import MetadataRequest
from kio.schema.metadata.v12.response import MetadataResponse
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.schema.types import BrokerId
from kio.static.primitive import i32

from gateway_app.protocol.policy import POLICIES, Handling
from lab.polling import wait_until

from tests.e2e.dataplane_support import (PYTHON, REPO, GatewayNode, kafka_exchange, node_fixture, run_client,
                                         run_in_client_netns, unique)

pytestmark = pytest.mark.lab

PORT_START, HTTP_PORT = 17000, 17090


node = node_fixture(PORT_START, HTTP_PORT)


def test_idempotent_produce_every_message_counted(lab, node):
    result = run_client(lab, "idempotent", "--bootstrap", node.bootstrap, "--topic", unique("idem"), "--count", "3000")
    assert result == {"acked": 3000, "consumed": 3000, "distinct": 3000, "missing": 0}


def test_transactional_produce_read_committed(lab, node):
    result = run_client(lab, "transactional", "--bootstrap", node.bootstrap, "--topic", unique("txn"), "--count", "500")
    assert result == {"committed": 500, "aborted_seen": 0, "distinct": 500}


def test_consumer_group_commits(lab, node):
    result = run_client(lab, "group", "--bootstrap", node.bootstrap, "--topic", unique("grp"), "--count", "1200")
    assert result == {"acked": 1200, "first": 1200, "after_commit": 0, "committed_total": 1200}


def test_admin_sees_only_gateway_addresses_with_racks(lab, node):
    result = run_client(lab, "admin", "--bootstrap", node.bootstrap, "--topic", unique("adm"))
    gateway = [f"{node.address}:{PORT_START + b.id}" for b in lab.brokers]  # broker b -> PORT_START + 1 + (b - 1)
    assert result["partitions"] == 4
    assert set(result["leaders"]) <= set(gateway) and set(result["replica_hosts"]) == set(gateway)
    assert result["cluster_nodes"] == sorted(f"{b.id}@{node.address}:{PORT_START + b.id}/{b.rack}" for b in lab.brokers)
    assert result["metadata_brokers"] == sorted(f"{b.id}@{node.address}:{PORT_START + b.id}" for b in lab.brokers)
    assert result["controller"] in gateway


def test_metrics_and_cluster_view_reflect_traffic(lab, node):
    assert node.metric("gateway_requests_total", api="produce") > 0
    assert node.metric("gateway_rewritten_responses_total", api="metadata") > 0
    assert node.metric("gateway_rewritten_responses_total", api="find_coordinator") > 0
    assert node.metric("gateway_bytes_total", api="fetch", direction="response") > 0
    # plain TCP both ways: the consumers' record sets were spliced (GATEWAY_SPLICE, on by default)
    assert node.metric("gateway_spliced_bytes_total") > 0
    assert node.metric("gateway_request_latency_seconds_count", api="produce") > 0
    assert node.metric("gateway_client_connections_total", port=str(PORT_START), broker="bootstrap") > 0
    assert node.metric("gateway_malformed_frames_total") == 0
    status, body = node.http("/cluster")
    view = json.loads(body)
    assert status == 200
    mapping = {broker: {k: entry[k] for k in ("host", "port", "rack")} for broker, entry in view["mapping"].items()}
    assert mapping == {str(b.id): {"host": node.address, "port": PORT_START + b.id, "rack": b.rack} for b in lab.brokers}
    assert node.http("/health/live")[0] == 200


def test_sigterm_not_ready_drain_exit_zero(lab, tmp_path):
    gateway = GatewayNode(lab, lab.gateway_addresses[-2], PORT_START + 50, HTTP_PORT + 50, tmp_path,
                          GATEWAY_DRAIN_TIMEOUT_S="3").start()
    idle = socket.create_connection((gateway.address, gateway.port_start), timeout=5)
    time.sleep(0.3)
    started = time.monotonic()
    gateway.process.send_signal(signal.SIGTERM)
    code = gateway.process.wait(15)
    assert code == 0 and time.monotonic() - started < 5, gateway.log()[-2000:]
    assert idle.recv(1) == b""  # the idle client connection was closed, not left hanging
    idle.close()
    assert "drained; 0 connections aborted" in gateway.log()


def test_bad_setting_is_named_at_start(lab):
    env = {"PATH": "/usr/bin:/bin", "GATEWAY_PORT_START": "70000", "KAFKA_BOOTSTRAP_SERVERS": lab.bootstrap_servers}
    done = subprocess.run([PYTHON, "-m", "gateway_app"], cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "GATEWAY_PORT_START" in done.stderr


def api_versions(address: str, port: int) -> dict[int, tuple[int, int]]:
    header = RequestHeaderV2(request_api_key=18, request_api_version=3, correlation_id=9, client_id="dp-test")
    request = ApiVersionsRequest(client_software_name="kgw-test", client_software_version="1.0")
    response = kafka_exchange(address, port, header, request, ApiVersionsResponse)
    assert response.error_code == ErrorCode.none
    return {int(k.api_key): (int(k.min_version), int(k.max_version)) for k in response.api_keys}


def test_api_versions_capped_to_the_policy(lab, node):
    broker = lab.brokers[0]
    direct = api_versions(broker.address, broker.port)
    through = api_versions(node.address, PORT_START + broker.id)
    # Written out from the rule, not computed by policy.cap (the function under test): a key is advertised when
    # the policy lets it through at a version the broker has, capped at the policy's version.
    expected = {key: (lo, min(hi, POLICIES[key].max_version)) for key, (lo, hi) in direct.items()
                if key in POLICIES and POLICIES[key].handling is not Handling.DROP and POLICIES[key].max_version >= lo}
    assert through == expected
    # What the table means, independently of it: DescribeQuorum at most v1 (v2 lists controller endpoints), and
    # Produce, Fetch and Metadata advertised as the broker has them (the gateway knows Kafka 4.4's versions).
    assert through[55][1] <= 1 < direct[55][1]
    assert through[0] == direct[0] and through[1] == direct[1] and through[3] == direct[3]
    for key, (lo, hi) in through.items():
        print(f"{key:3d} {POLICIES[key].name:32s} {lo}-{hi} {POLICIES[key].handling.value:8s} broker {direct[key]}")
    hidden = sorted(set(direct) - set(through))
    print("hidden:", [(k, POLICIES[k].name if k in POLICIES else "?") for k in hidden])
    assert all(POLICIES[k].handling is not Handling.DROP for k in through)


def test_dropped_api_closes_only_that_connection(lab, node):
    before = node.metric("gateway_malformed_frames_total", reason="api_not_allowed")
    with socket.create_connection((node.address, PORT_START), timeout=5) as sock:
        payload = struct.pack(">hhih", 52, 0, 1, -1) + b"\x00" * 16  # KRaft Vote: never relayed
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        sock.settimeout(5)
        assert sock.recv(4) == b""
    assert node.metric("gateway_malformed_frames_total", reason="api_not_allowed") == before + 1
    assert api_versions(node.address, PORT_START)  # the node keeps serving


def test_not_ready_while_a_broker_id_has_no_port(lab, tmp_path):
    """MIN_BROKERID=2: broker 1 cannot be mapped; it is left out, counted, and readiness says why."""
    gateway = GatewayNode(lab, lab.gateway_addresses[-2], PORT_START + 60, HTTP_PORT + 60, tmp_path,
                          GATEWAY_MIN_BROKERID="2", GATEWAY_PORT_COUNT="3").start(ready=False)
    try:
        # The node answers /health/ready before it has read the broker list: wait for the check that list settles.
        wait_until(lambda: not json.loads(gateway.http("/health/ready")[1])["checks"]["broker_ids_in_range"]["ok"], 30,
                   "broker_ids_in_range to fail once the node has read the brokers")
        status, body = gateway.http("/health/ready")
        checks = json.loads(body)["checks"]
        assert status == 503 and not checks["broker_ids_in_range"]["ok"], body
        assert "[1]" in checks["broker_ids_in_range"]["detail"]
        done = run_in_client_netns(lab, ["kcat", "-L", "-b", gateway.bootstrap, "-m", "15"], timeout_s=60)
        listed = set(re.findall(r"broker (\d+) at (\S+)", done.stdout))
        assert listed == {("2", f"{gateway.address}:{PORT_START + 61}"), ("3", f"{gateway.address}:{PORT_START + 62}")}
        assert gateway.metric("gateway_broker_id_out_of_range_total", broker="1") > 0
    finally:
        assert gateway.stop() == 0


def test_not_ready_while_kafka_is_unreachable(lab, tmp_path):
    unreachable = f"{lab.brokers[0].address}:9"  # a broker host, a port nothing listens on
    gateway = GatewayNode(lab, lab.gateway_addresses[-2], PORT_START + 70, HTTP_PORT + 70, tmp_path,
                          KAFKA_BOOTSTRAP_SERVERS=unreachable, GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S="2").start(ready=False)
    try:
        status, body = gateway.http("/health/ready")
        assert status == 503 and not json.loads(body)["checks"]["backing_kafka"]["ok"], body
        assert gateway.http("/health/live")[0] == 200
    finally:
        assert gateway.stop() == 0
    # The leave (from "shutting down" to the drain) gives up the membership's wait on the unreachable Kafka at
    # once (stop_aware.py); it used to sit out the 10 s request. Timed by the node's own log, so neither start-up
    # nor the process's exit counts; the bound is far above a wait cut short and far below one sat out.
    assert seconds_between(gateway.log(), "shutting down: not ready, leaving", "drain:") < 5.0


def seconds_between(log: str, first: str, then: str) -> float:
    """Seconds between the log lines holding `first` and (after it) `then`, by their timestamps."""
    stamps = {}
    for line in log.splitlines():
        for mark in (first, then):
            if mark in line and mark not in stamps and (mark == first or first in stamps):
                stamps[mark] = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    assert first in stamps and then in stamps, f"no {first!r} then {then!r} in the log: {log[-2000:]}"
    return (stamps[then] - stamps[first]).total_seconds()


def test_large_records_relay_intact(lab, node):
    spliced = node.metric("gateway_spliced_produce_bytes_total")
    result = run_client(lab, "large", "--bootstrap", node.bootstrap, "--topic", unique("large"), "--count", "12")
    assert result == {"unflushed": 0, "received": 12, "identical": True}
    # plain TCP both ways: the Produce requests' records were spliced (a few reads' worth of them read, at most the
    # first request's read by the connection's transport before the pair reads its socket itself)
    assert node.metric("gateway_spliced_produce_bytes_total") - spliced >= 12 * 899_000 - 300_000


def test_pipelined_requests_answered_in_order(lab, node):
    """Rewritten (Metadata, ApiVersions) and relayed (ListGroups) requests interleaved on one connection."""
    frames, expected = [], []
    for correlation_id in range(1, 61):
        api_key, version, body = [(18, 0, b""), (3, 1, struct.pack(">i", 0)), (16, 0, b"")][correlation_id % 3]
        payload = struct.pack(">hhih", api_key, version, correlation_id, 2) + b"pl" + body
        frames.append(struct.pack(">i", len(payload)) + payload)
        expected.append(correlation_id)
    with socket.create_connection((node.address, PORT_START + 1), timeout=10) as sock:
        sock.sendall(b"".join(frames))
        seen = []
        stream = sock.makefile("rb")
        for _ in expected:
            size = struct.unpack(">i", stream.read(4))[0]
            seen.append(struct.unpack(">i", stream.read(size)[:4])[0])
    assert seen == expected


def test_acks_zero_produce_keeps_the_connection_in_step(lab, node):
    before = node.metric("gateway_upstream_errors_total", reason="correlation_mismatch")
    topic = unique("acks0")
    result = run_client(lab, "acks0", "--bootstrap", node.bootstrap, "--topic", topic, "--count", "2000")
    # which side lost them, if any are lost (once on 3.9.2: all 2000 handed over, none read back in 60 s)
    assert result == {"acked": 2000, "consumed": 2000}, (result, f"end offset at the brokers {end_offset(lab, topic)}",
                                                         node.log()[-3000:])
    assert node.metric("gateway_upstream_errors_total", reason="correlation_mismatch") == before


def end_offset(lab, topic: str, partition: int = 0) -> int | str:
    """The partition's end offset asked of the brokers directly (what was written, whatever a client read)."""
    admin = AdminClient({"bootstrap.servers": lab.bootstrap_servers})
    try:
        offsets = admin.list_offsets({TopicPartition(topic, partition): OffsetSpec.latest()}, request_timeout=10)
        return next(iter(offsets.values())).result().offset
    except KafkaException as error:
        return f"not read: {error}"


def reorder_replicas(broker, topic: str, replicas: dict[int, list[int]]) -> None:
    """AlterPartitionReassignments (KIP-455, no admin call of confluent-kafka's) with each partition's own replicas in
    a new order: no data moves, only the preferred leader changes."""
    header = RequestHeaderV2(request_api_key=45, request_api_version=0, correlation_id=7, client_id="dp-test")
    request = AlterPartitionReassignmentsRequest(topics=(ReassignableTopic(name=topic, partitions=tuple(
        ReassignablePartition(partition_index=i32(p), replicas=tuple(BrokerId(b) for b in order))
        for p, order in replicas.items())),))
    response = kafka_exchange(broker.address, broker.port, header, request, AlterPartitionReassignmentsResponse,
                              response_header_bytes=5)
    errors = [response.error_code] + [p.error_code for t in response.responses for p in t.partitions]
    assert all(e == ErrorCode.none for e in errors), response


def leaders_at(broker, topic: str) -> dict[int, int]:
    """Partition -> leader as `broker` itself knows it (Metadata v12 asked of it alone; empty before it knows the
    topic)."""
    header = RequestHeaderV2(request_api_key=3, request_api_version=12, correlation_id=8, client_id="dp-test")
    request = MetadataRequest(topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False)
    response = kafka_exchange(broker.address, broker.port, header, request, MetadataResponse, response_header_bytes=5)
    return {int(p.partition_index): int(p.leader_id) for t in response.topics if t.name == topic for p in t.partitions}


def endpoint_outcomes(node) -> dict[str, float]:
    """Spliced Fetch responses whose node endpoints were rewritten in place, by outcome."""
    return {o: node.metric("gateway_fetch_endpoints_in_place_total", outcome=o) for o in ("rewritten", "padded", "dropped")}


def test_librdkafka_reads_fetch_responses_whose_endpoints_were_dropped_or_padded(lab, node):
    """KIP-951 node endpoints in spliced Fetch responses (protocol/endpoints_in_place.py), read by librdkafka.

    A Fetch response names the new leader of a partition that moved (CurrentLeader) and its address (NodeEndpoints,
    in the tag section at the frame's end). The gateway has written a spliced response's size before it reads that
    section, so the rewritten section keeps the broker's size: a gateway address one byte shorter than the broker's
    leaves one endpoint one byte short, too little for a padding field, so it is dropped; two endpoints are two bytes
    short, and a padding field fills them. A consumer behind on partition 0 (so that its leader's answer is
    spliced) reads the topic in steps, paused while the leaders move away from that broker: first partition 1's (one
    endpoint: dropped), then in one election partition 2's and 3's to two brokers (two endpoints: padded). librdkafka
    must read both answers without a parse error, follow the leaders, and read every record once."""
    x, y, z = (b.id for b in lab.brokers)
    assert all(len(b.address) - len(node.address) == 1 for b in lab.brokers), "the lab's layout changed"
    by_id = {b.id: b for b in lab.brokers}
    topic = unique("moved")
    admin = AdminClient({"bootstrap.servers": lab.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 4, -1, replica_assignment=[[x, y, z], [x, y, z], [x, y, z], [x, z, y]])],
                        request_timeout=30)[topic].result(40)
    producer = Producer({"bootstrap.servers": lab.bootstrap_servers, "acks": "all", "batch.size": 16384, "linger.ms": 5})
    produced: list[int] = []
    failed: list[str] = []

    def produce(partition: int, count: int) -> None:
        for _ in range(count):
            producer.produce(topic, f"{len(produced):07d}:".encode().ljust(1000, b"."), partition=partition,
                             on_delivery=lambda error, _: error is None or failed.append(str(error)))
            produced.append(len(produced))
        assert producer.flush(30) == 0 and not failed, failed

    def move(leaders: dict[int, int]) -> None:
        """Each partition's leader to the broker given, in one reassignment and one election, seen by broker x."""
        replicas = {p: [leader] + [b for b in (x, y, z) if b != leader] for p, leader in leaders.items()}
        reorder_replicas(by_id[x], topic, replicas)
        elected = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(topic, p) for p in leaders]).result(30)
        assert all(e is None or e.code() == KafkaError.ELECTION_NOT_NEEDED for e in elected.values()), elected
        wait_until(lambda: all(leaders_at(by_id[x], topic)[p] == b for p, b in leaders.items()), 20,
                   f"broker {x} to see the leaders {leaders}", 0.2)

    reader: subprocess.Popen[str] | None = None
    counted = endpoint_outcomes(node)

    def read_until(count: int) -> set[str]:
        """The reader on to `count` records; the outcomes the gateway counted meanwhile."""
        reader.stdin.write(f"{count}\n")
        reader.stdin.flush()
        line = reader.stdout.readline()
        assert line, reader.stderr.read()[-3000:]
        assert json.loads(line) == {"paused": count, "problems": []}
        before = dict(counted)
        counted.update(endpoint_outcomes(node))
        return {o for o in counted if counted[o] != before[o]}

    try:
        wait_until(lambda: set(leaders_at(by_id[x], topic).values()) == {x}, 20, f"broker {x} to lead {topic}", 0.2)
        reader = subprocess.Popen(lab.client_cmd([PYTHON, "-m", "tests.e2e.dataplane_clients", "read-in-steps",
                                                  "--bootstrap", node.bootstrap, "--topic", topic, "--seconds", "20"]),
                                  cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        for partition in range(4):
            produce(partition, 1)
        assert read_until(len(produced)) == set()  # every partition fetched from broker x
        produce(1, 8)
        produce(0, 300)  # behind on partition 0: broker x's next answers are large, so spliced
        move({1: y})
        assert read_until(len(produced)) == {"dropped"}
        produce(2, 8)
        produce(3, 8)
        produce(0, 300)
        move({2: y, 3: z})
        assert read_until(len(produced)) == {"padded"}
        out, err = reader.communicate(timeout=30)
        assert reader.returncode == 0, err[-3000:]
        result = json.loads(out.strip().splitlines()[-1])
        print(f"\nspliced Fetch responses' endpoints: {counted}; librdkafka read {len(result['ids'])} records, "
              f"{result['duplicates']} twice, problems {result['problems']}")
        assert result == {"ids": produced, "duplicates": 0, "problems": []}
    finally:
        if reader is not None and reader.poll() is None:
            reader.kill()
            reader.wait()
        admin.delete_topics([topic], request_timeout=10)[topic].exception()

"""Forged and malformed member records written straight to the lab's brokers, as an attacker with
broker access would (issue 13): three gateway processes in three racks, real brokers, and the
Metadata a client in the client namespace gets.

None of the attacks may change the mapping, any node's member list or the client's Metadata, and
every node must stay ready throughout (sampled every 0.2 s). A record signed with the right secret
under a node's own id (an insider, or two nodes configured with one id) is corrected by that node at
once; the time it took is printed. The membership thread's supervisor is proven with an in-process
node whose loop step is made to raise once.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from gateway_app.cluster.records import RecordCodec
from gateway_app.member import Member
from gateway_app.cluster.membership import Membership
from gateway_app.cluster_names import topic_name
from gateway_app.cluster.metrics import ClusterMetrics
from lab.layout import CLUSTER_SECRET
from tests.e2e.cluster_support import (  # noqa: F401  (cluster_id is a fixture)
    PORT_START, ClusterNode, cluster_id, http_get, wait_until,
)
from tests.e2e.dataplane_support import run_in_client_netns

RACKS = ["rack-a", "rack-b", "rack-c"]
SAMPLE_S = 5.0


def client_metadata(lab, address: str) -> dict[int, str]:
    """Broker id -> host:port as a librdkafka client in the client namespace sees it (kcat -L)."""
    done = run_in_client_netns(lab, ["kcat", "-L", "-J", "-m", "10", "-b", f"{address}:{PORT_START}"], timeout_s=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return {int(b["id"]): b["name"] for b in json.loads(done.stdout)["brokers"]}


def cluster_views(nodes: list[ClusterNode]) -> list[dict]:
    return [json.loads(http_get(node.address, "/cluster")[1]) for node in nodes]


def fingerprint(nodes: list[ClusterNode]) -> list[tuple]:
    """What an attack must not change: each node's mapping digest, members and per-broker endpoints."""
    return [(v["mapping_digest"], json.dumps(v["members"], sort_keys=True),
             json.dumps({b: (e.get("host"), e.get("port")) for b, e in v["mapping"].items()}, sort_keys=True))
            for v in cluster_views(nodes)]


def metric(node: ClusterNode, name: str, **labels: str) -> float:
    return node.metric(name, **labels)


def sample_readiness(nodes: list[ClusterNode], seconds: float, unchanged: list[tuple] | None = None) -> list[str]:
    """Every /health/ready answer that was not 200 during `seconds`, sampled every 0.2 s; with
    `unchanged`, also every sample whose fingerprint differed from it (a change undone later counts too)."""
    failures, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        for node in nodes:
            status, body = http_get(node.address, "/health/ready")
            if status != 200:
                failures.append(f"{node.node_id}: {status} {body[:300]!r}")
        if unchanged is not None and (now := fingerprint(nodes)) != unchanged:
            failures.append(f"views changed: {now}")
        time.sleep(0.2)
    return failures


def latest_record(lab, topic: str, key: bytes) -> bytes | None:
    """The value of the last record under `key` on the members topic, read from the beginning."""
    reader = Consumer({"bootstrap.servers": lab.bootstrap_servers, "group.id": "kgw-test-reader", "enable.auto.commit": False})
    try:
        _, high = reader.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        reader.assign([TopicPartition(topic, 0, 0)])
        latest, position = None, 0
        while position < high:
            message = reader.poll(5)
            assert message is not None, "members topic read timed out"
            if message.error():
                continue
            position = message.offset() + 1
            if message.key() == key:
                latest = message.value()
        return latest
    finally:
        reader.close()


@pytest.fixture
def three_nodes(lab, cluster_id, tmp_path):
    nodes = [ClusterNode(lab, cluster_id, f"gw-{rack}", rack, address, tmp_path)
             for rack, address in zip(RACKS, lab.gateway_addresses)]
    try:
        for node in nodes:
            node.wait_ready(90)  # three Python processes starting at once on a busy 2-core machine
        wait_until(lambda: all(len(v["members"]) == 3 for v in cluster_views(nodes)), 30, "every node to see all three")
        yield nodes
    finally:
        for node in nodes:
            node.kill()


@pytest.mark.lab
@pytest.mark.timeout(400)
def test_forged_and_malformed_records_change_nothing_and_every_node_stays_ready(lab, cluster_id, three_nodes):
    nodes = three_nodes
    topic = topic_name(cluster_id)
    before, metadata_before = fingerprint(nodes), client_metadata(lab, nodes[0].address)
    assert len({f[0] for f in before}) == 1 and set(metadata_before) == {b.id for b in lab.brokers}
    gw1 = nodes[0]
    hijack = Member(gw1.node_id, lab.client_address, "rack-a", PORT_START, 10)  # gw1's id, the client's address
    right = RecordCodec(cluster_id, CLUSTER_SECRET)
    wrong = RecordCodec(cluster_id, "attacker-guessed-secret-123")
    huge = (b'{"advertised_host": "%s", "node_id": "gw-rack-b", "port_count": 10, "port_start": 1e400, "rack": "rack-b"}'
            % nodes[1].address.encode())
    valid_of_gw2 = right.encode(Member(nodes[1].node_id, nodes[1].address, "rack-b", PORT_START, 10))
    attacks = [  # (key, value, headers, the reason every node must count)
        (gw1.node_id, hijack.encode(), None, "unsigned"),
        (nodes[1].node_id, huge, None, "unsigned"),
        (nodes[1].node_id, *right.sign(huge), "malformed"),  # even signed
        (nodes[2].node_id, b"\x00\xff\xfe garbage {{{", None, "unsigned"),
        (gw1.node_id, *wrong.encode(hijack), "bad_mac"),
        (gw1.node_id, *valid_of_gw2, "key_mismatch"),  # a valid record of gw2 under gw1's key
    ]
    counted = {reason: [metric(n, "gateway_cluster_member_records_rejected_total", reason=reason) for n in nodes]
               for reason in {a[3] for a in attacks}}
    producer = Producer({"bootstrap.servers": lab.bootstrap_servers})
    for key, value, headers, _ in attacks:
        producer.produce(topic, key=key.encode(), value=value, headers=headers)
    assert producer.flush(10) == 0
    failures = sample_readiness(nodes, SAMPLE_S, unchanged=before)
    assert failures == [], failures
    assert fingerprint(nodes) == before
    assert client_metadata(lab, nodes[0].address) == metadata_before
    for reason, was in counted.items():
        expected = sum(1 for a in attacks if a[3] == reason)
        assert [metric(n, "gateway_cluster_member_records_rejected_total", reason=reason) - w
                for n, w in zip(nodes, was)] == [expected] * 3, reason
    assert all(metric(n, "gateway_cluster_own_record_rewrites_total") == 0 for n in nodes)
    assert all(metric(n, "gateway_cluster_membership_restarts_total") == 0 for n in nodes)
    for node in nodes:  # the secret shows nowhere
        for path in ("/cluster", "/metrics", "/health/ready"):
            assert CLUSTER_SECRET.encode() not in http_get(node.address, path)[1]
        assert CLUSTER_SECRET not in node.log_path.read_text(errors="replace")
        assert "ignoring a member record" in node.log_path.read_text(errors="replace")


@pytest.mark.lab
@pytest.mark.timeout(400)
def test_a_signed_record_under_a_nodes_own_id_is_corrected_at_once(lab, cluster_id, three_nodes):
    nodes = three_nodes
    gw1, topic = nodes[0], topic_name(cluster_id)
    before = fingerprint(nodes)
    own = latest_record(lab, topic, gw1.node_id.encode())
    right = RecordCodec(cluster_id, CLUSTER_SECRET)
    hijack = Member(gw1.node_id, lab.client_address, "rack-a", PORT_START, 10)
    producer = Producer({"bootstrap.servers": lab.bootstrap_servers})
    readiness: list[str] = []
    sampler = threading.Thread(target=lambda: readiness.extend(sample_readiness(nodes, SAMPLE_S)))
    sampler.start()
    for forged, what in ((right.encode(hijack), "a signed record with the client's address"), ((None, None), "a tombstone")):
        value, headers = forged
        written = time.monotonic()
        producer.produce(topic, key=gw1.node_id.encode(), value=value, headers=headers)
        assert producer.flush(10) == 0
        took = wait_until(lambda: latest_record(lab, topic, gw1.node_id.encode()) == own, 10, f"gw1 to rewrite its record after {what}", 0.02)
        seen = wait_until(lambda: fingerprint(nodes) == before, 10, "every node's view back as before", 0.05)
        print(f"\n{what} under gw1's id: gw1's own record was the latest again {took:.2f}s after the write; "
              f"every view as before {time.monotonic() - written:.2f}s after it (waited {seen:.2f}s more)")
        assert took < 3.0
    sampler.join()
    assert readiness == [], readiness
    assert metric(gw1, "gateway_cluster_own_record_rewrites_total") == 2
    assert client_metadata(lab, nodes[1].address)[1] == f"{gw1.address}:{PORT_START + 1}"


@pytest.mark.lab
@pytest.mark.timeout(180)
def test_the_membership_thread_is_restarted_when_its_loop_dies(lab, cluster_id):
    metrics = ClusterMetrics(CollectorRegistry())

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        me = Member("gw-sup", lab.gateway_addresses[0], "rack-a", PORT_START, 10)
        membership = Membership(me, cluster_id, {"bootstrap.servers": lab.bootstrap_servers}, 10.0, lambda view: None, loop,
                                secret=CLUSTER_SECRET, metrics=metrics)
        fail = threading.Event()
        live = membership.roster.live

        def live_that_fails_once(live_ids):  # the next refresh of the live members raises, in the loop's thread
            if fail.is_set():
                fail.clear()
                raise RuntimeError("injected failure")
            return live(live_ids)

        membership.roster.live = live_that_fails_once
        membership.start()
        try:
            await until(lambda: membership.status().joined, 40, "joined")
            fail.set()
            await until(lambda: membership.restarts == 1, 10, "the loop to die and be restarted")
            await until(lambda: membership.status().joined, 40, "joined again after the restart")
            status = membership.status()
            assert "membership restarted 1 times, last error: RuntimeError: injected failure" in status.detail, status
            assert metrics.membership_restarts._value.get() == 1
            assert membership.running
        finally:
            await loop.run_in_executor(None, membership.stop)
        assert not membership.running

    asyncio.run(scenario())


async def until(predicate, timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < end, f"timed out after {timeout_s}s waiting for {what}"
        await asyncio.sleep(0.1)

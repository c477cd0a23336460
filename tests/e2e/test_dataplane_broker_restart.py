"""A broker restarts while a producer writes through the gateway: no acknowledged message is lost.

The producer (idempotent, acks=all) runs in the client netns; the leader of partition 0 is
restarted with the lab tool. Clients must find the new leaders through gateway addresses only
(Metadata and the KIP-951 NodeEndpoints of Produce/Fetch responses are rewritten).
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.e2e.dataplane_support import REPO, BackgroundProducer, node_fixture, unique

pytestmark = pytest.mark.lab

PORT_START, HTTP_PORT = 17200, 17290
PRODUCE_SECONDS = 25

node = node_fixture(PORT_START, HTTP_PORT)


def test_broker_restart_under_producer_loses_no_acked_message(lab, node):
    topic = unique("restart")
    admin = AdminClient({"bootstrap.servers": lab.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 3, 3, config={"min.insync.replicas": "2"})], request_timeout=30)[topic].result(40)
    time.sleep(1)
    leader = admin.list_topics(topic, timeout=10).topics[topic].partitions[0].leader

    with BackgroundProducer(lab, node.bootstrap, topic, PRODUCE_SECONDS) as producer:
        time.sleep(6)
        restart = subprocess.run([sys.executable, "-m", "lab", "broker", "restart", str(leader)], cwd=REPO,
                                 capture_output=True, text=True, timeout=180)
        assert restart.returncode == 0, restart.stderr[-2000:]
        time.sleep(3)  # sending on after the broker is back, then every record sent is read back
        producer.stop_sending()
        result = producer.result()
    assert result["acked"] > 1000 and result["missing"] == 0, result
    assert result["consumed_distinct"] >= result["acked"], result
    assert result["error_count"] == 0 and result["no_outcome"] == 0 and result["unanswered"] == 0, result
    new_leader = admin.list_topics(topic, timeout=10).topics[topic].partitions[0].leader
    kip951 = {api: node.metric("gateway_rewritten_responses_total", api=api) for api in ("produce", "fetch")}
    print(f"partition 0 leader {leader} -> {new_leader}; {result}; NodeEndpoints rewritten: {kip951}")
    # The old leader's controlled shutdown answers in-flight produces with NOT_LEADER_OR_FOLLOWER and
    # the new leader's endpoint: those responses must have been rewritten to gateway addresses.
    assert sum(kip951.values()) > 0
    assert node.alive() and node.metric("gateway_upstream_errors_total", reason="undecodable_response") == 0

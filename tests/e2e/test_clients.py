"""Every client family through the gateway: Kafka's own Java tools (the lab's release), kcat, kafka-python, aiokafka,
and Go's franz-go (tests/clients/go, built here with the Go toolchain).

All run in the client netns, which cannot reach the brokers: a client only works if every address
it was handed is a gateway address.
"""

from __future__ import annotations

import re

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from lab import kafka_versions
from lab.clients.cluster_clients import LOG4J2
from tests.e2e.dataplane_support import (build_franz_go, node_fixture, run_client, run_franz_go, run_in_client_netns,
                                         unique)

pytestmark = pytest.mark.lab

PORT_START, HTTP_PORT = 17100, 17190


node = node_fixture(PORT_START, HTTP_PORT)


def gateway_brokers(lab, node) -> set[str]:
    return {f"{node.address}:{PORT_START + b.id}" for b in lab.brokers}


def new_topic(lab, prefix: str, partitions: int = 3) -> str:
    """Test setup straight against the brokers (the controller can reach them)."""
    topic = unique(prefix)
    admin = AdminClient({"bootstrap.servers": lab.bootstrap_servers})
    admin.create_topics([NewTopic(topic, partitions, 3)], request_timeout=30)[topic].result(40)
    return topic


@pytest.fixture(scope="module")
def log4j_config(tmp_path_factory) -> str:
    """Tool logs to stderr so stdout carries only the tools' own output."""
    path = tmp_path_factory.mktemp("log4j") / "log4j2.properties"
    path.write_text(LOG4J2)
    return str(path)


def java(lab, log4j_config: str, main_class: str, *args: str) -> list[str]:
    log4j = f"-Dlog4j2.configurationFile={log4j_config}"
    return ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", log4j, "-cp", lab.java_classpath, main_class, *args]


def test_kcat_metadata_lists_only_gateway_addresses(lab, node):
    done = run_in_client_netns(lab, ["kcat", "-L", "-b", node.bootstrap, "-m", "20"], timeout_s=60)
    assert done.returncode == 0, done.stderr
    listed = set(re.findall(r"broker (\d+) at (\S+)", done.stdout))
    assert {address for _, address in listed} == gateway_brokers(lab, node)
    assert {int(broker) for broker, _ in listed} == {b.id for b in lab.brokers}
    assert not any(b.address in done.stdout for b in lab.brokers)


def test_java_console_producer_and_consumer(lab, node, log4j_config):
    topic = new_topic(lab, "console")
    lines = [f"line-{i}" for i in range(300)]
    produced = run_in_client_netns(
        lab, java(lab, log4j_config, kafka_versions.console_producer_class(lab.kafka_version),
                  "--bootstrap-server", node.bootstrap, "--topic", topic, "--producer-property", "acks=all"),
        stdin="\n".join(lines) + "\n", timeout_s=120)
    assert produced.returncode == 0, produced.stderr[-2000:]
    consumed = run_in_client_netns(
        lab, java(lab, log4j_config, "org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", node.bootstrap,
                  "--topic", topic, "--from-beginning", "--max-messages", str(len(lines)), "--timeout-ms", "60000",
                  "--group", f"console-{topic}"),
        timeout_s=120)
    assert consumed.returncode == 0, consumed.stderr[-2000:]
    received = [line for line in consumed.stdout.splitlines() if re.fullmatch(r"line-\d+", line)]
    assert sorted(received) == sorted(lines)


def test_java_producer_and_consumer_performance(lab, node, log4j_config):
    topic = new_topic(lab, "perf")
    records = 50_000
    produced = run_in_client_netns(
        lab, java(lab, log4j_config, "org.apache.kafka.tools.ProducerPerformance", "--topic", topic, "--num-records", str(records),
                  "--record-size", "512", "--throughput", "-1",
                  "--producer-props", f"bootstrap.servers={node.bootstrap}", "acks=all", "linger.ms=5"),
        timeout_s=180)
    assert produced.returncode == 0, produced.stderr[-2000:]
    assert re.search(rf"^{records} records sent", produced.stdout, re.M), produced.stdout[-2000:]
    consumed = run_in_client_netns(
        lab, java(lab, log4j_config, "org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server", node.bootstrap,
                  "--topic", topic, "--messages", str(records), "--timeout", "60000"),
        timeout_s=180)
    assert consumed.returncode == 0, consumed.stderr[-2000:]
    output = consumed.stdout.splitlines()
    header = next(i for i, line in enumerate(output) if "data.consumed.in.nMsg" in line)
    columns = dict(zip([c.strip() for c in output[header].split(",")], output[header + 1].split(",")))
    assert int(columns["data.consumed.in.nMsg"]) >= records, consumed.stdout[-2000:]


def test_kafka_python_produce_consume(lab, node):
    result = run_client(lab, "kafka-python", "--bootstrap", node.bootstrap, "--topic", unique("kpy"), "--count", "500")
    assert result == {"acked": 500, "consumed": 500, "distinct": 500}


def test_aiokafka_produce_consume(lab, node):
    result = run_client(lab, "aiokafka", "--bootstrap", node.bootstrap, "--topic", unique("aio"), "--count", "500")
    assert result == {"acked": 500, "consumed": 500, "distinct": 500}


@pytest.fixture(scope="module")
def franz_go(tmp_path_factory) -> str:
    return build_franz_go(tmp_path_factory.mktemp("go"))


def test_franz_go_produces_consumes_in_a_group_and_administers(lab, node, franz_go):
    seen = run_franz_go(lab, franz_go, node.bootstrap, unique("franz"))
    assert set(seen["brokers"]) == gateway_brokers(lab, node), seen  # the cluster as described: gateway ports only
    assert (seen["partitions"], seen["acked"], seen["consumed"], seen["distinct"]) == (3, 500, 500, 500), seen
    assert (seen["group_state"], seen["group_members"]) == ("Stable", 1), seen
    assert seen["end_offsets"] == seen["committed_offsets"] == 500, seen
    assert (seen["altered_count"], seen["altered_offsets"]) == (3, 0), seen


def test_no_malformed_frames_from_real_clients(node):
    assert node.metric("gateway_malformed_frames_total") == 0
    assert node.metric("gateway_upstream_errors_total", reason="undecodable_response") == 0

"""The gateway's request reader against Kafka's own Java parser, for 165,000 fuzzed frames or half a minute.

lab/differential.py builds valid requests of every version both sides define, mutates them where parsers
part ways, and has the lab's Kafka (its jars; no broker needed) and the gateway read each. The request
guard's rule: where Kafka reads a frame, the gateway refuses it or finds exactly Kafka's names. The long
run is `python -m lab.differential --frames 1000000` (results/parser-differential.json).

The same oracle reads responses as Kafka's clients do: Produce and Fetch responses whose KIP-951 node endpoints
the splice path rewrote in place (protocol/endpoints_in_place.py: rewritten, padded or dropped) are read whole, with
the endpoints the gateway meant and the padding kept aside as an unknown tagged field.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import replace

import pytest

from gateway_app.cluster.topology import StaticTopology
from gateway_app.protocol.api_keys import FETCH, PRODUCE
from gateway_app.protocol.endpoints_in_place import PADDING_TAGS, Outcome, rewrite_in_place
from gateway_app.protocol.kio_adapter import load_response_schema
from gateway_app.protocol.policy import POLICIES
from gateway_app.protocol.schema_walk import tag_section_offsets
from lab import differential
from lab.kafka import ensure_jars
from tests.unit.test_fetch_stream import records
from tests.unit.test_protocol_rewrite import PLAN, Context, encode, fetch_like, nested, sample

pytestmark = pytest.mark.lab

# As many frames as the half minute this test once ran for gave on a quiet machine (5443 frames/s, 163,000, in
# results/parser-differential.json), in less time now that Kafka reads each batch while the next is judged; half a
# minute stays the bound on a busy machine, which then gets through more of them than it did.
FRAMES = int(os.environ.get("KGW_DIFFERENTIAL_FRAMES", "165000"))
SECONDS = float(os.environ.get("KGW_DIFFERENTIAL_SECONDS", "30"))


@pytest.fixture(scope="module")
def oracle():
    if shutil.which("javac") is None or shutil.which("java") is None:
        pytest.skip("needs a JDK (java and javac)")
    oracle = differential.Oracle(ensure_jars() / "libs")
    yield oracle
    oracle.close()


def test_the_gateway_reads_requests_as_kafka_does(oracle: differential.Oracle) -> None:
    seed = int(os.environ.get("KGW_DIFFERENTIAL_SEED", random.SystemRandom().randrange(1 << 32)))
    started = time.monotonic()
    run = differential.fuzz(oracle, frames=FRAMES, seed=seed, seconds=SECONDS, keep=False)
    print(f"\nseed {seed}: {run.frames} frames in {time.monotonic() - started:.1f} s")

    shown = json.dumps(run.examples[:5], indent=1, ensure_ascii=False)[:6000]
    assert not run.disagreements, f"seed {seed}: {dict(run.disagreements)} in {run.frames} frames:\n{shown}"
    # The run exercised both sides of the rule: frames Kafka reads and frames it refuses, across the APIs.
    assert run.outcomes["agree_read"] > 1000 and run.outcomes["agree_refused"] > 1000, dict(run.outcomes)
    assert len(run.per_api) >= 50, sorted(run.per_api)


def test_the_oracle_is_kafka(oracle: differential.Oracle) -> None:
    """A frame Kafka must refuse and one it must read, so a broken oracle cannot pass for agreement."""
    from gateway_app.protocol import codec, message_specs

    metadata = message_specs.spec("request", 3, 12)
    body = codec.encode(metadata, {"topics": [{"name": "orders"}]})
    refused, read = oracle.parse([(3, 12, b"\xff\xff\xff\xff\xff"), (3, 12, body)])
    assert refused["ok"] is False and "varint" in refused["error"].lower()
    assert read["ok"] is True and read["end"] == len(body)
    assert differential.kafka_names(3, 12, read) == {("name", "orders")}


# --- KIP-951 node endpoints rewritten in place (protocol/endpoints_in_place.py), read by Kafka's client reader ---

BROKER_HOSTS = {2: "broker-2.kafka.example", 3: "broker-3.kafka.example"}
GATEWAY_HOSTS = {  # the gateway's address against the brokers': what rewrite_in_place must do to fit it
    Outcome.PADDED: "gw.example",  # shorter: the section padded
    Outcome.DROPPED: "gateway-node.kafka-gateway.example.internal",  # longer: the endpoints left out
    Outcome.REWRITTEN: "gateway1.kafka.example",  # same length: rewritten as they are
}
FIRST_WITH_ENDPOINTS = {PRODUCE: 10, FETCH: 16}  # KIP-951


def response_with_endpoints(api_key: int, version: int) -> bytes:
    """A Produce or Fetch response body (kio-encoded, as a broker sends it) naming BROKER_HOSTS as node endpoints."""
    message = fetch_like(api_key, version, records(300, 5), with_endpoints=False)
    endpoint = nested(load_response_schema(api_key, version), "node_endpoints")
    endpoints = tuple(sample(endpoint, node_id=node, host=host, port=9092, rack=f"rack-{node}")
                      for node, host in BROKER_HOSTS.items())
    return encode(replace(message, node_endpoints=endpoints))


def rewritten_in_place(api_key: int, version: int, gateway_host: str) -> tuple[bytes, bytes, Outcome, Context]:
    """(the broker's body, the body with its tag section rewritten in place as the splice path does, the outcome,
    the context that rewrote it)."""
    body = response_with_endpoints(api_key, version)
    start, end = tag_section_offsets(load_response_schema(api_key, version), memoryview(body))
    assert end == len(body), "the top-level tag section ends the body"
    ctx = Context()
    ctx.topology = StaticTopology(PLAN, gateway_host)
    section, outcome = rewrite_in_place(api_key, version, body[start:], ctx)
    return body, body[:start] + section, outcome, ctx


def versions_with_endpoints(oracle: differential.Oracle, api_key: int) -> list[int]:
    """The versions of the response with node endpoints that the gateway relays and the lab's Kafka defines."""
    ours = range(FIRST_WITH_ENDPOINTS[api_key], POLICIES[api_key].max_version + 1)
    return [version for version in ours if version in oracle.versions(api_key, unstable=False)]


@pytest.mark.parametrize("outcome", list(GATEWAY_HOSTS), ids=lambda outcome: outcome.value)
def test_kafka_reads_node_endpoints_rewritten_in_place(oracle: differential.Oracle, outcome: Outcome) -> None:
    """A Produce (v10+) or Fetch (v16+) response whose endpoints were rewritten in place, padded or dropped is read
    whole by Kafka's own client reader (Produce/FetchResponseData): every byte, the gateway's endpoints (none when
    dropped), the padding kept aside as one unknown tagged field, and all else as the broker sent it."""
    cases = [(api_key, version) for api_key in (PRODUCE, FETCH) for version in versions_with_endpoints(oracle, api_key)]
    assert {api_key for api_key, _ in cases} == {PRODUCE, FETCH}, "the lab's Kafka has KIP-951 responses"
    frames, expected = [], []
    for api_key, version in cases:
        original, relayed, done, ctx = rewritten_in_place(api_key, version, GATEWAY_HOSTS[outcome])
        assert done is outcome and len(relayed) == len(original)
        assert {node: ctx.learned[node].host for node in BROKER_HOSTS} == BROKER_HOSTS
        frames += [(api_key, version, original), (api_key, version, relayed)]
        gateway = [] if outcome is Outcome.DROPPED else [
            {"nodeId": node, "host": ctx.endpoint(node)[0], "port": ctx.endpoint(node)[1], "rack": f"rack-{node}"}
            for node in BROKER_HOSTS]
        expected.append((api_key, version, len(relayed), gateway))
    answers = oracle.read_responses(frames)
    for (api_key, version, size, gateway), broker, read in zip(expected, answers[0::2], answers[1::2]):
        case = f"api {api_key} v{version}: {read}"[:2000]
        assert broker["ok"] and broker["unknown_tags"] == [], case
        assert [e["host"] for e in broker["json"]["nodeEndpoints"]] == list(BROKER_HOSTS.values()), case
        assert read["ok"] is True, case
        assert read["end"] == size, case
        assert read["json"].get("nodeEndpoints", []) == gateway, case  # Kafka's JSON leaves an empty tag out
        padding = [tag for tag, _ in read["unknown_tags"]]
        assert padding == ([] if outcome is Outcome.REWRITTEN else [PADDING_TAGS[0]]), case
        others = {key: value for key, value in read["json"].items() if key != "nodeEndpoints"}
        assert others == {key: value for key, value in broker["json"].items() if key != "nodeEndpoints"}, case

"""The gateway's request reader against Kafka's own Java parser, for half a minute of fuzzed frames.

lab/differential.py builds valid requests of every version both sides define, mutates them where parsers
part ways, and has the lab's Kafka (its jars; no broker needed) and the gateway read each. The request
guard's rule: where Kafka reads a frame, the gateway refuses it or finds exactly Kafka's names. The long
run is `python -m lab.differential --frames 1000000` (results/parser-differential.json).
"""

from __future__ import annotations

import json
import os
import random
import shutil

import pytest

from lab import differential
from lab.kafka import ensure_jars

pytestmark = pytest.mark.lab

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
    run = differential.fuzz(oracle, frames=10**9, seed=seed, seconds=SECONDS, keep=False)

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

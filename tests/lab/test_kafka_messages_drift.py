"""The gateway knows every request and response version the lab's Kafka defines (message_specs.py): a Kafka
release that adds one fails here until `python -m lab.kafka_messages --kafka-version <it>` is run."""

from __future__ import annotations

import pytest

from gateway_app.protocol import message_specs
from lab.kafka import ensure_jars
from lab.kafka_messages import compact, read_jar

pytestmark = pytest.mark.lab


def test_every_version_the_labs_kafka_defines_is_known() -> None:
    jar = next((ensure_jars() / "libs").glob("kafka-clients-*.jar"))
    unknown = []
    for kind, messages in compact(read_jar(jar)).items():
        for key, raw in messages.items():
            if raw["valid"] is None:
                continue
            low, high = raw["valid"]
            known = message_specs.versions(int(key), kind)
            unknown += [f"{kind} {raw['name']} v{v}" for v in range(low, high + 1) if v not in known]
    assert not unknown, f"{jar.name} defines versions the gateway does not know: {unknown}"

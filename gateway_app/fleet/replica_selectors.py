"""Each backing broker's `replica.selector.class`, read with a node's own settings: what the fleet doctor's probe
runs on a gateway host (in the node's venv, as root, with the env file) when client networks are configured.

Rack-aware reads need the brokers' RackAwareReplicaSelector: without it a broker never names a preferred read
replica, and the rack the gateway gives a consumer's Fetch changes nothing. The brokers are asked with
DescribeConfigs through confluent-kafka's AdminClient and the node's KAFKA_* settings (TLS, SASL), so the
credentials never leave the host; only the broker ids and the class names are printed, as one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from confluent_kafka.admin import AdminClient, ConfigResource

from ..config import ConfigError, load_settings

RACK_AWARE_SELECTOR = "org.apache.kafka.common.replica.RackAwareReplicaSelector"
SELECTOR_CONFIG = "replica.selector.class"
TIMEOUT_S = 10.0


def read_selectors(kafka_properties: dict[str, str], timeout_s: float = TIMEOUT_S) -> dict[str, str | None]:
    """Broker id -> its replica.selector.class (None when the broker does not report the config)."""
    admin = AdminClient({**kafka_properties, "client.id": "kafka-gateway-doctor"})
    cluster = admin.describe_cluster(request_timeout=timeout_s).result(timeout=timeout_s + 1)
    resources = [ConfigResource(ConfigResource.Type.BROKER, str(node.id)) for node in cluster.nodes]
    selectors: dict[str, str | None] = {}
    for resource in resources:  # librdkafka takes one BROKER resource per DescribeConfigs call
        (future,) = admin.describe_configs([resource], request_timeout=timeout_s).values()
        entry = future.result(timeout=timeout_s + 1).get(SELECTOR_CONFIG)
        selectors[resource.name] = entry.value if entry is not None else None
    return dict(sorted(selectors.items(), key=lambda item: int(item[0])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="the node's env file")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S)
    args = parser.parse_args(argv)
    try:
        settings = load_settings({}, args.config)
        print(json.dumps({"brokers": read_selectors(settings.kafka_properties, args.timeout)}))
    except ConfigError as error:
        print(json.dumps({"error": f"settings: {error}"}))
    except Exception as error:  # whatever Kafka answered: the doctor reports it, the probe carries on
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Hand the KAFKA_* properties to librdkafka before the node starts (`kafka-gateway --check-config` too), so a
misspelt name or a bad value is refused with the setting's name, and no secret value is echoed."""

from __future__ import annotations

import re

from .config import KAFKA_PREFIX, ConfigError, Settings, is_secret


def check_kafka_properties(settings: Settings) -> None:
    """Hand the KAFKA_* properties to librdkafka, which refuses a misspelt name or a bad value (and loads the
    ssl.* files), without connecting: the check builds a producer that has no bootstrap servers to reach."""
    from confluent_kafka import KafkaException, Producer

    props = {k: v for k, v in settings.kafka_properties.items() if k != "bootstrap.servers"}
    secrets = [v for k, v in props.items() if v and is_secret(KAFKA_PREFIX + k.upper().replace(".", "_"))]
    try:
        producer = Producer({**props, "log_level": 0})
    except (KafkaException, ValueError, TypeError) as error:
        message = str(error.args[0].str() if isinstance(error, KafkaException) else error)
        for secret in secrets:
            message = message.replace(secret, "***")
        # the property librdkafka names: quoted in its message, or one of ours that it mentions
        quoted = re.search(r'property:? "([a-z0-9._]+)"', message)
        prop = quoted.group(1) if quoted else next((k for k in sorted(props, key=len, reverse=True) if k in message), None)
        setting = KAFKA_PREFIX + prop.upper().replace(".", "_") if prop else "KAFKA_*"
        raise ConfigError(setting, f"refused by librdkafka: {message}") from None
    producer.flush(0)
    del producer

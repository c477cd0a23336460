"""Which Apache Kafka the lab runs: the supported releases, the default, and the one place that knows how they differ.

The lab runs the newest supported release unless told otherwise, by ``python -m lab up --kafka-version`` or by
``KGW_KAFKA_VERSION`` (what tests and the matrix set). Each release's jars are cached apart
(``CACHE_DIR/kafka-<version>``), so switching back and forth resolves each once.
"""

from __future__ import annotations

import os
import re

DEFAULT_KAFKA_VERSION = "4.4.0"
ENV_VAR = "KGW_KAFKA_VERSION"
# (major, minor) -> the patch releases accepted, None for any. 3.9 is the last 3.x and runs KRaft only here (the lab
# has no ZooKeeper); 4.1 the release the lab ran before; 4.4.0 the newest on Maven Central.
SUPPORTED: dict[tuple[int, int], frozenset[int] | None] = {(3, 9): None, (4, 1): None, (4, 4): frozenset({0})}
SUPPORTED_TEXT = "3.9.x (KRaft), 4.1.x, 4.4.0"
# The newest patch of each supported line on Maven Central: what the matrix runs.
MATRIX_VERSIONS = ("3.9.2", "4.1.2", "4.4.0")
_VERSION = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})")


def validate(text: str) -> str:
    """The version if the lab supports it; ValueError saying what it supports otherwise."""
    match = _VERSION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"Kafka version {text!r} is not MAJOR.MINOR.PATCH; the lab supports {SUPPORTED_TEXT}")
    major, minor, patch = (int(part) for part in match.groups())
    if (major, minor) not in SUPPORTED:
        raise ValueError(f"Kafka {text} is not supported by the lab; it supports {SUPPORTED_TEXT}")
    patches = SUPPORTED[(major, minor)]
    if patches is not None and patch not in patches:
        raise ValueError(f"Kafka {text} is not supported by the lab; it supports {SUPPORTED_TEXT}")
    return f"{major}.{minor}.{patch}"


def selected(explicit: str | None = None) -> str:
    """The version asked for: explicit (a command-line option) over $KGW_KAFKA_VERSION over the default."""
    return validate(explicit or os.environ.get(ENV_VAR) or DEFAULT_KAFKA_VERSION)


def at_least(version: str, major: int, minor: int) -> bool:
    """Does this release have what major.minor brought (tests that check a broker's own answers ask)?"""
    found = tuple(int(part) for part in validate(version).split(".")[:2])
    return found >= (major, minor)


def console_producer_class(version: str) -> str:
    """Kafka's console producer: Scala (kafka.tools) up to 3.9, rewritten in Java (org.apache.kafka.tools) in 4.0.
    The other tools the tests run have one class name on every supported release."""
    return "org.apache.kafka.tools.ConsoleProducer" if at_least(version, 4, 0) else "kafka.tools.ConsoleProducer"

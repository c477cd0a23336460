"""Kafka gateway node: a stateless Kafka-protocol proxy that joins a cluster of its peers through Kafka."""

from importlib.metadata import PackageNotFoundError, version

try:  # the installed distribution's version: what /cluster and gateway_build_info report during an upgrade
    __version__ = version("kafka-gateway")
except PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "unknown"

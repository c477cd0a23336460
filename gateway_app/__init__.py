"""Kafka gateway node: a stateless Kafka-protocol proxy that joins a cluster of its peers through Kafka."""

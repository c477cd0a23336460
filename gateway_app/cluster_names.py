"""The names a gateway cluster takes in the backing Kafka, built from its cluster id alone.

Its membership uses them (cluster/membership.py), and the data plane's guard refuses clients that name
them (protocol/reserved.py): a leaf module, so that both know the names without knowing each other.
"""

from __future__ import annotations

import re


def group_name(cluster_id: str) -> str:
    """The consumer group whose live members are the cluster's live nodes."""
    return f"_gateway_{cluster_id}"


def topic_name(cluster_id: str) -> str:
    """The compacted topic of member records. Topic names allow [a-zA-Z0-9._-]; any other character of
    the cluster id becomes '_'."""
    return f"_gateway_{re.sub(r'[^a-zA-Z0-9._-]', '_', cluster_id)}_members"

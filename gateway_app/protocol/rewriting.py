"""Dispatch from API key to the rewriter of its response body."""

from __future__ import annotations

from functools import partial
from typing import Callable

from .addresses import rewrite_describe_cluster, rewrite_find_coordinator, rewrite_metadata
from .api_versions import rewrite_api_versions
from .api_keys import (
    API_VERSIONS, CREATE_TOPICS, DESCRIBE_CLUSTER, DESCRIBE_CONFIGS, DESCRIBE_LOG_DIRS, DESCRIBE_TOPIC_PARTITIONS, FETCH,
    FIND_COORDINATOR, LIST_CONFIG_RESOURCES, LIST_GROUPS, METADATA, PRODUCE, SHARE_ACKNOWLEDGE, SHARE_FETCH,
)
from .context import Chunks, RewriteContext
from .hiding import (
    hide_metadata_topics, rewrite_create_topics, rewrite_describe_configs, rewrite_describe_log_dirs,
    rewrite_describe_topic_partitions, rewrite_list_config_resources, rewrite_list_groups,
)
from .node_endpoints import rewrite_node_endpoints
from .policy import POLICIES, Handling

Rewriter = Callable[[memoryview, int, RewriteContext], "bytes | Chunks | None"]


def _metadata(body: memoryview, api_version: int, ctx: RewriteContext) -> Chunks:
    return hide_metadata_topics(body, rewrite_metadata(body, api_version, ctx), api_version, ctx)


REWRITERS: dict[int, Rewriter] = {
    PRODUCE: partial(rewrite_node_endpoints, PRODUCE),
    FETCH: partial(rewrite_node_endpoints, FETCH),
    METADATA: _metadata,
    FIND_COORDINATOR: rewrite_find_coordinator,
    LIST_GROUPS: rewrite_list_groups,
    API_VERSIONS: rewrite_api_versions,
    CREATE_TOPICS: rewrite_create_topics,
    DESCRIBE_CONFIGS: rewrite_describe_configs,
    DESCRIBE_LOG_DIRS: rewrite_describe_log_dirs,
    DESCRIBE_CLUSTER: rewrite_describe_cluster,
    LIST_CONFIG_RESOURCES: rewrite_list_config_resources,
    DESCRIBE_TOPIC_PARTITIONS: rewrite_describe_topic_partitions,
    SHARE_FETCH: partial(rewrite_node_endpoints, SHARE_FETCH),
    SHARE_ACKNOWLEDGE: partial(rewrite_node_endpoints, SHARE_ACKNOWLEDGE),
}

# Every API the policy marks REWRITE has a rewriter, and nothing else does.
assert set(REWRITERS) == {k for k, p in POLICIES.items() if p.handling is Handling.REWRITE}

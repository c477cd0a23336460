"""Dispatch from API key to the rewriter of its response body."""

from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

from .addresses import rewrite_describe_cluster, rewrite_find_coordinator, rewrite_metadata
from .api_versions import rewrite_api_versions
from .context import RewriteContext
from .hiding import hide_metadata_topics, rewrite_describe_configs, rewrite_describe_topic_partitions, rewrite_list_groups
from .node_endpoints import rewrite_node_endpoints
from .policy import POLICIES, Handling

Chunks = Sequence[bytes | memoryview]
Rewriter = Callable[[memoryview, int, RewriteContext], "bytes | Chunks | None"]

def _metadata(body: memoryview, api_version: int, ctx: RewriteContext) -> Chunks:
    return hide_metadata_topics(body, rewrite_metadata(body, api_version, ctx), api_version, ctx)


REWRITERS: dict[int, Rewriter] = {
    0: partial(rewrite_node_endpoints, 0),
    1: partial(rewrite_node_endpoints, 1),
    3: _metadata,
    10: rewrite_find_coordinator,
    16: rewrite_list_groups,
    18: rewrite_api_versions,
    32: rewrite_describe_configs,
    60: rewrite_describe_cluster,
    75: rewrite_describe_topic_partitions,
    78: partial(rewrite_node_endpoints, 78),
    79: partial(rewrite_node_endpoints, 79),
}

# Every API the policy marks REWRITE has a rewriter, and nothing else does.
assert set(REWRITERS) == {k for k, p in POLICIES.items() if p.handling is Handling.REWRITE}

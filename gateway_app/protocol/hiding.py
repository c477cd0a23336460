"""Responses that could show a client what is not the client's: reserved topics and groups, and the
brokers' own endpoints in their configuration.

- Metadata, DescribeTopicPartitions, ListGroups, DescribeLogDirs and ListConfigResources drop the
  gateway cluster's own topics and groups (reserved.py), so listing topics or groups through the gateway
  never shows them. A DescribeTopicPartitions page whose cursor names a reserved topic gets a cursor
  just past the reserved range instead (ReservedNames.first_name_after), so paging goes on and loses no
  other topic. CreateTopics error messages that name a reserved topic (a `.`/`_` collision) name it
  no more (ReservedNames.scrub). A
  Metadata request that asks for a reserved topic by name gets it back as TOPIC_AUTHORIZATION_FAILED
  (with no partitions), the answer of a broker that denies it, so a producer fails at once. The
  topic ids of the reserved topics dropped are handed to the context, which is how the request
  checker knows them (Fetch v13+ and Produce v13 name topics by id only).
- DescribeConfigs never carries a broker or controller endpoint: the values (and synonyms) of the
  configs in REDACTED_CONFIGS are removed and the entry marked sensitive, which is how a broker itself
  answers for a password.

Each rewriter first looks for the bytes it could act on (a reserved-name prefix, a redacted config
name) with one C-level search of the response and returns None when there are none, so ordinary
responses cost a `find` and are relayed as they came; only responses that need it are decoded with kio.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Sequence

from kio.schema.errors import ErrorCode

from .kio_adapter import decode_response, encode
from .context import RewriteContext
from .reserved import RESERVED_MARK

from .api_keys import (
    CREATE_TOPICS, DESCRIBE_CONFIGS, DESCRIBE_LOG_DIRS, DESCRIBE_TOPIC_PARTITIONS, LIST_CONFIG_RESOURCES, LIST_GROUPS,
    METADATA,
)

# Broker configs whose values are listener or controller endpoints (host:port lists).
REDACTED_CONFIGS = frozenset({
    "listeners",
    "advertised.listeners",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
})
_REDACTED_MARKERS = (b"listeners", b"controller.quorum.")
ZERO_UUID = uuid.UUID(int=0)


def _mentions(body: bytes | bytearray | memoryview, *needles: bytes) -> bool:
    data = body.obj if isinstance(body, memoryview) else body  # the whole frame: a superset is fine
    return any(data.find(needle) >= 0 for needle in needles)  # type: ignore[union-attr]


def hide_reserved_topics(body: bytes | memoryview, api_key: int, api_version: int, ctx: RewriteContext) -> bytes | None:
    """Metadata / DescribeTopicPartitions body without reserved topics (and no cursor naming one); None
    if it shows none."""
    if not _mentions(body, RESERVED_MARK):
        return None
    response = decode_response(api_key, api_version, memoryview(body))
    kept, hidden = [], 0
    for topic in response.topics:
        if not ctx.reserved.matches_text(topic.name):
            kept.append(topic)
            continue
        hidden += 1
        if getattr(topic, "topic_id", None) is not None:
            ctx.reserved.learn_topic_id(topic.topic_id.bytes)
        if ctx.names_reserved:  # asked for by name: denied, as a broker's ACLs would
            kept.append(_denied(topic))
    cursor = getattr(response, "next_cursor", None)
    moved = cursor is not None and ctx.reserved.matches_text(cursor.topic_name)
    if not hidden and not moved:
        return None
    if moved:  # a broker lists topics from the cursor's name on: past the reserved range, from partition 0
        response = replace(response, next_cursor=replace(
            cursor, topic_name=ctx.reserved.first_name_after(cursor.topic_name), partition_index=0))
    ctx.hidden(hidden + moved)
    return encode(replace(response, topics=tuple(kept)))


def _denied(topic):
    """A topic entry as a broker answers for a topic the client may not describe."""
    fields = {"error_code": ErrorCode.topic_authorization_failed, "partitions": ()}
    if hasattr(topic, "topic_id"):
        fields["topic_id"] = ZERO_UUID
    return replace(topic, **fields)


def hide_metadata_topics(body: memoryview, chunks: Sequence[bytes | memoryview], api_version: int,
                         ctx: RewriteContext) -> Sequence[bytes | memoryview]:
    """Metadata after its broker list was rewritten (`chunks` of `body`): the same, without reserved topics."""
    if not _mentions(body, RESERVED_MARK):
        return chunks
    hidden = hide_reserved_topics(b"".join(chunks), METADATA, api_version, ctx)
    return chunks if hidden is None else (hidden,)


def rewrite_describe_topic_partitions(body: memoryview, api_version: int, ctx: RewriteContext) -> bytes | None:
    return hide_reserved_topics(body, DESCRIBE_TOPIC_PARTITIONS, api_version, ctx)


def _drop_reserved(api_key: int, api_version: int, body: memoryview, ctx: RewriteContext, entries: str,
                   name: str) -> bytes | None:
    """The response without the entries (in its list `entries`) whose field `name` is reserved; None if none is."""
    if not _mentions(body, RESERVED_MARK):
        return None
    response = decode_response(api_key, api_version, body)
    listed = getattr(response, entries)
    kept = tuple(entry for entry in listed if not ctx.reserved.matches_text(getattr(entry, name)))
    if len(kept) == len(listed):
        return None
    ctx.hidden(len(listed) - len(kept))
    return encode(replace(response, **{entries: kept}))


def rewrite_list_groups(body: memoryview, api_version: int, ctx: RewriteContext) -> bytes | None:
    return _drop_reserved(LIST_GROUPS, api_version, body, ctx, "groups", "group_id")


def rewrite_describe_log_dirs(body: memoryview, api_version: int, ctx: RewriteContext) -> bytes | None:
    """DescribeLogDirs (asked for all topics) without the reserved topics in any log dir."""
    if not _mentions(body, RESERVED_MARK):
        return None
    response = decode_response(DESCRIBE_LOG_DIRS, api_version, body)
    results, hidden = [], 0
    for result in response.results:
        kept = tuple(topic for topic in result.topics if not ctx.reserved.matches_text(topic.name))
        hidden += len(result.topics) - len(kept)
        results.append(replace(result, topics=kept))
    if not hidden:
        return None
    ctx.hidden(hidden)
    return encode(replace(response, results=tuple(results)))


def rewrite_list_config_resources(body: memoryview, api_version: int, ctx: RewriteContext) -> bytes | None:
    """ListConfigResources (v1 lists topics and groups too) without reserved topics and groups."""
    return _drop_reserved(LIST_CONFIG_RESOURCES, api_version, body, ctx, "config_resources", "resource_name")


def rewrite_create_topics(body: memoryview, api_version: int, ctx: RewriteContext) -> bytes | None:
    """CreateTopics whose error messages name no reserved topic: a broker refusing `.gateway.<id>.x`
    says which existing topic it collides with."""
    if not _mentions(body, RESERVED_MARK):
        return None
    response = decode_response(CREATE_TOPICS, api_version, body)
    topics, scrubbed = [], 0
    for topic in response.topics:
        message, count = ctx.reserved.scrub(topic.error_message)
        scrubbed += count
        topics.append(replace(topic, error_message=message) if count else topic)
    if not scrubbed:
        return None
    ctx.hidden(scrubbed)
    return encode(replace(response, topics=tuple(topics)))


def _redact(config):
    synonyms = getattr(config, "synonyms", None)
    if synonyms:
        config = replace(config, synonyms=tuple(replace(s, value=None) for s in synonyms))
    return replace(config, value=None, is_sensitive=True)


def rewrite_describe_configs(body: memoryview, api_version: int, ctx: RewriteContext) -> bytes | None:
    if not _mentions(body, *_REDACTED_MARKERS):
        return None
    response = decode_response(DESCRIBE_CONFIGS, api_version, body)
    results, redacted = [], 0
    for result in response.results:
        configs = []
        for config in result.configs:
            if config.name in REDACTED_CONFIGS and (config.value is not None or getattr(config, "synonyms", ())):
                config = _redact(config)
                redacted += 1
            configs.append(config)
        results.append(replace(result, configs=tuple(configs)))
    if not redacted:
        return None
    ctx.redacted(redacted)
    return encode(replace(response, results=tuple(results)))

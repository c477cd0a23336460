"""Rewriters for responses that list brokers by host/port: Metadata, FindCoordinator, DescribeCluster.

Metadata and DescribeCluster have only their broker list rebuilt (broker_lists.py: Metadata is what
clients ask most, and a cluster's topics can make it large); FindCoordinator answers are small and
are decoded with kio, rewritten and re-encoded. A broker whose id has no gateway port is left out of
broker lists (clients then see the partition leader as unavailable and retry) and a coordinator
without a port becomes COORDINATOR_NOT_AVAILABLE: both are logged and counted by the context, never
mis-routed.

FindCoordinator keeps the broker's own id: aiokafka looks the coordinator id up in Metadata and
Kafka's Java AdminClient sends group requests to the Metadata node with that id, so a synthetic id
(one per gateway host, to make librdkafka reconnect when the coordinator's node changes) would break
both. librdkafka is freed instead by the topology refusing single-key lookups (v0-3) for a while
after the node serving that coordinator left (cluster/topology.py); batched lookups (v4+) are never
refused.
"""

from __future__ import annotations

from dataclasses import fields, replace
from functools import cache
from typing import Any

from kio.schema.errors import ErrorCode
from kio.serial.readers import read_int8

from .api_keys import DESCRIBE_CLUSTER, FIND_COORDINATOR, METADATA
from .broker_lists import broker_list_layout, rewrite_broker_list
from .kio_adapter import load_response_schema, decode_response, encode
from .context import RewriteContext
from .schema_walk import Skip, skip_to_field

BROKER_ENDPOINTS = 1  # DescribeCluster endpoint_type for brokers (2 = controllers)


def rewrite_metadata(body: memoryview, api_version: int, ctx: RewriteContext) -> tuple[memoryview, bytes, memoryview]:
    return rewrite_broker_list(broker_list_layout(METADATA, api_version, "node_id"), body, ctx, report=True)


@cache
def _to_endpoint_type(api_version: int) -> Skip | None:
    """Skip to DescribeCluster's endpoint_type (v1+), None before it existed."""
    schema = load_response_schema(DESCRIBE_CLUSTER, api_version)
    if any(f.name == "endpoint_type" for f in fields(schema)):
        return skip_to_field(schema, "endpoint_type")
    return None


def rewrite_describe_cluster(body: memoryview, api_version: int,
                             ctx: RewriteContext) -> tuple[memoryview, bytes, memoryview]:
    # v1+ can list controllers instead (endpoint_type 2): rewritten alike, but not reported as brokers.
    to_endpoint_type = _to_endpoint_type(api_version)
    report = to_endpoint_type is None or read_int8(body, to_endpoint_type(body, 0))[0] == BROKER_ENDPOINTS
    return rewrite_broker_list(broker_list_layout(DESCRIBE_CLUSTER, api_version, "broker_id"), body, ctx, report)


def _not_available(coordinator: Any, message: str) -> Any:
    extra = {"error_message": message} if hasattr(coordinator, "error_message") else {}
    return replace(
        coordinator,
        error_code=ErrorCode.coordinator_not_available,
        node_id=type(coordinator.node_id)(-1),
        host="",
        port=type(coordinator.port)(-1),
        **extra,
    )


def _rewrite_coordinator(coordinator: Any, ctx: RewriteContext, single: bool) -> Any:
    if coordinator.node_id < 0:  # "no coordinator" (an error): nothing to rewrite
        return coordinator
    endpoint = ctx.endpoint(int(coordinator.node_id))
    if endpoint is None:
        return _not_available(coordinator, "coordinator broker outside the gateway's port range")
    if single and not ctx.coordinator_available(int(coordinator.node_id)):
        return _not_available(coordinator, "the gateway node serving this coordinator changed; look it up again")
    return replace(coordinator, host=endpoint[0], port=type(coordinator.port)(endpoint[1]))


def rewrite_find_coordinator(body: memoryview, api_version: int, ctx: RewriteContext) -> bytes:
    response = decode_response(FIND_COORDINATOR, api_version, body)
    if api_version < 4:
        return encode(_rewrite_coordinator(response, ctx, single=True))
    coordinators = tuple(_rewrite_coordinator(c, ctx, single=False) for c in response.coordinators)
    return encode(replace(response, coordinators=coordinators))

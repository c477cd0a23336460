"""Why the gateway closed or refused a connection: the `reason` label of gateway_malformed_frames,
gateway_upstream_errors and gateway_connections_refused, and the first word of the log line.

A StrEnum, so a reason is its label string wherever it goes (metrics, logs, comparisons); the
strings are part of the metrics' contract (dashboards, docs/reference/metrics.md) and do not change.
"""

from enum import StrEnum


class CloseReason(StrEnum):
    # a client's bytes (gateway_malformed_frames)
    NEGATIVE_SIZE = "negative_size"
    OVERSIZED = "oversized"
    SHORT_HEADER = "short_header"
    BAD_HEADER = "bad_header"
    BAD_REQUEST = "bad_request"
    API_NOT_ALLOWED = "api_not_allowed"
    OVERSIZED_ASSEMBLY = "oversized_assembly"
    NODE_ASSEMBLY_BUDGET = "node_assembly_budget"
    UNANSWERABLE = "unanswerable"
    PROXY_HEADER = "proxy_header"
    # the broker side (gateway_upstream_errors)
    CONNECT_FAILED = "connect_failed"
    UNKNOWN_BROKER = "unknown_broker"
    NO_BROKER_REACHABLE = "no_broker_reachable"
    BROKER_CLOSED = "broker_closed"
    UNEXPECTED_RESPONSE = "unexpected_response"
    CORRELATION_MISMATCH = "correlation_mismatch"
    OVERSIZED_REWRITE = "oversized_rewrite"
    UNDECODABLE_RESPONSE = "undecodable_response"
    # limits and deadlines (gateway_connections_refused)
    NODE_LIMIT = "node_limit"
    SOURCE_LIMIT = "source_limit"
    FIRST_REQUEST_TIMEOUT = "first_request_timeout"
    FRAME_TIMEOUT = "frame_timeout"
    IDLE_TIMEOUT = "idle_timeout"
    CLIENT_NOT_READING = "client_not_reading"
    PROXY_UNTRUSTED = "proxy_untrusted"  # a PROXY header naming a client, from outside GATEWAY_PROXY_TRUSTED_NETWORKS

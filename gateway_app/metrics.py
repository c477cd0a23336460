"""Prometheus metrics of one gateway node, in a registry of its own.

Label children are cached per API key / port because the hot path touches them for every frame.
"""

from __future__ import annotations

from functools import lru_cache

from kio.schema.index import api_key_map
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def api_name(api_key: int) -> str:
    return api_key_map.get(api_key, f"unknown_{api_key}")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.client_connections_active = Gauge(
            "gateway_client_connections_active", "Open client connections", ["port", "broker"], registry=r)
        self.client_connections_total = Counter(
            "gateway_client_connections", "Accepted client connections", ["port", "broker"], registry=r)
        self.upstream_connections_active = Gauge(
            "gateway_upstream_connections_active", "Open connections to brokers", ["broker"], registry=r)
        self.requests_total = Counter(
            "gateway_requests", "Requests relayed, by API", ["api"], registry=r)
        self.bytes_total = Counter(
            "gateway_bytes", "Bytes relayed, by API and direction", ["api", "direction"], registry=r)
        self.request_latency = Histogram(
            "gateway_request_latency_seconds", "Time from forwarding a request to its response arriving",
            ["api"], buckets=LATENCY_BUCKETS, registry=r)
        self.rewritten_responses = Counter(
            "gateway_rewritten_responses", "Responses whose broker addresses were rewritten", ["api"], registry=r)
        self.upstream_errors = Counter(
            "gateway_upstream_errors", "Broker connection failures and bad broker responses", ["reason"], registry=r)
        self.malformed_frames = Counter(
            "gateway_malformed_frames", "Client frames that closed their connection", ["reason"], registry=r)
        self.broker_out_of_range = Counter(
            "gateway_broker_id_out_of_range", "Broker ids seen outside the gateway port range", ["broker"], registry=r)
        self.known_brokers = Gauge("gateway_known_brokers", "Brokers the node knows an address for", registry=r)

    @lru_cache(maxsize=None)
    def api(self, api_key: int) -> "ApiMetrics":
        return ApiMetrics(self, api_name(api_key))

    @lru_cache(maxsize=None)
    def listener(self, port: int, broker: int | None) -> tuple[Gauge, Counter]:
        labels = (str(port), "bootstrap" if broker is None else str(broker))
        return self.client_connections_active.labels(*labels), self.client_connections_total.labels(*labels)


class ApiMetrics:
    """Pre-resolved label children for one API."""

    def __init__(self, metrics: Metrics, name: str) -> None:
        self.requests = metrics.requests_total.labels(name)
        self.request_bytes = metrics.bytes_total.labels(name, "request")
        self.response_bytes = metrics.bytes_total.labels(name, "response")
        self.latency = metrics.request_latency.labels(name)
        self.rewritten = metrics.rewritten_responses.labels(name)

"""Prometheus metrics of one gateway node, in a registry of its own.

The per-request figures (requests, bytes, latency, rewrites by API) are plain integers and a bucket
list on an `ApiMetrics` per API key, turned into Prometheus samples only when /metrics is scraped:
a labelled prometheus_client child costs a lock and a method call per `.inc()`, four of them per
request, which was a measurable share of the gateway's CPU per relayed byte.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from functools import lru_cache

from kio.schema.index import api_key_map
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from . import __version__

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BUCKET_LABELS = tuple(floatToGoString(b) for b in LATENCY_BUCKETS) + ("+Inf",)


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
        self.apis: dict[int, ApiMetrics] = {}
        r.register(_ApiCollector(self.apis))
        self.racks = RackTallies()
        r.register(self.racks)
        self.metadata_answers_reused = Tally()
        r.register(_TallyCollector(
            "gateway_metadata_answers_reused", "Metadata responses written from the rewrite of an identical earlier "
            "broker answer to the same request (protocol/metadata_answers.py) instead of being rewritten again",
            self.metadata_answers_reused))
        self.upstream_errors = Counter(
            "gateway_upstream_errors", "Broker connection failures and bad broker responses", ["reason"], registry=r)
        self.malformed_frames = Counter(
            "gateway_malformed_frames", "Client frames that closed their connection", ["reason"], registry=r)
        self.broker_out_of_range = Counter(
            "gateway_broker_id_out_of_range", "Broker ids seen outside the gateway port range", ["broker"], registry=r)
        self.known_brokers = Gauge("gateway_known_brokers", "Brokers the node knows an address for", registry=r)
        self.connections_refused = Counter(
            "gateway_connections_refused", "Client connections closed by a limit or deadline (node_limit, source_limit, "
            "first_request_timeout, idle_timeout, client_not_reading, frame_timeout) or at accept for a PROXY header "
            "from outside GATEWAY_PROXY_TRUSTED_NETWORKS (proxy_untrusted)", ["reason"], registry=r)
        self.in_flight_paused = Counter(
            "gateway_in_flight_paused", "Times a client's reading was paused at GATEWAY_MAX_IN_FLIGHT", registry=r)
        self.reserved_refused = Counter(
            "gateway_reserved_requests_refused", "Requests naming the gateway cluster's own topic or group, refused "
            "with an authorization error", ["api", "kind"], registry=r)
        self.reserved_hidden = Counter(
            "gateway_reserved_entries_hidden", "Reserved topics and groups left out of Metadata, "
            "DescribeTopicPartitions and ListGroups responses", registry=r)
        self.bootstrap_nodes_cleared = Counter(
            "gateway_bootstrap_nodes_cleared", "ApiVersions requests (v5+, KIP-1242) on the bootstrap port that named "
            "a cluster and node, relayed naming neither: the bootstrap port stands for no broker", registry=r)
        self.configs_redacted = Counter(
            "gateway_config_values_redacted", "Broker endpoint config values removed from DescribeConfigs responses",
            registry=r)
        self.http_refused = Counter(
            "gateway_http_refused", "HTTP port: requests and connections refused, and /cluster answers without the "
            "backing brokers' addresses (brokers_withheld), by reason", ["reason"], registry=r)
        self.http_admin_views = Counter(
            "gateway_http_admin_views", "/cluster answers with the backing brokers' addresses, by how the operator "
            "was recognised (token, network)", ["via"], registry=r)
        self.tls_handshake_failures = Counter(
            "gateway_tls_handshake_failures", "Client TLS handshakes that failed, by reason", ["reason"], registry=r)
        self.spliced_bytes = Counter(
            "gateway_spliced_bytes", "Fetch response bytes moved from broker to client through a pipe (os.splice, "
            "GATEWAY_SPLICE), never read into the gateway's memory", registry=r)
        self.spliced_produce_bytes = Counter(
            "gateway_spliced_produce_bytes", "Produce request bytes (records) moved from client to broker through a "
            "pipe (os.splice, GATEWAY_SPLICE), never read into the gateway's memory", registry=r)
        self.endpoints_in_place = Counter(
            "gateway_fetch_endpoints_in_place", "Spliced Fetch responses whose KIP-951 node endpoints were rewritten "
            "in a tag section of the same size: rewritten (same size), padded (shorter, padding added), dropped "
            "(would not fit: left out, the client refreshes its metadata)", ["outcome"], registry=r)
        self.splice_pipes_in_use = Gauge(
            "gateway_splice_pipes_in_use", "Pipes (os.splice, GATEWAY_SPLICE) holding a frame under way: one per frame "
            "moving at once, taken from and given back to the node's pool", registry=r)
        self.splice_pipes_undersized = Tally()
        r.register(_TallyCollector(
            "gateway_splice_pipes_undersized", "Splice pipes the kernel refused their 1 MiB size "
            "(fs.pipe-user-pages-soft spent by the node's user, or fs.pipe-max-size): those frames move in smaller "
            "pieces, at more system calls a byte", self.splice_pipes_undersized))
        self.build_info = Gauge("gateway_build_info", "Always 1; the version label is the running gateway's",
                                ["version"], registry=r)
        self.build_info.labels(__version__).set(1)
        self.tls_reloads = Counter(
            "gateway_tls_reloads", "Reloads of the client-facing certificate and key on SIGHUP (ok, or failed and kept the old)",
            ["result"], registry=r)
        for result in ("ok", "failed"):
            self.tls_reloads.labels(result)

    def api(self, api_key: int) -> "ApiMetrics":
        api = self.apis.get(api_key)
        if api is None:
            api = self.apis[api_key] = ApiMetrics(api_name(api_key))
        return api

    @lru_cache(maxsize=None)
    def listener(self, port: int, broker: int | None) -> tuple[Gauge, Counter]:
        labels = (str(port), "bootstrap" if broker is None else str(broker))
        return self.client_connections_active.labels(*labels), self.client_connections_total.labels(*labels)


NO_RACK = "none"  # the rack label of a client or broker whose rack is not known


class Tally:
    """One counter bumped in place on the hot path (a connection holds its own reference)."""

    __slots__ = ("value", "created")

    def __init__(self) -> None:
        self.value = 0
        self.created = time.time()


def _tally(tallies: dict, key) -> Tally:
    """The tally of a key, made at its first use (connections keep theirs: a lookup per connection, not per byte)."""
    tally = tallies.get(key)
    if tally is None:
        tally = tallies[key] = Tally()
    return tally


class _TallyCollector:
    """One unlabelled counter kept as a Tally."""

    def __init__(self, name: str, documentation: str, tally: Tally) -> None:
        self._name, self._documentation, self._tally = name, documentation, tally

    def describe(self):
        return [CounterMetricFamily(self._name, self._documentation)]

    def collect(self):
        family = CounterMetricFamily(self._name, self._documentation)
        family.add_metric([], self._tally.value, created=self._tally.created)
        return [family]


class RackTallies:
    """Rack-aware reads (client_networks.py, protocol/fetch_rack.py): Fetch requests given the client's rack, and
    the Fetch response bytes relayed to consumers by (client rack, broker rack): the cross-rack share of
    consumer traffic is the bytes whose two racks differ."""

    def __init__(self) -> None:
        self.assigned: dict[str, Tally] = {}
        self.withheld: dict[str, Tally] = {}
        self.fetch_bytes: dict[tuple[str, str], Tally] = {}

    def rack_assigned(self, rack: str) -> Tally:
        return _tally(self.assigned, rack)

    def rack_withheld(self, rack: str) -> Tally:
        return _tally(self.withheld, rack)

    def fetch_response_bytes(self, client_rack: str | None, broker_rack: str | None) -> Tally:
        return _tally(self.fetch_bytes, (client_rack or NO_RACK, broker_rack or NO_RACK))

    def describe(self):
        return self._families({}, {}, {})

    def collect(self):
        return self._families(dict(self.assigned), dict(self.withheld), dict(self.fetch_bytes))

    @staticmethod
    def _families(assigned: dict[str, Tally], withheld: dict[str, Tally], fetch_bytes: dict[tuple[str, str], Tally]):
        assigned_family = CounterMetricFamily(
            "gateway_fetch_rack_assigned", "Fetch requests (v11+) that named no rack_id, relayed with the rack of "
            "the client's network (GATEWAY_CLIENT_RACK_NETWORKS)", labels=["rack"])
        withheld_family = CounterMetricFamily(
            "gateway_fetch_rack_withheld", "ApiVersions requests from a client in a rack's network whose software is "
            "not known to follow a preferred read replica (GATEWAY_CLIENT_RACK_SOFTWARE): its connection's Fetch "
            "requests are relayed without the rack", labels=["rack"])
        bytes_family = CounterMetricFamily(
            "gateway_fetch_response_bytes", "Fetch response bytes relayed to consumers, by the client's rack (from "
            "GATEWAY_CLIENT_RACK_NETWORKS; 'none' when it has none) and the rack of the broker its port stands for",
            labels=["client_rack", "broker_rack"])
        for rack, tally in sorted(assigned.items()):
            assigned_family.add_metric([rack], tally.value, created=tally.created)
        for rack, tally in sorted(withheld.items()):
            withheld_family.add_metric([rack], tally.value, created=tally.created)
        for (client_rack, broker_rack), tally in sorted(fetch_bytes.items()):
            bytes_family.add_metric([client_rack, broker_rack], tally.value, created=tally.created)
        return [assigned_family, withheld_family, bytes_family]


class ApiMetrics:
    """Counters of one API, bumped in place on the hot path (one event-loop thread writes them)."""

    __slots__ = ("name", "created", "requests", "request_bytes", "response_bytes", "rewritten",
                 "latency_buckets", "latency_sum")

    def __init__(self, name: str) -> None:
        self.name = name
        self.created = time.time()
        self.requests = 0
        self.request_bytes = 0
        self.response_bytes = 0
        self.rewritten = 0
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # per bucket, not cumulative; last is +Inf
        self.latency_sum = 0.0

    def observe_latency(self, seconds: float) -> None:
        self.latency_buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds


class _ApiCollector:
    """Exposes every ApiMetrics under the metric names the prometheus_client objects used to have."""

    def __init__(self, apis: dict[int, ApiMetrics]) -> None:
        self._apis = apis

    def describe(self):
        return self._families([])

    def collect(self):
        return self._families(list(self._apis.values()))

    @staticmethod
    def _families(apis: list[ApiMetrics]):
        requests = CounterMetricFamily("gateway_requests", "Requests relayed, by API", labels=["api"])
        relayed = CounterMetricFamily("gateway_bytes", "Bytes relayed, by API and direction", labels=["api", "direction"])
        latency = HistogramMetricFamily(
            "gateway_request_latency_seconds", "Time from forwarding a request to its response arriving", labels=["api"])
        rewritten = CounterMetricFamily(
            "gateway_rewritten_responses", "Responses whose broker addresses were rewritten", labels=["api"])
        for api in apis:
            requests.add_metric([api.name], api.requests, created=api.created)
            relayed.add_metric([api.name, "request"], api.request_bytes, created=api.created)
            relayed.add_metric([api.name, "response"], api.response_bytes, created=api.created)
            rewritten.add_metric([api.name], api.rewritten, created=api.created)
            cumulative, buckets = 0, []
            for label, count in zip(_BUCKET_LABELS, list(api.latency_buckets)):
                cumulative += count
                buckets.append((label, cumulative))
            latency.add_metric([api.name], buckets, api.latency_sum)
        return [requests, relayed, latency, rewritten]

"""The committed Grafana dashboard is exactly what monitoring/dashboard.py builds, and covers what an operator needs.

(That every panel draws data is proven on a live Prometheus by the `external_lb` molecule scenario.)
"""

from __future__ import annotations

import json

from monitoring import dashboard

# metric -> what the operator reads from it; every one must be drawn by some panel
REQUIRED = {
    "gateway_cluster_members_per_rack": "members per rack",
    "gateway_client_connections_active": "client connections per node and port",
    "gateway_requests_total": "requests/s by API",
    "gateway_request_latency_seconds_bucket": "latency quantiles by API",
    "gateway_bytes_total": "bytes in/out",
    "gateway_upstream_errors_total": "upstream errors",
    "gateway_malformed_frames_total": "malformed frames",
    "gateway_cluster_mapping_changes_total": "mapping changes",
    "gateway_connections_refused_total": "limit refusals",
    "haproxy_server_status": "HAProxy backend health",
}


def test_the_committed_dashboard_is_generated_from_code() -> None:
    assert dashboard.OUTPUT.read_text() == dashboard.render(), "run: .venv/bin/python -m monitoring.dashboard"


def test_the_dashboard_covers_what_an_operator_needs() -> None:
    board = json.loads(dashboard.OUTPUT.read_text())
    queries = [t["expr"] for p in board["panels"] for t in p["targets"]]
    missing = {m: why for m, why in REQUIRED.items() if not any(m in q for q in queries)}
    assert not missing, missing
    assert any("by (node, port)" in q and "gateway_client_connections_active" in q for q in queries)
    assert any(q.startswith("histogram_quantile(0.5,") for q in queries)
    assert any(q.startswith("histogram_quantile(0.99,") for q in queries)
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])

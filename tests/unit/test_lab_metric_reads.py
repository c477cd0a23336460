"""Metric reads of the lab's tests (lab/gateway_process.py): a read that measured nothing must not look like 0.

Checks such as `node.metric("gateway_malformed_frames_total", reason=...) == before` pass trivially when the read
returns 0 for a node that did not answer or a metric that is not exported; these reads refuse both instead.
The exposition text is the gateway's own registry rendered by prometheus_client, as a node serves it.
"""

from __future__ import annotations

import socket

import pytest
from prometheus_client import generate_latest

from gateway_app.metrics import Metrics
from lab.gateway_process import GatewayNode, metric_sum


def exposition(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_a_labelled_counter_reads_0_until_it_counts_and_then_its_count():
    metrics = Metrics()
    assert metric_sum(exposition(metrics), "gateway_malformed_frames_total", {"reason": "bad_request"}) == 0
    metrics.malformed_frames.labels("bad_request").inc(2)
    metrics.malformed_frames.labels("frame_too_large").inc()
    text = exposition(metrics)
    assert metric_sum(text, "gateway_malformed_frames_total", {"reason": "bad_request"}) == 2
    assert metric_sum(text, "gateway_malformed_frames_total", {}) == 3
    assert metric_sum(text, "gateway_malformed_frames_created", {"reason": "bad_request"}) > 0  # a sample suffix


def test_a_metric_the_node_does_not_export_is_an_error_not_0():
    text = exposition(Metrics())
    with pytest.raises(AssertionError, match="no metric gateway_malformed_frame_total"):
        metric_sum(text, "gateway_malformed_frame_total", {"reason": "bad_request"})  # a typo: 'frame' for 'frames'


def test_a_node_whose_metrics_cannot_be_read_is_an_error_not_0():
    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    node = GatewayNode.__new__(GatewayNode)  # only the address is needed to read
    node.http_address, node.http_port = "127.0.0.1", port
    with pytest.raises(AssertionError, match="answered nothing"):
        node.metric("gateway_malformed_frames_total", reason="bad_request")

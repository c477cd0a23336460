"""The running gateway's version, as an upgrade checks it: gateway_build_info{version} on /metrics."""

from __future__ import annotations

from importlib.metadata import version

from prometheus_client import generate_latest

from gateway_app import __version__
from gateway_app.metrics import Metrics


def test_build_info_names_the_installed_version() -> None:
    assert __version__ == version("kafka-gateway")
    text = generate_latest(Metrics().registry).decode()
    assert f'gateway_build_info{{version="{__version__}"}} 1.0' in text.splitlines()

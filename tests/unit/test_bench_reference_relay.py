"""The benchmark's reference relay: HAProxy's configuration and the three-leg pairing."""

import shutil
import subprocess

from bench.__main__ import paired, relay_summary
from bench.reference_relay import haproxy_config


def test_config_relays_every_gateway_port_to_the_same_port_on_one_thread():
    config = haproxy_config("198.18.0.7", "198.18.0.8", 6969, 10)
    lines = [line.strip() for line in config.splitlines()]
    assert "bind 198.18.0.7:6969-6978" in lines
    assert "server gateway 198.18.0.8" in lines  # no port: each connection keeps the port it came in on
    assert "mode tcp" in lines and "nbthread 1" in lines and "option splice-auto" in lines


def test_config_is_accepted_by_haproxy(tmp_path):
    binary = shutil.which("haproxy")
    assert binary, "scripts/bootstrap installs haproxy on the controller"
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_config("198.18.0.7", "198.18.0.8", 6969, 10))
    done = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_legs_run_in_turn_and_come_back_per_leg():
    order: list[str] = []

    def leg(name: str):
        def run() -> str:
            order.append(name)
            return f"{name}{order.count(name)}"
        return run

    a, b, c = paired(2, leg("a"), leg("b"), leg("c"))
    assert order == ["a", "b", "c", "a", "b", "c"]
    assert (a, b, c) == (["a1", "a2"], ["b1", "b2"], ["c1", "c2"])


def test_relay_summary_compares_the_chain_with_the_gateway_of_the_same_rounds():
    summary = relay_summary([100.0, 80.0, 90.0], [90.0, 60.0, 90.0])
    assert summary["median"] == 90.0
    assert summary["over_gateway"] == 1.0  # medians 90 / 90
    assert summary["pair_ratio_median"] == 0.9  # pairs 0.9, 0.75, 1.0

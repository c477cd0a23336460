"""The benchmark's reference relay: HAProxy's configuration and the three-leg pairing."""

import json
import shutil
import subprocess
from pathlib import Path

from bench.__main__ import paired, print_table, relay_added, relay_summary
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


def test_relay_added_is_what_the_relay_adds_on_top_of_the_gateway_in_the_same_rounds():
    added = relay_added([4.0, 5.0, 9.0], [4.5, 5.25, 8.0])
    assert added["median"] == 5.25
    assert added["added_ms"] == 0.25  # medians 5.25 - 5.0
    assert added["pair_added_ms_median"] == 0.25  # pairs +0.5, +0.25, -1.0
    assert added["runs"] == [4.5, 5.25, 8.0]


def test_relay_summary_over_direct_compares_the_relay_with_the_endpoint_it_stands_in_front_of():
    rate = relay_summary([30000.0, 20000.0, 25000.0], [24000.0, 18000.0, 20000.0], over="direct")
    assert rate["median"] == 20000.0
    assert rate["over_direct"] == 0.8  # medians 20000 / 25000
    assert rate["pair_ratio_median"] == 0.8  # pairs 0.8, 0.9, 0.8


def test_the_table_shows_what_the_relay_adds_to_latency_and_leaves_of_metadata(capsys):
    results = json.loads((Path(__file__).resolve().parents[2] / "bench" / "results" / "latest.json").read_text())
    results["e2e_latency_avg_ms"]["reference_relay"] = relay_added([3.0, 3.5, 4.0], [3.4, 3.75, 4.0])
    results["metadata_requests_s"]["reference_relay"] = {
        **relay_summary([30000.0, 20000.0, 25000.0], [24000.0, 18000.0, 20000.0], over="direct"),
        "requests_per_relay_cpu_s": 90000.0}
    print_table(results)
    out = capsys.readouterr().out
    assert "| EndToEndLatency average ms (one record at a time) | " in out
    assert "| +0.25 ms | +0.25 ms |" in out  # the relay's median and pair differences
    assert "HAProxy in front of the broker 20000.0 (0.8; pair ratios 0.8), 90000.0 per HAProxy CPU-second" in out

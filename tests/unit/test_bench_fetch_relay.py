"""bench.fetch_relay end to end, small: three processes on loopback, both modes, the bytes each run relayed and a
CPU figure for each (the figures themselves are for the benchmark page, not asserted)."""

from __future__ import annotations

import argparse
import os

from bench.fetch_relay import measure, response_frame


def test_a_small_run_relays_every_response_whole_in_both_modes() -> None:
    result = measure(argparse.Namespace(rounds=1, fetches=4, response_mb=1))
    frame = len(response_frame(1_000_000))
    for mode in ("off", "on"):
        (run,) = result["runs"][mode]
        assert run["bytes"] == 4 * frame
        assert run["cpu_s_per_gb"] >= 0 and run["mb_s"] > 0
    medians = result["median_cpu_s_per_gb"]
    assert result["splice_over_copy"] == (medians["on"] / medians["off"] if medians["off"] else None)
    assert result["machine"]["cpus"] == os.cpu_count()

"""bench.produce_relay end to end, small: three processes on loopback, copying and splicing, the bytes each run
relayed and a CPU figure for each (the figures themselves are for the benchmark page, not asserted)."""

from __future__ import annotations

import argparse

from bench.produce_relay import measure, produce_frame


def test_a_small_run_relays_every_request_in_both_modes() -> None:
    result = measure(argparse.Namespace(rounds=1, requests=6, request_kb=64))
    frame = len(produce_frame(0, 64_000))
    for mode in ("copy", "splice"):
        (run,) = result["runs"][mode]
        assert run["bytes"] == 6 * frame
        assert run["cpu_s_per_gb"] >= 0 and run["mb_s"] > 0
    medians = result["median_cpu_s_per_gb"]
    assert result["splice_over_copy"] == (medians["splice"] / medians["copy"] if medians["copy"] else None)

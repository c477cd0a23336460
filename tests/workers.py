"""The whole suite on two pytest-xdist workers, each with a lab instance of its own.

`scripts/test` without a test path runs `pytest -n 2 --dist loadfile --no-loadscope-reorder`: a test file is the
unit of work (its module fixtures, gateways and client loads start once), handed to whichever worker is free next.
Worker gwN uses lab instance $KGW_LAB_INSTANCE + N (0 and 1 by default), which its session's `lab` fixture brings up
and takes down as a single process does with one. The suite is mostly waiting (restarts, polls, loads at fixed
rates, SSH round trips), so two labs on the machine's two cores take about half the time of one (docs/testing.md).

The order the files are handed out in balances the two workers: the molecule scenarios (one file, about 11 minutes,
each scenario booting its own hosts) first, then the other lab files, then the unit and docs files, whose short
files at the end fill the gap between the workers. A run of named tests (`scripts/test tests/e2e/test_x.py`) stays
one process on $KGW_LAB_INSTANCE, in collection order.
"""

from __future__ import annotations

import os

import pytest

# Files handed out before every other: the longest (docs/testing.md's timing tables), so that the rest fits around them.
LONGEST_FIRST = ("tests/e2e/test_ansible_molecule.py",)


def worker_index() -> int | None:
    """This process's worker number under pytest-xdist (gw0 -> 0), None in a run without workers."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker.removeprefix("gw")) if worker else None


def lab_instance() -> int:
    """The lab instance of this process: $KGW_LAB_INSTANCE (default 0), plus the worker's number under xdist."""
    base = int(os.environ.get("KGW_LAB_INSTANCE", "0"))
    index = worker_index()
    return base if index is None else base + index


def file_of(item: pytest.Item) -> str:
    return item.nodeid.split("::")[0]


def hand_out_order(items: list[pytest.Item]) -> list[pytest.Item]:
    """Items grouped by file, files ordered: LONGEST_FIRST, then files with a lab test, then the rest; otherwise as
    collected (a stable sort)."""
    rank: dict[str, int] = {}
    for item in items:
        path = file_of(item)
        own = 0 if path in LONGEST_FIRST else 1 if item.get_closest_marker("lab") else 2
        rank[path] = min(rank.get(path, own), own)
    first_seen = {path: n for n, path in reversed(list(enumerate(file_of(item) for item in items)))}
    return sorted(items, key=lambda item: (rank[file_of(item)], first_seen[file_of(item)]))

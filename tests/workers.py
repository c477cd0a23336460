"""The whole suite on pytest-xdist workers: two with a lab instance of their own, and one without a lab.

`scripts/test` without a test path runs `pytest -n 3 --dist loadfile --no-loadscope-reorder`: a test file is the
unit of work (its module fixtures, gateways and client loads start once), handed to whichever worker is free next.
Worker gwN (N < LAB_WORKERS) uses lab instance $KGW_LAB_INSTANCE + N (0 and 1 by default), which its session's `lab`
fixture brings up and takes down as a single process does with one. The suite is mostly waiting (restarts, polls,
loads at fixed rates, SSH round trips), so two labs on the machine's two cores take about half the time of one
(docs/testing.md). The last worker has no lab: it takes only the files that need none (NO_LAB_DIRS: the unit and
docs tests, what `scripts/test --quick` runs), in the time the lab workers leave the cores idle, and the lab workers
take the unit and docs files too once their own are handed out (LabAwareScheduling).

The order the files are handed out in balances the lab workers: the molecule scenarios (one file, about 11 minutes,
each scenario booting its own hosts) first, then the other lab files, then the unit and docs files. A run of named
tests (`scripts/test tests/e2e/test_x.py`) stays one process on $KGW_LAB_INSTANCE, in collection order.
"""

from __future__ import annotations

import os

import pytest

try:
    from xdist.scheduler import LoadFileScheduling
except ImportError:  # the `test` extra's pytest-xdist; without it the suite runs in one process
    LoadFileScheduling = object

# workers gw0 .. gw(N-1) have a lab each (scripts/test's KGW_TEST_WORKERS, default 2); the worker past them has none
LAB_WORKERS = int(os.environ.get("KGW_TEST_WORKERS", "2"))
NO_LAB_DIRS = ("tests/unit/", "tests/docs/")  # files that need no lab: any worker may run them

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


def has_lab(worker: str | None = None) -> bool:
    """Whether this process (or worker "gwN") may bring a lab up: any process outside xdist, the first LAB_WORKERS."""
    index = worker_index() if worker is None else int(worker.removeprefix("gw"))
    return index is None or index < LAB_WORKERS


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


class LabAwareScheduling(LoadFileScheduling):
    """xdist's file-at-a-time scheduling, except that a worker without a lab is handed only files that need none:
    the next such file in the hand-out order, and nothing (it shuts down) once none is left."""

    def _assign_work_unit(self, node) -> None:
        if has_lab(node.gateway.id):
            return super()._assign_work_unit(node)
        scope = next((scope for scope in self.workqueue if scope.startswith(NO_LAB_DIRS)), None)
        if scope is None:
            node.shutdown()
            return
        self.workqueue.move_to_end(scope, last=False)  # the base class hands out the queue's first unit
        super()._assign_work_unit(node)

    def _reschedule(self, node) -> None:
        if not has_lab(node.gateway.id) and not node.shutting_down and self.workqueue \
                and not any(scope.startswith(NO_LAB_DIRS) for scope in self.workqueue):
            node.shutdown()  # what is left needs a lab
            return
        super()._reschedule(node)

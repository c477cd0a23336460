"""Shared fixtures: one lab for the whole session (for each worker of a parallel run: tests/workers.py).

The ``lab`` fixture runs ``python -m lab up`` (idempotent: a lab that already runs is reused as it is, missing parts
are started) and tears the lab down at the end only if this session brought it up. Set KGW_LAB_KEEP=1 to keep it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.state import LabState
from tests import timings, workers

REPO = Path(__file__).resolve().parent.parent


INSTANCE = workers.lab_instance()  # another instance runs a second lab beside the first


def pytest_configure(config: pytest.Config) -> None:
    if workers.worker_index() is None:
        timings.register(config)  # in the process that gathers every worker's reports
    else:
        # what the tests start (molecule, the lab tool, the lab inventory) and LabState.load() use this worker's lab
        os.environ["KGW_LAB_INSTANCE"] = str(INSTANCE)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if workers.worker_index() is not None:  # the order xdist hands the files out in
        items[:] = workers.hand_out_order(items)


def run_lab(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "lab", "--instance", str(INSTANCE), *args], cwd=REPO, check=True)


@pytest.fixture(scope="session")
def lab() -> LabState:
    was_up = LabState.exists(INSTANCE)
    run_lab("up")
    yield LabState.load(INSTANCE)
    if not was_up and not os.environ.get("KGW_LAB_KEEP"):
        run_lab("down")

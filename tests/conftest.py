"""Shared fixtures: one lab for the whole session.

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
from tests import timings

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    timings.register(config)


INSTANCE = int(os.environ.get("KGW_LAB_INSTANCE", "0"))  # another instance runs a second lab beside the first


def run_lab(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "lab", "--instance", str(INSTANCE), *args], cwd=REPO, check=True)


@pytest.fixture(scope="session")
def lab() -> LabState:
    was_up = LabState.exists(INSTANCE)
    run_lab("up")
    yield LabState.load(INSTANCE)
    if not was_up and not os.environ.get("KGW_LAB_KEEP"):
        run_lab("down")

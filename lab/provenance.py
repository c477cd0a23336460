"""Which commit made a result. Every results file (the benchmark, the soak, the Kafka version matrix) names it, so a
figure in the docs can be traced to the code that produced it; `-dirty` marks uncommitted changes to tracked files."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .layout import REPO_DIR


def commit(checkout: Path = REPO_DIR) -> str:
    """The checkout's commit (12 hex digits, `-dirty` if tracked files differ from it); empty outside a git checkout."""
    done = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=checkout,
                          capture_output=True, text=True)
    return done.stdout.strip()

"""Every commit the README and the docs cite is in this repository's history: a figure said to come from a run "at
1b22323" must name a commit anyone can check out."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A short hash as the docs write one: 7 to 40 hex digits, with at least one digit and one letter (so no plain number
# and no English word like "defaced").
SHORT_HASH = re.compile(r"(?<![\w/.-])(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}(?![\w/-])")
NOT_COMMITS = {"ed25519"}  # hex-looking words the docs use for something else (ssh-ed25519 keys)


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def cited(text: str) -> set[str]:
    return {token for token in SHORT_HASH.findall(text) if token not in NOT_COMMITS}


def in_history(token: str) -> bool:
    found = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{token}^{{commit}}"], capture_output=True)
    return found.returncode == 0


def test_the_hash_pattern_finds_citations_and_nothing_else():
    text = "measured at 1b22323 (`708199f`), see 711799b; not 2026, not 1234567, not id_ed25519 or abcdefa or a.b1c2d3e4f"
    assert cited(text) == {"1b22323", "708199f", "711799b"}


def test_every_commit_the_docs_cite_is_in_the_history():
    assert subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--git-dir"], capture_output=True).returncode == 0, \
        "the docs' commit citations can only be checked in a git checkout"
    missing = sorted(f"{path.relative_to(ROOT)}: {token}" for path in documents()
                     for token in cited(path.read_text()) if not in_history(token))
    assert not missing, f"cited commits that are not in `git log`: {missing}"

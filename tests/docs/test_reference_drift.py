"""The generated reference pages (settings, role variables, metrics, API handling) match the code they describe."""

from __future__ import annotations

import difflib

import pytest

from docs.generate import PAGES, REGENERATE, ROOT


@pytest.mark.parametrize("page", sorted(PAGES))
def test_generated_page_matches_the_code(page: str) -> None:
    path = ROOT / "docs" / page
    expected = PAGES[page]()
    committed = path.read_text() if path.exists() else ""
    diff = "".join(difflib.unified_diff(
        committed.splitlines(keepends=True), expected.splitlines(keepends=True),
        fromfile=f"docs/{page} (committed)", tofile=f"docs/{page} (from the code)", n=1))
    if committed != expected:
        pytest.fail(f"docs/{page} is out of date with the code; run `{REGENERATE}` and commit the result.\n{diff}",
                    pytrace=False)
